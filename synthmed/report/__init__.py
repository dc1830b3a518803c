"""The self-contained HTML report of a study run (``report.html``; images inlined as base64).

``write_report(run_dir)`` reads only the run folder (manifest, results, stage folders), so
``synthmed report RUN`` can rebuild it at any time.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np

from synthmed.errors import DataNotFoundError
from synthmed.report import figures as fig
from synthmed.study.expand import CONTROL
from synthmed.study.results import HEADLINE_METRICS, load_results, summarize_conditions
from synthmed.utils.io import write_text_atomic


def _b64(png: bytes | None) -> str | None:
    return None if png is None else "data:image/png;base64," + base64.b64encode(png).decode()


def _b64_file(path: Path) -> str | None:
    return _b64(path.read_bytes()) if path.exists() else None


def leakage_text(dup: dict | None) -> str | None:
    """One sentence from a split's duplicate report: what was shared, what was removed."""
    if not dup:
        return None
    shared = {k: v for k, v in (dup.get("shared_images") or {}).items() if v}
    removed = {k: len(v) for k, v in (dup.get("removed") or {}).items() if v}
    within = {k: v for k, v in (dup.get("within_split") or {}).items() if v}
    parts = [f"exact duplicates by {dup.get('method', 'pixel hash')}"]
    parts.append("shared across splits: " + (", ".join(f"{k} {v}" for k, v in shared.items()) or "none"))
    parts.append("removed: " + (", ".join(f"{v} from {k}" for k, v in removed.items()) or "none"))
    if within:
        parts.append("repeats inside a split (kept): " + ", ".join(f"{k} {v}" for k, v in within.items()))
    return "; ".join(parts) + "."


def _stages(manifest: dict, kind: str) -> list[dict]:
    return [s for s in manifest["stages"] if s["kind"] == kind]


def gather(run_dir: Path) -> dict[str, Any]:
    """Everything the report shows, as plain data (also used by the web app)."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    rows = load_results(run_dir)
    split_stage = _stages(manifest, "split")[0]
    split_summary = split_stage["summary"]
    class_names = split_summary["class_names"]
    summaries = {m: summarize_conditions(rows, m) for m in HEADLINE_METRICS}
    split_dir = run_dir / split_stage["folder"]
    ctx: dict[str, Any] = {
        "manifest": manifest,
        "class_names": class_names,
        "split": split_summary,
        "leakage": leakage_text(split_summary.get("duplicates")),
        "split_examples": _b64_file(split_dir / "examples.png"),
        "summaries": summaries,
        "lead_metric": "roc_auc" if summaries.get("roc_auc") else "macro_f1",
        "generators": [],
        "fidelity": [],
        "fidelity_keys": ["fid", "kid_mean", "precision", "recall", "f_score", "is_mean"],
        "timings": [{"name": s["name"], "wall_s": s["wall_s"], "cached": s["cached"]} for s in manifest["stages"]],
    }
    ctx["bars"] = {m: _b64(fig.metric_bars(summaries[m], m, f"{m} by condition (mean, 95 % CI)"))
                   for m in ("roc_auc", "macro_f1") if summaries.get(m)}
    ctx["per_class_f1"] = _b64(fig.per_class_f1(rows, class_names))
    fakes = {}
    for g in _stages(manifest, "generator"):
        gdir = run_dir / g["folder"]
        label = g["labels"]["generator"]
        samples = [s for s in _stages(manifest, "samples") if s["labels"] == g["labels"] and s["config"].get("ratio") is None]
        sample_grid = _b64_file(run_dir / samples[0]["folder"] / "grid.png") if samples else None
        if samples and g["labels"].get("seed") == manifest["seeds"][0] and label not in fakes:
            with np.load(run_dir / samples[0]["folder"] / "samples.npz") as z:
                fakes[label] = (z["images"], z["labels"])
        ctx["generators"].append({
            "label": label, "seed": g["labels"].get("seed"), "family": g["config"]["family"],
            "summary": g["summary"], "wall_s": g["wall_s"], "config": g["config"]["config"],
            "samples": sample_grid,
            "progression": _b64(fig.progression_strip(sorted((gdir / "grids").glob("samples_*.png")))),
            "curves": _b64(fig.loss_curves(gdir / "metrics.csv", f"{label}: training curves")),
        })
    for imp in _stages(manifest, "samples_file"):  # synthetic sets made elsewhere (synthmed evaluate)
        if imp["config"].get("ratio") is not None:
            continue
        label = imp["labels"]["generator"]
        if imp["labels"].get("seed") == manifest["seeds"][0] and label not in fakes:
            with np.load(run_dir / imp["folder"] / "samples.npz") as z:
                fakes[label] = (z["images"], z["labels"])
        ctx["generators"].append({"label": label, "seed": imp["labels"].get("seed"), "family": "imported samples",
                                  "summary": imp["summary"], "wall_s": imp["wall_s"], "config": {},
                                  "samples": _b64_file(run_dir / imp["folder"] / "grid.png"),
                                  "progression": None, "curves": None})
    for f in _stages(manifest, "fidelity"):
        fdir = run_dir / f["folder"]
        data = json.loads((fdir / "fidelity.json").read_text()) if (fdir / "fidelity.json").exists() else {}
        ctx["fidelity"].append({"label": f["labels"]["generator"], "seed": f["labels"].get("seed"), "data": data,
                                "pairs": _b64_file(fdir / "closest_pairs.png")})
    train_pool = _real_examples(run_dir, split_stage)
    if fakes and train_pool is not None:
        ctx["side_by_side"] = _b64(fig.real_vs_generators(train_pool, fakes, class_names))
    cms = []
    for c in _stages(manifest, "classify"):
        if c["labels"].get("seed") == manifest["seeds"][0]:
            cm = _b64_file(run_dir / c["folder"] / "confusion_matrix.png")
            label = c["labels"]["condition"] + ("" if c["labels"]["generator"] == CONTROL else f" ({c['labels']['generator']})")
            cms.append({"label": label, "png": cm})
    ctx["confusion"] = cms
    return ctx


def _real_examples(run_dir: Path, split_stage: dict):
    """The k-shot real training images of the first split (for the side-by-side grid)."""
    try:
        from synthmed.study.tasks import StageContext, load_split_sets

        sets, _ = load_split_sets(run_dir / split_stage["folder"], StageContext(progress=False))
        return sets["train"].images, sets["train"].labels
    except Exception:  # the dataset may not be present where the report is rebuilt; the grid is optional
        return None


def render_report(run_dir: str | Path) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    run_dir = Path(run_dir)
    if not (run_dir / "manifest.json").exists():
        raise DataNotFoundError(f"{run_dir} is not a finished study run (no manifest.json); run 'synthmed run' first")
    env = Environment(loader=PackageLoader("synthmed", "report/templates"), autoescape=select_autoescape())
    env.filters["num"] = lambda v, d=3: "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{d}f}"
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, default=str)
    return env.get_template("report.html.j2").render(**gather(run_dir))


def write_report(run_dir: str | Path) -> Path:
    """Render ``report.html`` into the run folder (atomically) and return its path."""
    run_dir = Path(run_dir)
    html = render_report(run_dir)
    return write_text_atomic(run_dir / "report.html", html)


__all__ = ["write_report", "render_report", "gather"]
