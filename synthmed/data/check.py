"""Check a study's inputs before any training starts: the dataset loads (fetched now if it is
missing and downloads are allowed) and every synthetic samples file fits it.

``synthmed run`` and ``synthmed evaluate`` call ``check_inputs`` first, so a wrong file fails in
seconds with one line instead of after the split, the extractor and the control classifiers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from synthmed.data.files import display_path, read_npz
from synthmed.data.registry import load_study_dataset
from synthmed.data.types import LabeledImages
from synthmed.errors import DataFormatError, DataNotFoundError

SAMPLES_LAYOUT = "'images' (N, H, W, C) uint8 and 'labels' (N,) class indices"
SAMPLES_FILE, GENERATOR_FILE = "samples.npz", "generator.pt"


def check_samples(path: str | Path, data: LabeledImages) -> None:
    """Raise a one-line error unless ``path`` is a usable synthetic set for ``data``: an npz with
    images of the dataset's size and channels and labels in ``0..K-1``, a folder holding one
    (``samples.npz``) or a trained generator (``generator.pt``, checked when it is loaded)."""
    path = Path(path)
    if path.is_dir():
        if (path / GENERATOR_FILE).exists() and not (path / SAMPLES_FILE).exists():
            return
        path = path / SAMPLES_FILE
    if not path.exists():
        raise DataNotFoundError(f"{display_path(path)} does not exist; pass an npz with {SAMPLES_LAYOUT}, "
                                f"a folder holding {SAMPLES_FILE}, or a folder holding {GENERATOR_FILE}")
    if path.suffix == ".pt":
        return
    arrays = read_npz(path, ["images", "labels"], SAMPLES_LAYOUT, fix=f"pass an npz with {SAMPLES_LAYOUT}")
    images, labels = arrays["images"], arrays["labels"]
    if images.ndim == 3:
        images = images[..., None]
    want = data.images.shape[1:]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != want:
        raise DataFormatError(f"{path.name}: images are {images.dtype} {tuple(images.shape[1:])}, the study's real "
                              f"images uint8 {tuple(want)}; sample at the dataset's size and channels")
    if not np.issubdtype(labels.dtype, np.integer) or labels.size != len(images):
        raise DataFormatError(f"{path.name}: labels are {labels.dtype} {labels.shape} for {len(images)} images; "
                              f"expected one integer class index per image")
    labels = labels.reshape(-1)
    bad = np.unique(labels[(labels < 0) | (labels >= data.num_classes)])
    if len(bad):
        shown = ", ".join(map(str, bad[:5].tolist())) + (", ..." if len(bad) > 5 else "")
        names = ", ".join(f"{i}={n}" for i, n in enumerate(data.class_names))
        raise DataFormatError(f"{path.name}: label(s) {shown} are outside 0..{data.num_classes - 1} "
                              f"({names}); relabel the images with these class indices")


def check_inputs(dataset: Mapping, samples: Sequence[str | Path] = (), *, data_dir: str | Path | None = None) -> LabeledImages:
    """Load the study's dataset (``dataset``: name, size, path, classes, download as in the study
    config) and check each samples file against it; return the dataset. Raises one-line
    ``SynthmedError``s only."""
    data = load_study_dataset(dataset, data_dir)
    for s in samples:
        check_samples(s, data)
    return data
