"""HAM10000 dermoscopy: array files (``ham10000_<size>.npz``) or the original metadata CSV + JPEG folders.

- Array files (``load_dataset("ham10000", size=28|64)``) hold ``images``, ``labels``,
  ``image_ids``, ``lesion_ids`` and ``sources`` (see shared/data/PROVENANCE.md).
- The original layout (``load_dataset("ham10000", path=DIR)``): ``DIR/HAM10000_metadata.csv`` and
  the JPEGs anywhere under ``DIR`` (``HAM10000_images_part_1/2``), named ``<image_id>.jpg``.
  Images are squash-resized to ``size`` with bicubic, as MedMNIST does.

In both, ``lesion_id`` is the group: images of one lesion never land in two splits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthmed.data.files import display_path, index_images, missing_file, read_csv_rows, read_images, read_npz, require_folder
from synthmed.data.registry import DatasetInfo, DatasetSpec, register_dataset
from synthmed.data.types import LabeledImages
from synthmed.errors import DataFormatError, DataNotFoundError

NAME = "ham10000"
CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")  # alphabetical = label index, as in the array files
ARRAY_KEYS = ("images", "labels", "image_ids", "lesion_ids", "sources")
ARRAY_SIZES = (28, 64)  # the array files that exist in shared/data
METADATA = "HAM10000_metadata.csv"
LICENCE = "CC BY-NC-SA 4.0"  # as the Harvard Dataverse / ISIC distribution states


def array_file(size: int) -> str:
    return f"{NAME}_{size}.npz"


def load_array_file(file: Path, size: int) -> LabeledImages:
    """Read ``ham10000_<size>.npz``; groups are the lesion ids."""
    if not file.exists():
        raise missing_file(file, f"pass path=DIR holding {METADATA} and the HAM10000 image folders")
    arrays = read_npz(file, ARRAY_KEYS, "images, labels, image_ids, lesion_ids, sources",
                      fix=f"delete it and copy a good {file.name} into {display_path(file.parent)} again")
    images, labels = arrays["images"], arrays["labels"]
    if images.ndim != 4 or images.shape[1:] != (size, size, 3) or images.dtype != np.uint8:
        raise DataFormatError(f"{file.name}: images are {images.shape} {images.dtype}; expected (N, {size}, {size}, 3) uint8")
    if any(len(arrays[k]) != len(images) for k in ARRAY_KEYS):
        raise DataFormatError(f"{file.name}: arrays differ in length {[len(arrays[k]) for k in ARRAY_KEYS]}")
    if labels.ndim != 1 or (len(labels) and (labels.min() < 0 or labels.max() >= len(CLASSES))):
        raise DataFormatError(f"{file.name}: labels must be (N,) in 0..{len(CLASSES) - 1}; found {labels.min()}..{labels.max()}")
    sources, counts = np.unique(arrays["sources"].astype(str), return_counts=True)
    return LabeledImages(
        images=images, labels=labels.astype(np.int64), class_names=CLASSES,
        groups=arrays["lesion_ids"].astype(str), name=f"{NAME}_{size}",
        meta={"path": str(file), "licence": LICENCE, "size": size, "group": "lesion_id",
              "sources": dict(zip(sources.tolist(), counts.tolist()))},
    )


def load_original(root: Path, size: int, on_bad_image: str = "error") -> LabeledImages:
    """Read the original layout: metadata CSV + JPEG folders, resized to ``size``."""
    root = require_folder(root, NAME, f"{METADATA} and HAM10000_images_part_1/2")
    csv_path = root / METADATA
    if not csv_path.exists():
        found = sorted(root.rglob(METADATA))
        if not found:
            raise DataNotFoundError(f"{METADATA} is not in {root}; pass path=DIR holding it and the image folders")
        csv_path = found[0]
    rows = read_csv_rows(csv_path, ["lesion_id", "image_id", "dx"])
    bad = sorted({r["dx"] for r in rows} - set(CLASSES))
    if bad:
        raise DataFormatError(f"{csv_path}: unknown dx value(s) {bad}; expected one of {', '.join(CLASSES)}")
    files = index_images(root)
    paths = [files.get(f"{r['image_id']}.jpg") or files.get(f"{r['image_id']}.png") for r in rows]
    for r, p in zip(rows, paths):
        if p is None and on_bad_image == "error":
            raise DataNotFoundError(
                f"{r['image_id']}.jpg (listed in {csv_path.name}) is not under {root}; "
                f"add it, or pass on_bad_image='skip' to leave missing images out"
            )
    images, kept = read_images(paths, size=size, channels=3, on_bad_image=on_bad_image)
    rows = [rows[i] for i in kept]
    return LabeledImages(
        images=images,
        labels=np.array([CLASSES.index(r["dx"]) for r in rows], dtype=np.int64),
        class_names=CLASSES,
        groups=np.array([r["lesion_id"] for r in rows]),
        name=f"{NAME}_{size}",
        meta={"path": str(root), "licence": LICENCE, "size": size, "group": "lesion_id",
              "image_ids": len(rows), "skipped": int(len(paths) - len(kept))},
    )


def _load(*, size: int, data_dir: Path, download: bool, path: Path | None, classes=None,
          on_bad_image: str = "error") -> LabeledImages:
    # ``download`` is accepted for a uniform call; HAM10000 needs a licence click-through, so never.
    if path is not None:
        return load_original(path, size, on_bad_image) if path.is_dir() else load_array_file(path, size)
    if size not in ARRAY_SIZES:
        raise DataNotFoundError(
            f"{array_file(size)} does not exist (array files come in {ARRAY_SIZES} px); "
            f"pass path=DIR holding {METADATA} and the images to resize to {size} px"
        )
    return load_array_file(data_dir / array_file(size), size)


def _describe(data_dir: Path) -> DatasetInfo:
    present = [s for s in ARRAY_SIZES if (data_dir / array_file(s)).exists()]
    return DatasetInfo(
        name=NAME, kind="array-file or ham10000-folder", sizes=ARRAY_SIZES, classes=CLASSES, licence=LICENCE,
        channels=3, task="multi-class", group_column="lesion_id", present=bool(present),
        location=", ".join(str(data_dir / array_file(s)) for s in present) or f"{data_dir / array_file(28)} or path=DIR",
    )


register_dataset(DatasetSpec(name=NAME, info=_describe, load=_load, options=("on_bad_image",)))
