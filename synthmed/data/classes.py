"""Class selection shared by every loader: keep a subset, collapse to one class, multi-label → single-label."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from synthmed.data.types import LabeledImages
from synthmed.errors import ConfigError, UnknownNameError, suggest

ALL_AS_ONE = "all-as-one"  # the unconditional case some source studies use: every image in one class
ONE_CLASS_NAME = "all"


def _match_names(wanted: Sequence[str], known: Sequence[str], dataset: str) -> list[int]:
    """Indices into ``known`` of each name in ``wanted`` (case-insensitive), or a did-you-mean error."""
    lower = {k.lower(): i for i, k in enumerate(known)}
    out = []
    for w in wanted:
        if w.lower() not in lower:
            hint = suggest(w.lower(), list(lower))
            for k in known:  # show the suggestion in the dataset's own spelling
                hint = hint.replace(f"'{k.lower()}'", f"'{k}'")
            raise UnknownNameError(f"{dataset} has no class '{w}'{hint} (classes: {', '.join(known)})")
        out.append(lower[w.lower()])
    if len(set(out)) != len(out):
        raise ConfigError(f"classes {list(wanted)} name the same class twice; list each class once")
    return out


def select_classes(data: LabeledImages, wanted: Sequence[str]) -> LabeledImages:
    """Keep only images of the named classes; labels are renumbered in the order given.

    Raises:
        UnknownNameError: a name is not a class of ``data`` (the message names the closest one).
        ConfigError: the list is empty or names a class twice.
    """
    if not wanted:
        raise ConfigError("classes is empty; name at least one class or leave it unset for all")
    old = _match_names(wanted, data.class_names, data.name)
    remap = np.full(data.num_classes, -1, dtype=np.int64)
    remap[old] = np.arange(len(old))
    keep = np.flatnonzero(remap[data.labels] >= 0)
    sub = data.subset(keep)
    return LabeledImages(
        images=sub.images,
        labels=remap[sub.labels],
        class_names=tuple(data.class_names[i] for i in old),
        groups=sub.groups,
        official_split=sub.official_split,
        name=data.name,
        meta={**data.meta, "classes": [data.class_names[i] for i in old]},
    )


def collapse_to_one_class(data: LabeledImages) -> LabeledImages:
    """Every image gets label 0 of the single class ``"all"`` (the unconditional case)."""
    return LabeledImages(
        images=data.images,
        labels=np.zeros(len(data), dtype=np.int64),
        class_names=(ONE_CLASS_NAME,),
        groups=data.groups,
        official_split=data.official_split,
        name=data.name,
        meta={**data.meta, "classes": ALL_AS_ONE, "source_classes": list(data.class_names)},
    )


def single_label_subset(
    multi_hot: np.ndarray, label_names: Sequence[str], wanted: Sequence[str], dataset: str
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Turn multi-label rows into single-label classes: keep rows whose only positive label is wanted.

    A row joins class ``w`` when ``w`` is its one and only positive label; rows with several
    findings, or with a finding outside ``wanted``, are dropped. This is how few-shot studies on
    ChestX-ray14 / ChestMNIST define e.g. "no finding" vs "infiltration" without label noise.

    Args:
        multi_hot: ``(N, L)`` 0/1 matrix; include a "no finding" column for rows with no finding.
        label_names: the ``L`` column names.
        wanted: the class names to keep, in label order.
        dataset: name used in error messages.

    Returns:
        ``(rows, labels, class_names)``: kept row indices, their int64 labels and the class names.
    """
    cols = _match_names(wanted, label_names, dataset)
    positive = np.asarray(multi_hot, dtype=bool)
    single = positive.sum(axis=1) == 1
    labels = np.full(len(positive), -1, dtype=np.int64)
    for new, col in enumerate(cols):
        labels[single & positive[:, col]] = new
    rows = np.flatnonzero(labels >= 0)
    return rows, labels[rows], tuple(label_names[c] for c in cols)
