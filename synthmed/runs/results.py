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
FIDELITY_SCALARS = ("fid", "kid_mean", "precision", "recall", "is_mean")
FIDELITY_TABLE = ("fid", "kid_mean", "precision", "recall", "f_score", "is_mean")
FIELDS = ("dataset", "generator", "condition", "seed", "metric", "value")


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


def collect_results(records: Iterable[dict[str, Any]], dataset: str) -> list[dict[str, Any]]:
    """Tidy rows from finished stage records (``stage.json`` contents), in the order given."""
    rows: list[dict[str, Any]] = []
    for rec in records:
        make = ROW_MAKERS.get(rec["kind"])
        if make is not None:
            labels = rec["labels"]
            base = {"dataset": dataset, "generator": labels.get("generator", CONTROL), "seed": labels.get("seed")}
            rows += make(base, labels, rec["summary"])
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
