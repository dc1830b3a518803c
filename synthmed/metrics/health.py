"""Training health of one generator run: did it learn to make images like the real ones?

A generator that failed (noise, one collapsed mode, labels ignored) still yields synthetic sets,
classifier rows and fidelity numbers that look like any other. This module reads the calibrated
instruments of one run — matched fidelity against the held-out floor (``metrics.fidelity.matched_fidelity``),
class faithfulness (``metrics.faithfulness.class_faithfulness``) and the training record — and marks
the run ``failed`` with a one-line reason and what to try, or ``ok``.

The rules (``HealthRules``; each is stated in the result so a reader can check it):

1. **far from real** (off by default): the Fréchet distance of the synthetic set to R is more than
   ``max_fd_ratio`` times the held-out floor's. Off because it does not separate working from
   failed runs: in the domain extractor's features the floor is tiny (FD 2.8 for H vs R on
   PneumoniaMNIST 50-shot), so the default cgan — precision 0.94, recall 0.81, coverage 0.74,
   class-faithful at the floor — scored 31× it (default study, seed 0, 2026-12-01), while a 3-step
   generator scored only 4–5× in the smoke study. The ratio stays in every report as a fact.
2. **covers nothing real**: recall below ``min_recall`` *and* coverage below ``min_coverage``:
   almost no real image has a synthetic neighbour (noise, or a single collapsed mode).
3. **collapsed**: recall below ``collapse_recall`` alone: the samples repeat a few images, whatever
   their coverage. Added after a cgan on the 7-class skin set (label embeddings at std 1.0) drew one
   image per class for every z: recall 0.01 but coverage 0.50 (seven distinct images still sit inside
   half of the 113 reference images' 5-NN balls), which rule 2 passed. The working default families
   on PneumoniaMNIST had recall 0.37–0.86 over 30 runs (both five-draw defaults), so 0.05 leaves them a
   wide margin while the collapsed runs measured here sat at 0.00–0.01 (bench/RESULTS.md, health table).
4. **label-blind**: class faithfulness says the labels carry no class information
   (its interval reaches chance; see ``metrics.faithfulness``).
5. **stopped early**: the training record says a time cap, not the step budget, ended training
   (a warning, not a failure: the numbers are not reproducible on another machine).

Hand-written: no library judges a generator run from these instruments; the thresholds are ours
and are calibrated by tests on real data (a working family is never failed, a few-step run always is).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

STATUS_OK, STATUS_WARNING, STATUS_FAILED = "ok", "warning", "failed"

ADVICE = {
    "far from real": "train longer (raise max_steps), lower the learning rate, or try per-class mode",
    "covers nothing real": "train longer (raise max_steps) or lower the learning rate; a collapsed GAN may need "
                           "DiffAugment or another family",
    "collapsed": "the samples repeat a few images (mode collapse): lower the learning rate or the label embedding's "
                 "init (GANs), train longer (ddpm), or try another family",
    "label-blind": "raise the label embedding's weight or use per-class mode / a projection discriminator",
    "stopped early": "remove max_minutes (step budgets decide) or run on a faster machine",
}


@dataclass(frozen=True)
class HealthRules:
    max_fd_ratio: float | None = None  # FD(S, R) / FD(H, R) above this: far from real (off: see rule 1)
    min_recall: float = 0.02  # and …
    min_coverage: float = 0.05  # … below both: covers nothing real
    collapse_recall: float | None = 0.05  # recall below this alone: collapsed (None: off)

    def describe(self) -> str:
        fd = f"FD > {self.max_fd_ratio:g}× the held-out floor, or " if self.max_fd_ratio is not None else ""
        collapse = f"recall < {self.collapse_recall:g} (collapsed), or " if self.collapse_recall is not None else ""
        return (f"failed when {fd}recall < {self.min_recall:g} and coverage < {self.min_coverage:g}, "
                f"or {collapse}class faithfulness is label-blind")


def _metric(fidelity: dict | None, name: str, field: str = "synthetic") -> float | None:
    entry = ((fidelity or {}).get("metrics") or {}).get(name) or {}
    v = entry.get(field)
    return float(v) if v is not None else None


def _checks(fidelity: dict | None, faithfulness: dict | None, training: dict | None,
            rules: HealthRules) -> list[tuple[str, str, str]]:
    """(rule name, severity, one-line fact) for every rule that fires."""
    found: list[tuple[str, str, str]] = []
    ratio = _metric(fidelity, "fid", "ratio")
    if ratio is not None and rules.max_fd_ratio is not None and ratio > rules.max_fd_ratio:
        found.append(("far from real", STATUS_FAILED,
                      f"FD is {ratio:.1f}× the held-out real floor (bound {rules.max_fd_ratio:g}×)"))
    recall, coverage = _metric(fidelity, "recall"), _metric(fidelity, "coverage")
    if recall is not None and coverage is not None and recall < rules.min_recall and coverage < rules.min_coverage:
        found.append(("covers nothing real", STATUS_FAILED,
                      f"recall {recall:.3f} and coverage {coverage:.3f}: almost no real image has a synthetic neighbour"))
    elif recall is not None and rules.collapse_recall is not None and recall < rules.collapse_recall:
        found.append(("collapsed", STATUS_FAILED,
                      f"recall {recall:.3f} (coverage {coverage if coverage is None else round(coverage, 3)}): the "
                      "samples repeat a few images"))
    if faithfulness and faithfulness.get("verdict") == "label-blind":
        found.append(("label-blind", STATUS_FAILED, faithfulness.get("reason", "labels carry no class information")))
    if training and training.get("stopped_by") not in (None, "max_steps", "epochs", "early_stopping"):
        found.append(("stopped early", STATUS_WARNING,
                      f"training was stopped by {training['stopped_by']} at step {training.get('steps_done')}"))
    return found


def assess_health(fidelity: dict | None = None, faithfulness: dict | None = None, training: dict | None = None,
                  *, family: str | None = None, rules: HealthRules | None = None) -> dict[str, Any]:
    """Judge one generator run.

    Args:
        fidelity: the dict from ``matched_fidelity`` (uses ``metrics.fd.ratio``, ``recall``, ``coverage``).
        faithfulness: the dict from ``class_faithfulness`` (uses ``verdict`` and ``reason``).
        training: the generator stage's record (``steps_done``, ``stopped_by``).
        family: the generator family, named in the sentence.
        rules: thresholds (default ``HealthRules()``).

    Returns:
        ``{"status": "ok"|"warning"|"failed", "reason": one line, "advice": what to try,
        "checks": [{rule, severity, fact}], "rules": {...}, "rule_text": the rules in words}``.
        Missing instruments are skipped (and listed under ``"unchecked"``), never guessed.
    """
    rules = rules or HealthRules()
    found = _checks(fidelity, faithfulness, training, rules)
    failed = [c for c in found if c[1] == STATUS_FAILED]
    status = STATUS_FAILED if failed else (STATUS_WARNING if found else STATUS_OK)
    who = family or "the generator"
    if failed:
        reason = f"{who} failed to learn: " + "; ".join(f"{name} ({fact})" for name, _, fact in failed)
    elif found:
        reason = f"{who}: " + "; ".join(fact for _, _, fact in found)
    else:
        reason = f"{who} passed every health check"
    unchecked = [n for n, v in (("fidelity", fidelity), ("faithfulness", faithfulness), ("training", training)) if not v]
    return {"status": status, "reason": reason,
            "advice": "; ".join(dict.fromkeys(ADVICE[name] for name, _, _ in found)) or None,
            "checks": [{"rule": n, "severity": s, "fact": f} for n, s, f in found],
            "unchecked": unchecked, "rules": asdict(rules), "rule_text": rules.describe()}
