"""``real+duplicate``: the k-shot real images plus as many extra images re-drawn from them as the
study adds synthetic ones: the count-matched control for "more rows"."""

from __future__ import annotations

import numpy as np

from synthmed.conditions.base import (
    Condition,
    ConditionInputs,
    ConditionOptions,
    concat_images,
    register_condition,
    synthetic_label_plan,
)
from synthmed.data.types import LabeledImages
from synthmed.errors import SynthmedError


class DuplicateOptions(ConditionOptions):
    extra_total: int | None = None  # extra images (balanced per class); default: the synthetic set's labels
    extra_ratio: float | None = None  # alternatively: extra = ratio × real images


def _duplicates(real: LabeledImages, labels: np.ndarray, seed: int) -> np.ndarray:
    """Indices into ``real`` re-drawn with replacement, matching ``labels`` class by class."""
    rng = np.random.default_rng(seed)
    idx = np.empty(len(labels), dtype=np.int64)
    for k in np.unique(labels):
        pool = np.flatnonzero(real.labels == k)
        where = np.flatnonzero(labels == k)
        idx[where] = rng.choice(pool, size=len(where), replace=True)
    return idx


def count_matched_indices(inp: ConditionInputs, opts: DuplicateOptions, condition: str) -> np.ndarray:
    """Indices into the k-shot real images, re-drawn class by class, as many as the study adds synthetic images
    (``extra_total`` / ``extra_ratio``, else the synthetic set's labels): the extra rows of a count-matched control."""
    real = inp.real
    if opts.extra_total is not None or opts.extra_ratio is not None:  # count-matched to the study's amount
        labels = synthetic_label_plan(real.labels, real.num_classes, total=opts.extra_total,
                                      ratio=opts.extra_ratio, balanced=True)
    elif inp.synthetic is not None:
        labels = inp.synthetic.labels
    else:
        raise SynthmedError(f"condition '{condition}' needs a count to match: give extra_total or synthetic images")
    return _duplicates(real, np.asarray(labels), inp.seed)


def _build(inp: ConditionInputs, opts: DuplicateOptions):
    real, idx = inp.real, count_matched_indices(inp, opts, "real+duplicate")
    return concat_images(real, real.images[idx], real.labels[idx]), len(real), len(idx)


REAL_DUPLICATE = register_condition(Condition(
    name="real+duplicate", order=2, is_control=True, options=DuplicateOptions, build=_build,
    description="k-shot real + as many extra images re-drawn from them (count-matched control)",
    options_from_study=lambda syn: {"extra_total": syn["total"], "extra_ratio": syn["ratio"]},
    ratio_options=lambda r: {"extra_total": None, "extra_ratio": r},
))
