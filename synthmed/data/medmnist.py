"""MedMNIST 2D: every 2D flag of ``medmnist.INFO`` at sizes 28/64/128/224, read offline from npz.

The npz arrays are read directly. medmnist's own Dataset class is not used: its ``__len__``
asserts the official sample counts, which breaks on subsets and small fixtures.
Files: ``<flag>.npz`` (28 px) or ``<flag>_<size>.npz``, with keys ``{train,val,test}_{images,labels}``.
Downloads happen only with ``download=True``; they use the URL and MD5 from ``INFO``.
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.request
from pathlib import Path

import numpy as np

from synthmed.data.classes import single_label_subset
from synthmed.data.files import missing_file, read_npz
from synthmed.data.registry import DatasetInfo, DatasetSpec, register_dataset
from synthmed.data.types import LabeledImages
from synthmed.errors import ConfigError, DataFormatError, DataNotFoundError
from synthmed.utils.io import atomic_path

SIZES = (28, 64, 128, 224)  # the sizes MedMNIST+ publishes for 2D flags
SPLITS = ("train", "val", "test")
NO_FINDING = "no finding"  # ChestMNIST rows with no positive label
CHEST_DEFAULT_CLASSES = (NO_FINDING, "infiltration")  # single-label subset, as for NIH ChestX-ray14


def _info() -> dict:
    from medmnist import INFO

    return INFO


def flags_2d() -> list[str]:
    """Every 2D MedMNIST flag (the 3D volumes end in "3d")."""
    return [f for f in _info() if not f.endswith("3d")]


def file_name(flag: str, size: int) -> str:
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def _size_key(size: int) -> str:
    return "" if size == 28 else f"_{size}"


def _check_size(flag: str, size: int) -> None:
    if size not in SIZES:
        raise ConfigError(f"{flag} comes in sizes {', '.join(map(str, SIZES))} px; got size={size}")


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download_file(url: str, dest: Path, md5: str, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``dest`` atomically and check its MD5 (stdlib urllib; no torchvision needed).

    Raises:
        DataNotFoundError: the download failed (offline, bad URL).
        DataFormatError: the MD5 of the downloaded bytes differs from ``md5``; nothing is kept.
    """
    with atomic_path(dest) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as fh:
                shutil.copyfileobj(resp, fh)
        except OSError as e:  # URLError and socket timeouts are OSErrors
            raise DataNotFoundError(f"could not download {url} ({e}); check the connection or copy {dest.name} by hand") from None
        got = _md5(tmp)
        if got != md5:
            raise DataFormatError(f"{url} downloaded with MD5 {got}, expected {md5}; retry, or copy {dest.name} by hand")
    return dest


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The six arrays, validated: images (N,H,W[,C]) uint8, labels (N, L) integer."""
    arrays = read_npz(path, [f"{s}_{k}" for s in SPLITS for k in ("images", "labels")], "a MedMNIST npz")
    for s in SPLITS:
        imgs, labels = arrays[f"{s}_images"], arrays[f"{s}_labels"]
        if imgs.ndim not in (3, 4) or (imgs.ndim == 4 and imgs.shape[-1] not in (1, 3)):
            raise DataFormatError(f"{path}: {s}_images has shape {imgs.shape}; expected (N, H, W) or (N, H, W, 1|3)")
        if labels.reshape(len(labels), -1).shape[0] != len(imgs):
            raise DataFormatError(f"{path}: {s}_labels has {len(labels)} rows for {len(imgs)} images")
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataFormatError(f"{path}: {s}_labels must be integers; got {labels.dtype}")
    return arrays


def load_medmnist(
    flag: str,
    *,
    size: int = 28,
    data_dir: Path,
    download: bool = False,
    path: Path | None = None,
    classes: list[str] | None = None,
) -> LabeledImages:
    """Load one MedMNIST 2D flag with its official train/val/test kept in ``official_split``.

    Args:
        flag: e.g. ``"pneumoniamnist"``.
        size: 28, 64, 128 or 224.
        data_dir: folder holding ``<flag>.npz`` / ``<flag>_<size>.npz``.
        download: fetch the file from Zenodo (MD5-checked) when it is missing.
        path: an explicit npz file instead of the one in ``data_dir``.
        classes: multi-label ChestMNIST only: findings to keep as single-label classes
            (default "no finding" vs "infiltration").
    """
    info = _info()[flag]
    _check_size(flag, size)
    file = path if path is not None else data_dir / file_name(flag, size)
    if not file.exists():
        if not download or path is not None:
            raise missing_file(file, "pass download=True / --download while online")
        download_file(info[f"url{_size_key(size)}"], file, info[f"MD5{_size_key(size)}"])
    arrays = _read_npz(file)
    images = np.concatenate([arrays[f"{s}_images"] for s in SPLITS])
    if images.ndim == 3:
        images = images[..., None]  # grey (N, H, W) → (N, H, W, 1)
    if images.shape[1:3] != (size, size):
        raise DataFormatError(f"{file}: images are {images.shape[1]}x{images.shape[2]} px; expected {size}x{size} for size={size}")
    labels = np.concatenate([arrays[f"{s}_labels"].reshape(len(arrays[f"{s}_labels"]), -1) for s in SPLITS])
    split = np.concatenate([np.full(len(arrays[f"{s}_labels"]), s) for s in SPLITS])
    names = [info["label"][str(i)] for i in range(len(info["label"]))]
    multilabel = info["task"].startswith("multi-label")
    if multilabel:
        if labels.shape[1] != len(names) or labels.min(initial=0) < 0 or labels.max(initial=0) > 1:
            raise DataFormatError(f"{file}: multi-label labels must be (N, {len(names)}) of 0/1; got {labels.shape}")
        no_finding = (labels.sum(axis=1) == 0)[:, None]
        rows, lab, class_names = single_label_subset(
            np.hstack([no_finding, labels]), [NO_FINDING, *names], classes or CHEST_DEFAULT_CLASSES, flag
        )
        images, split = images[rows], split[rows]
    else:
        if labels.shape[1] != 1:
            raise DataFormatError(f"{file}: labels have shape {labels.shape}; expected one label per image")
        lab = labels[:, 0].astype(np.int64)
        if len(lab) and (lab.min() < 0 or lab.max() >= len(names)):
            raise DataFormatError(
                f"{file}: labels must lie in 0..{len(names) - 1} ({len(names)} classes); found {lab.min()}..{lab.max()}"
            )
        class_names = tuple(names)
    meta = {"path": str(file), "licence": info["license"], "task": info["task"], "size": size, "source": "medmnist"}
    name = flag if size == 28 else f"{flag}_{size}"
    return LabeledImages(
        images=np.ascontiguousarray(images), labels=lab, class_names=class_names,
        official_split=split, name=name, meta=meta,
    )


def _describe(flag: str, data_dir: Path) -> DatasetInfo:
    info = _info()[flag]
    present = [s for s in SIZES if (data_dir / file_name(flag, s)).exists()]
    names = tuple(info["label"][str(i)] for i in range(len(info["label"])))
    return DatasetInfo(
        name=flag, kind="medmnist", sizes=SIZES,
        classes=CHEST_DEFAULT_CLASSES if info["task"].startswith("multi-label") else names,
        licence=info["license"], channels=info["n_channels"], task=info["task"],
        present=bool(present),
        location=", ".join(str(data_dir / file_name(flag, s)) for s in present) or str(data_dir / file_name(flag, 28)),
    )


def _register(flag: str) -> None:
    multilabel = _info()[flag]["task"].startswith("multi-label")
    register_dataset(DatasetSpec(
        name=flag,
        info=lambda data_dir: _describe(flag, data_dir),
        load=lambda **kw: load_medmnist(flag, **kw),
        multilabel=multilabel,
    ))


for _flag in flags_2d():
    _register(_flag)
