"""The tidy results table (one row per dataset × generator × condition × seed × metric) and the
summary over seeds: mean, 95 % CI, paired comparisons against ``real`` and the best control."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from synthmed.study.config import StudyConfig
from synthmed.study.expand import CONTROL
from synthmed.study.graph import STAGE_FILE, Stage
from synthmed.utils.io import write_json_atomic, write_text_atomic

HEADLINE_METRICS = ("roc_auc", "macro_f1", "balanced_accuracy", "accuracy")  # AUC and macro-F1 lead (see README)
CONTROLS = ("real+classic", "real+duplicate")
FIELDS = ("dataset", "generator", "condition", "seed", "metric", "value")


def collect_results(stages: list[Stage], records: dict[str, dict], cfg: StudyConfig) -> list[dict[str, Any]]:
    """Tidy rows from every finished classify and fidelity stage."""
    rows: list[dict[str, Any]] = []
    dataset = f"{cfg.dataset.name}_{cfg.dataset.size}"
    for s in stages:
        rec = records.get(s.key)
        if rec is None:
            continue
        base = {"dataset": dataset, "generator": s.labels.get("generator", CONTROL), "seed": s.labels.get("seed")}
        if s.kind == "classify":
            m = rec["summary"].get("metrics") or {}
            cond = s.labels["condition"]
            for k in HEADLINE_METRICS:
                if m.get(k) is not None:
                    rows.append({**base, "condition": cond, "metric": k, "value": float(m[k])})
            for cname, pc in (m.get("per_class") or {}).items():
                if pc.get("f1") is not None:
                    rows.append({**base, "condition": cond, "metric": f"f1[{cname}]", "value": float(pc["f1"])})
        elif s.kind == "fidelity":
            for k, v in (rec["summary"].get("scalars") or {}).items():
                rows.append({**base, "condition": "fidelity", "metric": k, "value": float(v)})
    return rows


def write_results(out: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    write_text_atomic(out / "results.csv", buf.getvalue())
    write_json_atomic(out / "results.json", rows)


def summarize_conditions(rows: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Per (generator, condition): mean ± CI over seeds, paired comparison vs real and vs the best
    control, gap closed towards all-real, and a plain-words verdict."""
    from synthmed.metrics.stats import describe_comparison, gap_closed, paired_comparison, summarize

    by: dict[tuple[str, str], dict[int, float]] = {}
    for r in rows:
        if r["metric"] == metric and r["condition"] != "fidelity":
            by.setdefault((r["generator"], r["condition"]), {})[r["seed"]] = r["value"]
    real = by.get((CONTROL, "real"), {})
    all_real = by.get((CONTROL, "all-real"), {})
    controls = {c: by[(CONTROL, c)] for c in CONTROLS if (CONTROL, c) in by}
    best_control = max(controls, key=lambda c: sum(controls[c].values()) / len(controls[c]), default=None)
    order = {c: i for i, c in enumerate(("real", "real+classic", "real+duplicate", "all-real", "synthetic", "real+synthetic"))}
    out = []
    for (gen, cond), vals in sorted(by.items(), key=lambda kv: (kv[0][0] != CONTROL, kv[0][0],
                                                                  order.get(kv[0][1], 99), kv[0][1])):
        seeds = sorted(vals)
        row: dict[str, Any] = {"generator": gen, "condition": cond, "metric": metric,
                               **summarize([vals[s] for s in seeds])}
        label = cond if gen == CONTROL else f"{cond} ({gen})"
        for ref_name, ref in (("real", real), (best_control, controls.get(best_control) if best_control else None)):
            if not ref or ref_name is None or (gen == CONTROL and (cond == ref_name or ref_name != "real")):
                continue  # controls are compared with real only; generator conditions also with the best control
            common = [s for s in seeds if s in ref]
            if not common:
                continue
            cmp = paired_comparison([vals[s] for s in common], [ref[s] for s in common])
            row[f"vs_{'real' if ref_name == 'real' else 'control'}"] = {
                **cmp, "against": ref_name, "text": describe_comparison(label, ref_name, cmp, metric)}
        if real and all_real:
            common = [s for s in seeds if s in real and s in all_real]
            if common:
                mean = lambda d: sum(d[s] for s in common) / len(common)  # noqa: E731
                row["gap_closed"] = gap_closed(mean(vals), mean(real), mean(all_real))
        out.append(row)
    return out


def load_results(run_dir: str | Path) -> list[dict[str, Any]]:
    return json.loads((Path(run_dir) / "results.json").read_text())


__all__ = ["collect_results", "write_results", "summarize_conditions", "load_results", "STAGE_FILE"]
