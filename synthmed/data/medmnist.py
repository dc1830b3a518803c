"""MedMNIST 2D: every 2D flag of ``medmnist.INFO`` at sizes 28/64/128/224, read offline from npz.

The npz arrays are read directly. medmnist's own Dataset class is not used: its ``__len__``
asserts the official sample counts, which breaks on subsets and small fixtures.
Files: ``<flag>.npz`` (28 px) or ``<flag>_<size>.npz``, with keys ``{train,val,test}_{images,labels}``.
A missing file is downloaded (``download=True``, the default) from the URL in ``INFO`` and kept only
if its MD5 matches ``INFO``'s, unless downloads are off ($SYNTHMED_OFFLINE=1 or ``synthmed run
--offline``); then the error names the file, the folder, the URL and the MD5. $SYNTHMED_MEDMNIST_URL
replaces the host part with a mirror (``<mirror>/<file name>``; the MD5 is still INFO's).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import urllib.request
from pathlib import Path

import numpy as np

from synthmed.data.classes import single_label_subset
from synthmed.data.files import OFFLINE_ENV, display_path, missing_file, offline, read_npz
from synthmed.data.registry import DatasetInfo, DatasetSpec, register_dataset
from synthmed.data.types import LabeledImages
from synthmed.errors import ConfigError, DataFormatError, DataNotFoundError
from synthmed.utils.io import atomic_path

SIZES = (28, 64, 128, 224)  # the sizes MedMNIST+ publishes for 2D flags
SPLITS = ("train", "val", "test")
NO_FINDING = "no finding"  # ChestMNIST rows with no positive label
CHEST_DEFAULT_CLASSES = (NO_FINDING, "infiltration")  # single-label subset, as for NIH ChestX-ray14
MIRROR_ENV = "SYNTHMED_MEDMNIST_URL"  # a mirror (or a local test server) serving the same files by name


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


def source(flag: str, size: int) -> tuple[str, str]:
    """``(url, md5)`` of one MedMNIST file: INFO's URL (or the same file name on $SYNTHMED_MEDMNIST_URL)."""
    info = _info()[flag]
    url, md5 = info[f"url{_size_key(size)}"], info[f"MD5{_size_key(size)}"]
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    return (f"{mirror.rstrip('/')}/{file_name(flag, size)}" if mirror else url), md5


def download_file(url: str, dest: Path, md5: str, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``dest`` atomically and check its MD5 (stdlib urllib; no torchvision needed).

    Says on stderr what it fetches and where it put it. Nothing is left at ``dest`` (not even a
    temp file) unless the whole file arrived with the right MD5.

    Raises:
        DataNotFoundError: the download failed (offline, bad URL).
        DataFormatError: the MD5 of the downloaded bytes differs from ``md5``; nothing is kept.
    """
    from tqdm.auto import tqdm

    print(f"downloading {dest.name} from {url} ...", file=sys.stderr)
    with atomic_path(dest) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as fh:
                total = int(resp.headers.get("Content-Length") or 0) or None
                with tqdm.wrapattr(resp, "read", total=total, desc=dest.name, leave=False, file=sys.stderr) as src:
                    shutil.copyfileobj(src, fh)
        except OSError as e:  # URLError, HTTP errors and socket timeouts are OSErrors
            raise DataNotFoundError(
                f"could not download {dest.name} from {url} ({e}); check the connection, or copy the file "
                f"(MD5 {md5}) into {display_path(dest.parent)} by hand"
            ) from None
        got = _md5(tmp)
        if got != md5:
            raise DataFormatError(f"{dest.name} from {url} has MD5 {got}, expected {md5}; nothing was kept. Retry, "
                                  f"or copy a good file into {display_path(dest.parent)} by hand")
    print(f"saved {dest.name} ({dest.stat().st_size / 1e6:.1f} MB, MD5 checked) in {display_path(dest.parent)}",
          file=sys.stderr)
    return dest


def _fetch_or_explain(flag: str, size: int, file: Path, download: bool) -> None:
    """Download the missing ``file`` when allowed; else one line: file, folder, URL, MD5, and how to allow it."""
    url, md5 = source(flag, size)
    if download and not offline():
        download_file(url, file, md5)
        return
    how = (f"unset ${OFFLINE_ENV} / drop --offline to fetch it" if offline()
           else "pass download=True (study: dataset.download: true) to fetch it")
    raise DataNotFoundError(f"{file.name} is not in {display_path(file.parent)}; get it from {url} (MD5 {md5}) "
                            f"into that folder (or set $SYNTHMED_DATA_DIR to a folder holding it), or {how}")


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The six arrays, validated: images (N,H,W[,C]) uint8, labels (N, L) integer."""
    fix = "delete it and run the same command again to re-download it (MD5-checked)"
    arrays = read_npz(path, [f"{s}_{k}" for s in SPLITS for k in ("images", "labels")], "a MedMNIST npz", fix)
    for s in SPLITS:
        imgs, labels = arrays[f"{s}_images"], arrays[f"{s}_labels"]
        if imgs.ndim not in (3, 4) or (imgs.ndim == 4 and imgs.shape[-1] not in (1, 3)):
            raise DataFormatError(f"{path.name}: {s}_images has shape {imgs.shape}; expected (N, H, W) or (N, H, W, 1|3)")
        if labels.reshape(len(labels), -1).shape[0] != len(imgs):
            raise DataFormatError(f"{path.name}: {s}_labels has {len(labels)} rows for {len(imgs)} images")
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataFormatError(f"{path.name}: {s}_labels must be integers; got {labels.dtype}")
    return arrays


def load_medmnist(
    flag: str,
    *,
    size: int = 28,
    data_dir: Path,
    download: bool = True,
    path: Path | None = None,
    classes: list[str] | None = None,
) -> LabeledImages:
    """Load one MedMNIST 2D flag with its official train/val/test kept in ``official_split``.

    Args:
        flag: e.g. ``"pneumoniamnist"``.
        size: 28, 64, 128 or 224.
        data_dir: folder holding ``<flag>.npz`` / ``<flag>_<size>.npz``.
        download: fetch the file from Zenodo (MD5-checked) when it is missing, unless $SYNTHMED_OFFLINE is set.
        path: an explicit npz file instead of the one in ``data_dir``.
        classes: multi-label ChestMNIST only: findings to keep as single-label classes
            (default "no finding" vs "infiltration").
    """
    info = _info()[flag]
    _check_size(flag, size)
    file = path if path is not None else data_dir / file_name(flag, size)
    if not file.exists():
        if path is not None:
            raise missing_file(file, f"leave out path= to use {file_name(flag, size)} from the data folder")
        _fetch_or_explain(flag, size, file, download)
    arrays = _read_npz(file)
    images = np.concatenate([arrays[f"{s}_images"] for s in SPLITS])
    if images.ndim == 3:
        images = images[..., None]  # grey (N, H, W) → (N, H, W, 1)
    if images.shape[1:3] != (size, size):
        raise DataFormatError(f"{file.name}: images are {images.shape[1]}x{images.shape[2]} px; expected {size}x{size} for size={size}")
    labels = np.concatenate([arrays[f"{s}_labels"].reshape(len(arrays[f"{s}_labels"]), -1) for s in SPLITS])
    split = np.concatenate([np.full(len(arrays[f"{s}_labels"]), s) for s in SPLITS])
    names = [info["label"][str(i)] for i in range(len(info["label"]))]
    multilabel = info["task"].startswith("multi-label")
    if multilabel:
        if labels.shape[1] != len(names) or labels.min(initial=0) < 0 or labels.max(initial=0) > 1:
            raise DataFormatError(f"{file.name}: multi-label labels must be (N, {len(names)}) of 0/1; got {labels.shape}")
        no_finding = (labels.sum(axis=1) == 0)[:, None]
        rows, lab, class_names = single_label_subset(
            np.hstack([no_finding, labels]), [NO_FINDING, *names], classes or CHEST_DEFAULT_CLASSES, flag
        )
        images, split = images[rows], split[rows]
    else:
        if labels.shape[1] != 1:
            raise DataFormatError(f"{file.name}: labels have shape {labels.shape}; expected one label per image")
        lab = labels[:, 0].astype(np.int64)
        if len(lab) and (lab.min() < 0 or lab.max() >= len(names)):
            raise DataFormatError(
                f"{file.name}: labels must lie in 0..{len(names) - 1} ({len(names)} classes); found {lab.min()}..{lab.max()}"
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
