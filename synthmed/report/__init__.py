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

from synthmed.report import figures as fig
from synthmed.report.verdict import verdict_block
from synthmed.runs import (
    CONTROL,
    FIDELITY_TABLE,
    HEADLINE_METRICS,
    REPORT_FILE,
    load_results,
    load_split_sets,
    manifest_stages,
    metric_utility_agreement,
    read_manifest,
    summarize_conditions,
    utility_curve,
)
from synthmed.runs.layout import (
    CLOSEST_PAIRS_FILE,
    CONFUSION_FILE,
    EXAMPLES_FILE,
    FIDELITY_FILE,
    GRID_FILE,
    GRIDS_DIR,
    SAMPLES_FILE,
    TRAINING_CURVES_FILE,
)
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


def _load_fakes(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(folder / SAMPLES_FILE) as z:
        return z["images"], z["labels"]


def _generator_entries(run_dir: Path, manifest: dict, fakes: dict) -> list[dict[str, Any]]:
    """One entry per trained generator (grids, curves) and per imported synthetic set; fills ``fakes``
    with the first seed's samples of each label (for the side-by-side grid)."""
    out = []
    first_seed = manifest["seeds"][0]
    for g in manifest_stages(manifest, "generator"):
        gdir, label = run_dir / g["folder"], g["labels"]["generator"]
        samples = [s for s in manifest_stages(manifest, "samples")
                   if s["labels"] == g["labels"] and s["config"].get("ratio") is None]
        if samples and g["labels"].get("seed") == first_seed and label not in fakes:
            fakes[label] = _load_fakes(run_dir / samples[0]["folder"])
        out.append({
            "label": label, "seed": g["labels"].get("seed"), "family": g["config"]["family"],
            "summary": g["summary"], "wall_s": g["wall_s"], "config": g["config"]["config"],
            "samples": _b64_file(run_dir / samples[0]["folder"] / GRID_FILE) if samples else None,
            "progression": _b64(fig.progression_strip(sorted((gdir / GRIDS_DIR).glob("samples_*.png")))),
            "curves": _b64(fig.loss_curves(gdir / TRAINING_CURVES_FILE, f"{label}: training curves")),
        })
    for imp in manifest_stages(manifest, "samples_file"):  # synthetic sets made elsewhere (synthmed evaluate)
        if imp["config"].get("ratio") is not None:
            continue
        label = imp["labels"]["generator"]
        if imp["labels"].get("seed") == first_seed and label not in fakes:
            fakes[label] = _load_fakes(run_dir / imp["folder"])
        out.append({"label": label, "seed": imp["labels"].get("seed"), "family": "imported samples",
                    "summary": imp["summary"], "wall_s": imp["wall_s"], "config": {},
                    "samples": _b64_file(run_dir / imp["folder"] / GRID_FILE), "progression": None, "curves": None})
    return out


def _fidelity_entries(run_dir: Path, manifest: dict) -> list[dict[str, Any]]:
    out = []
    for f in manifest_stages(manifest, "fidelity"):
        fdir = run_dir / f["folder"]
        data = json.loads((fdir / FIDELITY_FILE).read_text()) if (fdir / FIDELITY_FILE).exists() else {}
        out.append({"label": f["labels"]["generator"], "seed": f["labels"].get("seed"), "data": data,
                    "pairs": _b64_file(fdir / CLOSEST_PAIRS_FILE)})
    return out


def _confusion_entries(run_dir: Path, manifest: dict) -> list[dict[str, Any]]:
    out = []
    for c in manifest_stages(manifest, "classify"):
        if c["labels"].get("seed") == manifest["seeds"][0]:
            gen = c["labels"]["generator"]
            label = c["labels"]["condition"] + ("" if gen == CONTROL else f" ({gen})")
            out.append({"label": label, "png": _b64_file(run_dir / c["folder"] / CONFUSION_FILE)})
    return out


def gather(run_dir: Path) -> dict[str, Any]:
    """Everything the report shows, as plain data (also used by the web app)."""
    manifest = read_manifest(run_dir)
    rows = load_results(run_dir)
    split_stage = manifest_stages(manifest, "split")[0]
    split_summary = split_stage["summary"]
    class_names = split_summary["class_names"]
    summaries = {m: summarize_conditions(rows, m) for m in HEADLINE_METRICS}
    curve = utility_curve(rows)
    fakes: dict[str, tuple] = {}
    ctx: dict[str, Any] = {
        "manifest": manifest,
        "class_names": class_names,
        "split": split_summary,
        "leakage": leakage_text(split_summary.get("duplicates")),
        "split_examples": _b64_file(run_dir / split_stage["folder"] / EXAMPLES_FILE),
        "summaries": summaries,
        "verdict": verdict_block(rows, manifest),
        "agreement": metric_utility_agreement(rows),
        "curve": curve,
        "curve_png": _b64(fig.utility_curve(curve)),
        "heldout": split_summary.get("heldout"),
        "lead_metric": "roc_auc" if summaries.get("roc_auc") else "macro_f1",
        "generators": _generator_entries(run_dir, manifest, fakes),
        "fidelity": _fidelity_entries(run_dir, manifest),
        "fidelity_keys": list(FIDELITY_TABLE),
        "timings": [{"name": s["name"], "wall_s": s["wall_s"], "cached": s["cached"]} for s in manifest["stages"]],
        "bars": {m: _b64(fig.metric_bars(summaries[m], m, f"{m} by condition (mean, 95 % CI)"))
                 for m in ("roc_auc", "macro_f1") if summaries.get(m)},
        "per_class_f1": _b64(fig.per_class_f1(rows, class_names)),
        "confusion": _confusion_entries(run_dir, manifest),
    }
    train_pool = _real_examples(run_dir, split_stage)
    if fakes and train_pool is not None:
        ctx["side_by_side"] = _b64(fig.real_vs_generators(train_pool, fakes, class_names))
    return ctx


def _real_examples(run_dir: Path, split_stage: dict):
    """The k-shot real training images of the first split (for the side-by-side grid)."""
    try:
        sets, _ = load_split_sets(run_dir / split_stage["folder"])
        return sets["train"].images, sets["train"].labels
    except Exception:  # the dataset may not be present where the report is rebuilt; the grid is optional
        return None


def template_env():
    """The Jinja2 environment of the report's templates (``report.html.j2`` and the sections it includes)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("synthmed", "report/templates"), autoescape=select_autoescape())
    env.filters["num"] = lambda v, d=3: "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{d}f}"
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, default=str)
    return env


def render_report(run_dir: str | Path) -> str:
    run_dir = Path(run_dir)
    read_manifest(run_dir)  # a clear error for a folder that is not a finished run
    return template_env().get_template("report.html.j2").render(**gather(run_dir))


def write_report(run_dir: str | Path) -> Path:
    """Render ``report.html`` into the run folder (atomically) and return its path."""
    run_dir = Path(run_dir)
    html = render_report(run_dir)
    return write_text_atomic(run_dir / REPORT_FILE, html)


__all__ = ["write_report", "render_report", "gather", "template_env"]
