"""The one in-memory dataset type every loader returns and every later stage consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from synthmed.errors import DataFormatError
from synthmed.utils.io import sha256_array


@dataclass(frozen=True)
class LabeledImages:
    """Images with single-label classes.

    Attributes:
        images: ``(N, H, W, C)`` uint8, C = 1 (grey) or 3 (RGB).
        labels: ``(N,)`` int64 class indices in ``[0, len(class_names))``.
        class_names: human-readable name per class index.
        groups: optional ``(N,)`` str group ids (lesion, patient); images of a group never
            land in two splits.
        official_split: optional ``(N,)`` str of "train"/"val"/"test" when the source ships a split.
        name: dataset id, e.g. ``"pneumoniamnist"`` or ``"ham10000_28"``.
        meta: free-form provenance (source path, licence, size...).
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    groups: np.ndarray | None = None
    official_split: np.ndarray | None = None
    name: str = "dataset"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        imgs, labels = self.images, self.labels
        if imgs.ndim != 4 or imgs.shape[-1] not in (1, 3):
            raise DataFormatError(
                f"{self.name}: images must be (N, H, W, C) with C in (1, 3); got shape {imgs.shape}"
            )
        if imgs.dtype != np.uint8:
            raise DataFormatError(f"{self.name}: images must be uint8; got {imgs.dtype}")
        if labels.ndim != 1 or len(labels) != len(imgs):
            raise DataFormatError(
                f"{self.name}: labels must be (N,) with N = {len(imgs)} images; got shape {labels.shape}"
            )
        k = len(self.class_names)
        if len(labels) and (labels.min() < 0 or labels.max() >= k):
            raise DataFormatError(
                f"{self.name}: labels must lie in [0, {k - 1}] for {k} classes; "
                f"found values {int(labels.min())}..{int(labels.max())}"
            )
        for attr in ("groups", "official_split"):
            v = getattr(self, attr)
            if v is not None and len(v) != len(imgs):
                raise DataFormatError(f"{self.name}: {attr} has {len(v)} entries for {len(imgs)} images")

    # -- facts ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    @property
    def channels(self) -> int:
        return int(self.images.shape[-1])

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=self.num_classes)
        return {n: int(c) for n, c in zip(self.class_names, counts)}

    @property
    def checksum(self) -> str:
        """sha256 over images, labels and (when present) groups and the official split."""
        extra = [a.astype(str) for a in (self.groups, self.official_split) if a is not None]
        return sha256_array(self.images, self.labels.astype(np.int64), *[np.char.encode(e) for e in extra])

    # -- views --------------------------------------------------------------------
    def subset(self, indices: np.ndarray) -> "LabeledImages":
        idx = np.asarray(indices, dtype=np.int64)
        return LabeledImages(
            images=np.asarray(self.images[idx]),
            labels=self.labels[idx],
            class_names=self.class_names,
            groups=None if self.groups is None else self.groups[idx],
            official_split=None if self.official_split is None else self.official_split[idx],
            name=self.name,
            meta=dict(self.meta),
        )

    def __repr__(self) -> str:
        return (
            f"LabeledImages(name={self.name!r}, n={len(self)}, size={self.image_size}, "
            f"channels={self.channels}, classes={self.class_counts()})"
        )
