"""Stage ``reference``: the seed-level half of the instruments, computed once for all of a seed's generators
(``metrics.instruments.prepare_reference``): the features of H, R and the k-shot images, the fidelity floor
H vs R at the synthetic set's matched size with its half-samples (overall and per class), the judge on H
(the class-faithfulness floor) and the copy detector's calibration on H (its null rate). Each ``fidelity``
stage of the seed reads it and computes only the synthetic side: the same numbers as computing everything
there, once instead of once per generator.

A stage of its own (not part of ``extractor``) so that changing a metric setting (``n_subsets``, ``n_boot``,
``alpha``) recomputes the floors without retraining the extractor.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from synthmed.config import StageConfig
from synthmed.study.stages import samples as S
from synthmed.study.stages.base import StageContext, load_split_sets, stage_config
from synthmed.study.stages.extractor import instrument_callables


class Config(StageConfig):
    per_class: bool = True
    n_subsets: int = Field(50, ge=10)  # half-samples for the fidelity intervals
    n_boot: int = Field(500, ge=100)  # bootstrap resamples for the faithfulness intervals
    alpha: float = Field(0.01, gt=0, lt=1)  # copy detector's null flag rate
    seed: int = 0
    # the synthetic set's label plan (as the samples stages draw it): the floors are size-matched to it
    total: int | None = Field(None, ge=0)
    ratio: float | None = Field(None, ge=0)
    balanced: bool = True


def synthetic_counts(cfg: Config, train) -> np.ndarray:
    """Images per class of the seed's synthetic sets (the samples stages' label plan)."""
    plan = S.label_plan(S.Config(total=cfg.total, ratio=cfg.ratio, balanced=cfg.balanced, seed=0), train)
    return np.bincount(plan, minlength=train.num_classes)


def run(stage, folder: Path, inputs: dict[str, Path], ctx: StageContext) -> dict[str, Any]:
    from synthmed.metrics.instruments import prepare_reference

    cfg = stage_config(Config, stage)
    sets, _ = load_split_sets(inputs["split"], ctx)
    train, held, ref = sets["train"], sets["heldout"], sets["reference"]
    extractor, featurize, predict_proba = instrument_callables(inputs["extractor"])
    counts = synthetic_counts(cfg, train)
    t0 = time.perf_counter()
    prepared = prepare_reference(
        (held.images, held.labels), (ref.images, ref.labels), train.images, tuple(train.class_names), counts,
        featurize=featurize, predict_proba=predict_proba, alpha=cfg.alpha,
        n_subsets=cfg.n_subsets, n_boot=cfg.n_boot, per_class=cfg.per_class, seed=cfg.seed, extractor=extractor)
    prepared.save(folder)
    return {"wall_s": time.perf_counter() - t0, "synthetic_counts": counts.tolist(), "n_heldout": len(held),
            "n_reference": len(ref), "null_rate": prepared.calibration["null"]["rate"],
            "alpha": prepared.calibration["alpha"], "floor_sizes": None if prepared.floor is None else prepared.floor.n}


def load_reference(folder: Path):
    """The ``PreparedReference`` a finished reference stage saved."""
    from synthmed.metrics.instruments import PreparedReference

    return PreparedReference.load(folder)
