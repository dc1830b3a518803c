"""The report's first screen: one short verdict line per generator (issue 12).

Built from the tidy results (``runs.generator_verdicts``: gain of each generator's best condition over
the best control, Holm-corrected over the study's family, with the MDE) plus what the stage records say
about health (fidelity stages), provenance (imported samples) and time caps.
"""

from __future__ import annotations

from typing import Any

from synthmed.runs import CONTROL, generator_verdicts, manifest_stages
from synthmed.runs.results import PRIMARY, SECONDARY

ANSWER_DRAWS = 2  # fewer paired draws than this give no interval: the study cannot answer


def _pt(x: float | None) -> str:
    return "–" if x is None else f"{x:+.3f}"


def _gain_text(v: dict, metric: str, secondary: dict | None) -> str:
    if not v.get("condition"):
        return "not tested (left out of the family)" if v.get("failed") else "no paired comparison with a control"
    text = f"{v['condition']} vs best control: {metric} {_pt(v['gain'])}"
    if v.get("ci_low") is not None:
        text += f", family-wise 95 % CI [{_pt(v['ci_low'])}, {_pt(v['ci_high'])}] (Holm p = {v['p_holm']:.3g})"
    text += f"; MDE at n = {v['n']}: " + (f"{v['mde']:.3f}" if v.get("mde") is not None else "none (n < 2)")
    if secondary and secondary.get("gain") is not None:
        text += f"; {SECONDARY} {_pt(secondary['gain'])}"
    return text


def _instrument_text(f: dict[str, float]) -> list[str]:
    parts = []
    if "faithfulness_bacc" in f:
        parts.append(f"class faithfulness {f['faithfulness_bacc']:.2f} balanced accuracy vs floor "
                     f"{f.get('faithfulness_bacc_floor', float('nan')):.2f}")
    if "copy_rate" in f:
        parts.append(f"copies {f['copy_rate']:.3f} vs null {f.get('copy_null_rate', float('nan')):.3f}")
    if "fd_ratio" in f:
        parts.append(f"FD {f['fd_ratio']:.1f}× the held-out floor")
    return parts


def _stage_facts(manifest: dict) -> tuple[dict[str, dict], dict[str, str]]:
    """Per generator: the worst health record over seeds, and imported sets' provenance."""
    order = {"ok": 0, "warning": 1, "failed": 2}
    health: dict[str, dict] = {}
    for s in manifest_stages(manifest, "fidelity"):
        h, gen = s["summary"].get("health"), s["labels"].get("generator")
        if h and order[h["status"]] >= order[health.get(gen, {"status": "ok"})["status"]]:
            health[gen] = h
    provenance = {s["labels"]["generator"]: s["summary"].get("provenance", "matched")
                  for s in manifest_stages(manifest, "samples_file")}
    return health, provenance


def _ceiling_text(manifest: dict) -> str | None:
    for s in manifest_stages(manifest, "classify"):
        fair = s["config"].get("fair_budget")
        if fair:
            return (f"the all-real ceiling trained {s['summary'].get('max_steps')} steps"
                    f"{' with balanced sampling' if fair.get('balanced_sampling') else ''} (as many epochs over its pool "
                    f"as real's budget gives the k-shot set, capped at {fair['max_steps']} steps)")
    return None


def _cut_text(rows: list[dict[str, Any]]) -> str | None:
    cut = sorted({f"{r['condition']} ({r['generator']}, seed {r['seed']})" for r in rows if r.get("cut_by_time")})
    return ("cut by a time cap, not reproducible on another machine: " + ", ".join(cut)) if cut else None


def verdict_block(rows: list[dict[str, Any]], manifest: dict) -> dict[str, Any]:
    """``{answers, headline, lines: [{generator, verdict, text, details, warn}], note}`` for the template."""
    primary, secondary = generator_verdicts(rows, PRIMARY), generator_verdicts(rows, SECONDARY)
    health, provenance = _stage_facts(manifest)
    answers = primary["n_draws"] >= ANSWER_DRAWS
    lines = []
    for gen, v in sorted(primary["generators"].items()):
        h = health.get(gen, {})
        verdict = v["verdict"] if answers or v.get("failed") else "cannot tell"
        details = [_gain_text(v, PRIMARY, secondary["generators"].get(gen)), *_instrument_text(v["fidelity"])]
        warn = []
        if v.get("failed"):
            warn.append(f"excluded from the verdict: {h.get('reason', 'training failed')}"
                        + (f"; try: {h['advice']}" if h.get("advice") else ""))
        elif h.get("status") == "warning":
            warn.append(h["reason"])
        if provenance.get(gen) == "unknown":
            warn.append("imported without provenance: leakage of this study's val/test images cannot be ruled out")
        if v.get("cut_by_time"):
            warn.append("cut by a time cap (max_minutes): not reproducible on another machine")
        lines.append({"generator": gen, "verdict": verdict, "details": details, "warn": warn,
                      "health": h.get("status", "unchecked")})
    n = primary["n_draws"]
    headline = (f"This study cannot answer: {n} k-shot draw{'s' if n != 1 else ''} (n = {n}) {'gives' if n == 1 else 'give'} no interval; "
                "run at least 5 paired draws (seeds: [0, 1, 2, 3, 4], split.per_seed: true)." if not answers else
                f"{PRIMARY} gain of each generator's best condition over the best control '{primary['control']}', "
                f"paired over {n} k-shot draws.")
    note = "; ".join(t for t in (primary["note"], _ceiling_text(manifest), _cut_text(rows)) if t)
    return {"answers": answers, "headline": headline, "lines": lines, "note": note,
            "control": primary["control"], "has_generators": any(g != CONTROL for g in primary["generators"])}
