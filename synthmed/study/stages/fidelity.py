"""Stage ``fidelity``: the calibrated instruments for one synthetic set (``metrics.instruments.instrument_report``)
and the generator's training health (``metrics.health.assess_health``).

Held-out design (the split stage's ``heldout.json``): the synthetic set S is scored against the reference R
beside the floor H vs R at matched sizes (FD, KID, precision/recall, density/coverage, with intervals; per
class with per-class floors); class faithfulness is judged by the extractor stage's classifier, trained on E
only, with the same figures on H as the floor; the copy detector is calibrated on H against the k-shot
images, so its flag rate is read against a stated null rate. Features are extracted once per image set.

Everything that involves no synthetic image (features of H, R and the k-shot images, the floors, the copy
detector's calibration) comes from the seed's ``reference`` stage, computed once for all its generators;
without a ``reference`` input it is computed here (the same numbers).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from synthmed.config import StageConfig
from synthmed.metrics.health import HealthRules
from synthmed.runs.layout import CLOSEST_PAIRS_FILE, FIDELITY_FILE
from synthmed.study.stages.base import StageContext, load_samples, load_split_sets, stage_config
from synthmed.study.stages.extractor import instrument_callables
from synthmed.study.stages.reference import load_reference
from synthmed.utils.io import write_json_atomic

HEALTH_CODE = {"ok": 0, "warning": 1, "failed": 2}  # the health status as a result row (``health``)


class Config(StageConfig):
    fidelity: bool = True
    memorization: bool = True
    per_class: bool = True
    n_subsets: int = Field(50, ge=10)  # half-samples for the fidelity intervals
    n_boot: int = Field(500, ge=100)  # bootstrap resamples for the faithfulness intervals
    alpha: float = Field(0.01, gt=0, lt=1)  # copy detector's null flag rate (raised, with a note, when H is tiny)
    seed: int = 0
    # health rule 3 (metrics.health): part of the key, so fidelity stages cached before the rule existed are
    # judged again (their instruments are recomputed: seconds) instead of keeping a verdict the rule would change
    collapse_recall: float | None = Field(HealthRules.collapse_recall, ge=0, le=1)


def scalars_from(report: dict, health: dict) -> dict[str, float]:
    """The tidy result rows of one fidelity stage: the headline numbers, each a plain float."""
    head, metrics = report["headline"], report["fidelity"]["metrics"]
    out = {"fd_ratio": head["fd_ratio"], "faithfulness_bacc": head["faithfulness_bacc"],
           "faithfulness_bacc_floor": head["faithfulness_bacc_floor"], "copy_rate": head["flag_rate"],
           "copy_null_rate": head["null_rate"], "train_copied": head["train_copied"],
           "health": HEALTH_CODE[health["status"]]}
    for key, m in metrics.items():
        out[key] = m["synthetic"]
        out[f"floor_{key}"] = m["floor"]
    is_syn = ((report["fidelity"].get("inception_score") or {}).get("synthetic") or {}).get("is_mean")
    if is_syn is not None:
        out["is_mean"] = is_syn  # demoted: capped at K (kept for comparison with older papers)
    return {k: float(v) for k, v in out.items() if v is not None and np.isfinite(v)}


def _closest_pairs(folder: Path, synthetic: np.ndarray, train: np.ndarray, top_k: int = 16) -> None:
    """The top-k closest (synthetic, k-shot) pairs in pixel space, as a picture to look at."""
    from sklearn.neighbors import NearestNeighbors

    from synthmed.metrics.memorization import closest_pairs_png

    flat = lambda x: x.reshape(len(x), -1).astype(np.float32) / 255.0  # noqa: E731
    dist, idx = NearestNeighbors(n_neighbors=1).fit(flat(train)).kneighbors(flat(synthetic))
    order = np.argsort(dist[:, 0], kind="stable")[:top_k]
    closest_pairs_png(synthetic, train, np.stack([order, idx[order, 0]], axis=1), folder / CLOSEST_PAIRS_FILE)


def _flat_view(report: dict) -> dict[str, dict[str, float]]:
    """``overall`` / ``floor`` as {metric: value}: the fidelity table's columns."""
    metrics = report["fidelity"]["metrics"]
    overall = {k: m["synthetic"] for k, m in metrics.items()}
    floor = {k: m["floor"] for k, m in metrics.items()}
    is_entry = report["fidelity"].get("inception_score") or {}
    overall["is_mean"] = (is_entry.get("synthetic") or {}).get("is_mean")
    floor["is_mean"] = (is_entry.get("floor") or {}).get("is_mean")
    return {"overall": overall, "floor": floor}


def run(stage, folder: Path, inputs: dict[str, Path], ctx: StageContext) -> dict[str, Any]:
    from synthmed.metrics.health import assess_health
    from synthmed.metrics.instruments import instrument_report
    from synthmed.runs import read_stage_record

    cfg = stage_config(Config, stage)
    sets, _ = load_split_sets(inputs["split"], ctx)
    train, held, ref = sets["train"], sets["heldout"], sets["reference"]
    synthetic = load_samples(inputs["samples"], tuple(train.class_names))
    extractor, featurize, predict_proba = instrument_callables(inputs["extractor"])
    t0 = time.perf_counter()
    prepared = load_reference(inputs["reference"]) if "reference" in inputs else None  # else: computed here
    report = instrument_report(
        (synthetic.images, synthetic.labels), (held.images, held.labels), (ref.images, ref.labels), train.images,
        tuple(train.class_names), featurize=featurize,
        predict_proba=predict_proba, alpha=cfg.alpha, n_subsets=cfg.n_subsets, n_boot=cfg.n_boot,
        per_class=cfg.per_class, seed=cfg.seed, extractor=extractor, prepared=prepared)
    training = read_stage_record(inputs["generator"])["summary"] if "generator" in inputs else None
    family = stage.labels.get("generator")
    health = assess_health(report["fidelity"], report["faithfulness"], training, family=family,
                           rules=HealthRules(collapse_recall=cfg.collapse_recall))
    _closest_pairs(folder, synthetic.images, train.images)
    wall = time.perf_counter() - t0
    out = {"extractor": extractor.describe(), "design": {"reference": "R", "floor": "H vs R", "judge": "trained on E"},
           **report, **_flat_view(report), "health": health, "wall_s": wall}
    write_json_atomic(folder / FIDELITY_FILE, out)
    return {"wall_s": wall, "scalars": scalars_from(report, health), "headline": report["headline"],
            "health": {k: health[k] for k in ("status", "reason", "advice")}}
