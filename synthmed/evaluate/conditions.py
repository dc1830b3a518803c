"""Build the classifier's training set for each downstream condition.

Every condition is trained with the same classifier and the same step budget and evaluated on the
same test set, so the only thing that differs is the training data (and, for ``real+classic``, the
augmentation switch):

=================  ==========================================================  =========
condition          training images                                             augment
=================  ==========================================================  =========
real               the k-shot real images                                      off
synthetic          synthetic images only                                       off
real+synthetic     k-shot real + synthetic (count or ratio, balanced)          off
real+classic       the k-shot real images                                      on
real+duplicate     k-shot real + the same number of extra images re-drawn     off
                   from the real ones (count-matched control for "more rows")
all-real           every real image allowed for training (the ceiling)         off
=================  ==========================================================  =========
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthmed.data.types import LabeledImages
from synthmed.errors import SynthmedError, unknown_name

CONDITIONS = ("real", "synthetic", "real+synthetic", "real+classic", "real+duplicate", "all-real")
NEEDS_SYNTHETIC = ("synthetic", "real+synthetic")


@dataclass(frozen=True)
class ConditionSet:
    condition: str
    train: LabeledImages
    augment: bool
    n_real: int
    n_extra: int  # synthetic or duplicated images added


def synthetic_label_plan(real_labels: np.ndarray, num_classes: int, *, total: int | None = None,
                         ratio: float | None = None, balanced: bool = True) -> np.ndarray:
    """Labels of the synthetic images to add: ``total`` images (or ``ratio`` × real), balanced per class
    (remainder spread over the first classes) or following the real class mix."""
    n_real = len(real_labels)
    if ratio is not None:
        total = int(round(ratio * n_real))
    if total is None or total < 0:
        raise SynthmedError(f"synthetic amount must be a count ≥ 0 or a ratio; got total={total}, ratio={ratio}")
    if balanced:
        counts = np.full(num_classes, total // num_classes)
        counts[: total % num_classes] += 1
    else:
        mix = np.bincount(real_labels, minlength=num_classes) / max(n_real, 1)
        counts = np.floor(mix * total).astype(int)
        counts[np.argsort(-mix)[: total - counts.sum()]] += 1
    return np.repeat(np.arange(num_classes), counts)


def _concat(a: LabeledImages, b_images: np.ndarray, b_labels: np.ndarray) -> LabeledImages:
    if b_images.shape[1:] != a.images.shape[1:]:
        raise SynthmedError(
            f"synthetic images have shape {b_images.shape[1:]} but the real ones {a.images.shape[1:]}; "
            "train the generator at the dataset's size and channels"
        )
    return LabeledImages(
        images=np.concatenate([a.images, b_images]),
        labels=np.concatenate([a.labels, b_labels.astype(np.int64)]),
        class_names=a.class_names,
        name=a.name,
        meta=dict(a.meta),
    )


def _duplicates(real: LabeledImages, labels: np.ndarray, seed: int) -> np.ndarray:
    """Indices into ``real`` re-drawn with replacement, matching ``labels`` class by class."""
    rng = np.random.default_rng(seed)
    idx = np.empty(len(labels), dtype=np.int64)
    for k in np.unique(labels):
        pool = np.flatnonzero(real.labels == k)
        where = np.flatnonzero(labels == k)
        idx[where] = rng.choice(pool, size=len(where), replace=True)
    return idx


def build_condition(condition: str, *, real: LabeledImages, train_pool: LabeledImages | None = None,
                    synthetic: LabeledImages | None = None, extra_labels: np.ndarray | None = None,
                    seed: int = 0) -> ConditionSet:
    """Training set for one condition.

    Args:
        condition: one of ``CONDITIONS``.
        real: the k-shot real training images.
        train_pool: every real image allowed for training (for ``all-real``).
        synthetic: generated images (for ``synthetic`` and ``real+synthetic``); used as given.
        extra_labels: labels of the count-matched extra images for ``real+duplicate``
            (default: the synthetic set's labels).
        seed: seeds the re-draw of ``real+duplicate``.
    """
    if condition not in CONDITIONS:
        raise unknown_name("condition", condition, CONDITIONS)
    n_real = len(real)
    if condition in NEEDS_SYNTHETIC and (synthetic is None or len(synthetic) == 0):
        raise SynthmedError(f"condition '{condition}' needs synthetic images; add a generator to the study")
    if condition == "real":
        return ConditionSet(condition, real, False, n_real, 0)
    if condition == "real+classic":
        return ConditionSet(condition, real, True, n_real, 0)
    if condition == "synthetic":
        return ConditionSet(condition, synthetic, False, 0, len(synthetic))
    if condition == "real+synthetic":
        return ConditionSet(condition, _concat(real, synthetic.images, synthetic.labels), False, n_real, len(synthetic))
    if condition == "real+duplicate":
        labels = extra_labels if extra_labels is not None else (synthetic.labels if synthetic is not None else None)
        if labels is None:
            raise SynthmedError("condition 'real+duplicate' needs a count to match: give extra_labels or synthetic images")
        idx = _duplicates(real, np.asarray(labels), seed)
        return ConditionSet(condition, _concat(real, real.images[idx], real.labels[idx]), False, n_real, len(idx))
    if train_pool is None:  # all-real
        raise SynthmedError("condition 'all-real' needs the full real training pool (split manifest 'train_pool')")
    return ConditionSet(condition, train_pool, False, len(train_pool), 0)
