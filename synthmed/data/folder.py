"""Class-per-folder trees: ``root/<class>/*.png|jpg|jpeg|bmp``, or pre-split ``root/{train,val,test}/<class>/...``.

A pre-split tree (e.g. Kermany's ``chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}``) sets
``official_split``. Class names are the sorted folder names (the union over splits). Images are
squash-resized to ``size``; grey or RGB by option, by default RGB if any image has colour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthmed.data.files import IMAGE_SUFFIXES, read_images, require_folder
from synthmed.data.registry import DatasetInfo, DatasetSpec, register_dataset
from synthmed.data.types import LabeledImages
from synthmed.errors import DataFormatError, DataNotFoundError

NAME = "folder"
SPLIT_NAMES = ("train", "val", "test")
EXPECTED = "one sub-folder of images per class (or train/val/test folders of those)"


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def scan_tree(root: Path) -> tuple[list[Path], list[str], list[str | None]]:
    """Every image file under ``root`` with its class folder name and split (``None`` if not pre-split)."""
    top = _subdirs(root)
    pre_split = bool(top) and {p.name.lower() for p in top} <= set(SPLIT_NAMES) and "train" in {p.name.lower() for p in top}
    parts = [(p.name.lower(), p) for p in top] if pre_split else [(None, root)]
    files, classes, splits = [], [], []
    for split, base in parts:
        for class_dir in _subdirs(base):
            for f in _images_in(class_dir):
                files.append(f)
                classes.append(class_dir.name)
                splits.append(split)
    loose = [p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    if loose:
        raise DataFormatError(f"{root}: images sit directly in the root (e.g. {loose[0].name}); put them in {EXPECTED}")
    if not files:
        raise DataNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {root}; expected {EXPECTED}")
    return files, classes, splits


def load_folder(root: Path | None, size: int, channels: int | None = None, on_bad_image: str = "error") -> LabeledImages:
    """Load a class-per-folder tree, keeping train/val/test folders as ``official_split``."""
    root = require_folder(root, NAME, EXPECTED)
    files, classes, splits = scan_tree(root)
    images, kept = read_images(files, size=size, channels=channels, on_bad_image=on_bad_image)
    class_names = tuple(sorted(set(classes)))
    labels = np.array([class_names.index(classes[i]) for i in kept], dtype=np.int64)
    official = None if splits[0] is None else np.array([splits[i] for i in kept])
    return LabeledImages(
        images=images, labels=labels, class_names=class_names, official_split=official,
        name=root.name, meta={"path": str(root), "size": size, "source": NAME, "skipped": int(len(files) - len(kept))},
    )


def _load(*, size: int, data_dir: Path, download: bool, path: Path | None, classes=None,
          channels: int | None = None, on_bad_image: str = "error") -> LabeledImages:
    return load_folder(path, size, channels, on_bad_image)


def _describe(data_dir: Path) -> DatasetInfo:
    return DatasetInfo(
        name=NAME, kind="folder", sizes=(), classes=(), licence="that of the images", needs_path=True,
        location="path=DIR holding <class>/ or {train,val,test}/<class>/ folders",
    )


register_dataset(DatasetSpec(name=NAME, info=_describe, load=_load, options=("channels", "on_bad_image")))
