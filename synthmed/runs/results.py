"""The tidy results table (one row per dataset × generator × condition × seed × metric) and the
summary over seeds: mean, 95 % CI, paired comparisons against the baseline and the best control.
Condition roles (baseline, controls, ceiling, display order) come from ``synthmed.conditions``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from synthmed.runs.layout import CONTROL, FIDELITY, RESULTS_CSV, RESULTS_JSON
from synthmed.utils.io import write_json_atomic, write_text_atomic

HEADLINE_METRICS = ("roc_auc", "macro_f1", "balanced_accuracy", "accuracy")  # AUC and macro-F1 lead (see README)
# Fidelity keys (metrics.fidelity KEY_*) that become result rows (each also as floor_<key>), and the
# columns of the report's fidelity table.
FIDELITY_SCALARS = ("fid", "kid_mean", "precision", "recall", "density", "coverage")
FIDELITY_TABLE = ("fid", "kid_mean", "precision", "recall", "density", "coverage", "is_mean")
FIELDS = ("dataset", "generator", "condition", "seed", "metric", "value", "cut_by_time")
TIME_CAP = "max_minutes"  # a stage record's ``stopped_by`` when a wall-clock cap, not its step budget, ended it
PRIMARY, SECONDARY = "roc_auc", "macro_f1"  # the verdict's metric and the one reported beside it
HEALTH_FAILED = 2  # the ``health`` row's value for a failed generator (stages.fidelity.HEALTH_CODE)


def _classify_rows(base: dict, labels: dict, summary: dict) -> list[dict[str, Any]]:
    m = summary.get("metrics") or {}
    base = {**base, "condition": labels["condition"]}
    rows = [{**base, "metric": k, "value": float(m[k])} for k in HEADLINE_METRICS if m.get(k) is not None]
    rows += [{**base, "metric": f"f1[{cname}]", "value": float(pc["f1"])}
             for cname, pc in (m.get("per_class") or {}).items() if pc.get("f1") is not None]
    return rows


def _fidelity_rows(base: dict, labels: dict, summary: dict) -> list[dict[str, Any]]:
    return [{**base, "condition": FIDELITY, "metric": k, "value": float(v)}
            for k, v in (summary.get("scalars") or {}).items()]


ROW_MAKERS = {"classify": _classify_rows, "fidelity": _fidelity_rows}  # stage kind -> its result rows


def _cut(rec: dict[str, Any]) -> bool:
    return (rec.get("summary") or {}).get("stopped_by") == TIME_CAP


def collect_results(records: Iterable[dict[str, Any]], dataset: str) -> list[dict[str, Any]]:
    """Tidy rows from finished stage records (``stage.json`` contents), in the order given.

    ``cut_by_time`` is true on every row a time cap touched: the row's own stage, its generator (same
    label and seed) or, for fidelity rows, the seed's extractor stopped by ``max_minutes``, not by its
    step budget; such numbers depend on the machine's speed and are not reproducible."""
    records = list(records)
    cut_gens = {(r["labels"].get("generator"), r["labels"].get("seed")) for r in records
                if r["kind"] == "generator" and _cut(r)}
    cut_ext = {r["labels"].get("seed") for r in records if r["kind"] == "extractor" and _cut(r)}
    rows: list[dict[str, Any]] = []
    for rec in records:
        make = ROW_MAKERS.get(rec["kind"])
        if make is not None:
            labels = rec["labels"]
            base = {"dataset": dataset, "generator": labels.get("generator", CONTROL), "seed": labels.get("seed")}
            cut = _cut(rec) or (base["generator"], base["seed"]) in cut_gens or \
                (rec["kind"] == "fidelity" and base["seed"] in cut_ext)
            rows += [{**r, "cut_by_time": cut} for r in make(base, labels, rec["summary"])]
    return rows


def write_results(out: str | Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    write_text_atomic(Path(out) / RESULTS_CSV, buf.getvalue())
    write_json_atomic(Path(out) / RESULTS_JSON, rows)


def load_results(run_dir: str | Path) -> list[dict[str, Any]]:
    return json.loads((Path(run_dir) / RESULTS_JSON).read_text())


def _by_condition(rows: list[dict[str, Any]], metric: str) -> dict[tuple[str, str], dict[int, float]]:
    by: dict[tuple[str, str], dict[int, float]] = {}
    for r in rows:
        if r["metric"] == metric and r["condition"] != FIDELITY:
            by.setdefault((r["generator"], r["condition"]), {})[r["seed"]] = r["value"]
    return by


def _compare(row: dict, label: str, vals: dict, seeds: list, ref_name: str, ref: dict, key: str, metric: str) -> None:
    from synthmed.metrics.stats import describe_comparison, paired_comparison

    common = [s for s in seeds if s in ref]
    if common:
        cmp = paired_comparison([vals[s] for s in common], [ref[s] for s in common])
        row[key] = {**cmp, "against": ref_name, "text": describe_comparison(label, ref_name, cmp, metric)}


def summarize_conditions(rows: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Per (generator, condition): mean ± CI over seeds, paired comparison vs the baseline and vs the
    best control, gap closed towards the ceiling."""
    from synthmed.conditions import find_condition, get_condition, list_conditions
    from synthmed.metrics.stats import gap_closed, summarize

    by = _by_condition(rows, metric)
    names = list_conditions()
    base_name, ceil_name = find_condition("baseline"), find_condition("ceiling")
    base, ceiling = by.get((CONTROL, base_name), {}), by.get((CONTROL, ceil_name), {})
    controls = {c: by[(CONTROL, c)] for c in names if get_condition(c).is_control and (CONTROL, c) in by}
    best_control = max(controls, key=lambda c: sum(controls[c].values()) / len(controls[c]), default=None)
    order = {c: get_condition(c).order for c in names}
    out = []
    for (gen, cond), vals in sorted(by.items(), key=lambda kv: (kv[0][0] != CONTROL, kv[0][0],
                                                                  order.get(kv[0][1], 99), kv[0][1])):
        seeds = sorted(vals)
        row: dict[str, Any] = {"generator": gen, "condition": cond, "metric": metric,
                               **summarize([vals[s] for s in seeds])}
        label = cond if gen == CONTROL else f"{cond} ({gen})"
        if base and not (gen == CONTROL and cond == base_name):  # controls are compared with the baseline only
            _compare(row, label, vals, seeds, base_name, base, "vs_real", metric)
        if best_control is not None and gen != CONTROL:  # conditions that use a generator: also the best control
            _compare(row, label, vals, seeds, best_control, controls[best_control], "vs_control", metric)
        common = [s for s in seeds if s in base and s in ceiling]
        if common:
            mean = lambda d: sum(d[s] for s in common) / len(common)  # noqa: E731
            row["gap_closed"] = gap_closed(mean(vals), mean(base), mean(ceiling))
        out.append(row)
    return out


# -- the verdict ----------------------------------------------------------------------------------
def _mean(d: dict) -> float:
    return sum(d.values()) / len(d)


def _fidelity_means(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per generator: each fidelity/health scalar averaged over seeds (health: the worst seed)."""
    acc: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        if r["condition"] == FIDELITY:
            acc.setdefault(r["generator"], {}).setdefault(r["metric"], []).append(r["value"])
    return {g: {m: (max(v) if m == "health" else sum(v) / len(v)) for m, v in ms.items()} for g, ms in acc.items()}


def _best_control(by: dict) -> str | None:
    from synthmed.conditions import get_condition, list_conditions

    controls = {c: by[(CONTROL, c)] for c in list_conditions() if get_condition(c).is_control and (CONTROL, c) in by}
    return max(controls, key=lambda c: _mean(controls[c]), default=None)


def _family(by: dict, control: dict[int, float], failed: set[str]) -> dict[str, tuple[str, str, list, list]]:
    """Every (generator, generator condition) pair the verdict family tests, paired with the control by seed."""
    from synthmed.conditions import get_condition, list_conditions

    gen_conditions = {c for c in list_conditions() if get_condition(c).needs_generator}
    fam = {}
    for (gen, cond), vals in sorted(by.items()):
        if gen == CONTROL or gen in failed or cond not in gen_conditions:
            continue
        common = sorted(s for s in vals if s in control)
        if common:
            fam[f"{cond} ({gen})"] = (gen, cond, [vals[s] for s in common], [control[s] for s in common])
    return fam


def verdict_family(rows: list[dict[str, Any]], metric: str = PRIMARY, *, alpha: float = 0.05) -> dict[str, Any]:
    """Every (generator, generator condition) pair vs the best control, Holm-corrected as one family:
    ``{control, failed, fidelity, by, tested: {"cond (gen)": {generator, condition, gain, ci_low, ...}}}``."""
    from synthmed.metrics.stats import family_verdicts

    by = _by_condition(rows, metric)
    control = _best_control(by)
    fid = _fidelity_means(rows)
    gens = sorted({g for g, _ in by if g != CONTROL} | set(fid))
    failed = {g for g in gens if fid.get(g, {}).get("health") == HEALTH_FAILED}
    fam = _family(by, by.get((CONTROL, control), {}), failed) if control else {}
    tested = family_verdicts({k: (a, b) for k, (_, _, a, b) in fam.items()}, alpha=alpha) if fam else {}
    for name, v in tested.items():
        v.update(generator=fam[name][0], condition=fam[name][1])
    return {"control": control, "failed": failed, "fidelity": fid, "generators": gens, "by": by, "tested": tested}


def generator_verdicts(rows: list[dict[str, Any]], metric: str = PRIMARY, *, alpha: float = 0.05) -> dict[str, Any]:
    """One verdict per generator: the gain of its best generator condition over the best control.

    The family is every (generator, condition that uses a generator) pair of the study, each paired by
    seed (= by k-shot draw when ``split.per_seed``) with the best control (the control with the highest
    mean); Holm–Bonferroni over that family (``verdict_family``). Each generator's line shows its
    condition with the largest gain. Generators whose health is ``failed`` stay in the tables but are
    left out of the family. Returns ``{metric, control, alpha, m, n_draws, generators: {name: ...},
    excluded: [names], note}``."""
    f = verdict_family(rows, metric, alpha=alpha)
    by, control, fid, gens, failed, tested = f["by"], f["control"], f["fidelity"], f["generators"], f["failed"], f["tested"]
    out: dict[str, dict[str, Any]] = {}
    for v in tested.values():
        gen = v["generator"]
        if gen not in out or v["gain"] > out[gen]["gain"]:
            out[gen] = dict(v)
    cut = {r["generator"] for r in rows if r.get("cut_by_time") and r["generator"] != CONTROL}
    for g in gens:
        entry = out.setdefault(g, {"verdict": "excluded" if g in failed else "cannot tell", "n": 0})
        entry.update(fidelity=fid.get(g, {}), failed=g in failed, cut_by_time=g in cut)
    n_draws = max((len(v) for v in by.values()), default=0)  # draws (seeds) the study ran
    note = (f"Holm–Bonferroni over {len(tested)} comparison(s) (each generator condition vs the best control "
            f"'{control}', paired by draw, α = {alpha:g})") if tested else "no comparison could be made"
    if failed:
        note += f"; excluded (training failed): {', '.join(sorted(failed))}"
    return {"metric": metric, "control": control, "alpha": alpha, "m": len(tested), "n_draws": n_draws,
            "generators": out, "excluded": sorted(failed), "note": note}
