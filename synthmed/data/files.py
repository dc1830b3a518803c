"""Reading image files and CSV tables for the folder-based sources (HAM10000, NIH, class folders)."""

from __future__ import annotations

import csv
import os
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from synthmed.errors import DataFormatError, DataNotFoundError
from synthmed.imaging import pil_to_array

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def require_folder(path: Path | None, dataset: str, expected: str) -> Path:
    """Return ``path`` if it is a folder, else a one-line DataNotFoundError saying what to pass."""
    if path is None:
        raise DataNotFoundError(f"{dataset} is read from a folder; pass path=DIR (--path DIR) holding {expected}")
    if not path.is_dir():
        raise DataNotFoundError(f"{dataset}: folder {display_path(path)} does not exist; pass path=DIR holding {expected}")
    return path


OFFLINE_ENV = "SYNTHMED_OFFLINE"  # 1/true/yes: never download (same as `synthmed run --offline`)


def offline() -> bool:
    """Whether downloads are switched off ($SYNTHMED_OFFLINE set to anything but empty/0/false/no)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def display_path(path: Path) -> str:
    """``path`` as a user should see it in a message: relative to the working folder when inside it,
    ``~/…`` when inside the home folder, else as given (no resolving of links)."""
    path = Path(path).absolute()
    for base, shown in ((Path.cwd(), None), (Path.home(), "~")):
        try:
            rel = path.relative_to(base)
        except ValueError:
            continue
        if shown is None:
            return "the current folder" if rel == Path(".") else f"./{rel}"
        return f"{shown}/{rel}"
    return str(path)


def missing_file(file: Path, how: str) -> DataNotFoundError:
    """The one-line error for a dataset file that is not where it should be."""
    folder = display_path(file.parent)
    return DataNotFoundError(f"{file.name} is not in {folder}; copy it there (or set $SYNTHMED_DATA_DIR), or {how}")


# Everything numpy raises for a file that is not a whole npz: not a zip, truncated (EOF, bad zip
# directory, bad CRC or deflate stream), or an object array that would need pickle.
NPZ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError)


def read_npz(file: Path, keys: Sequence[str], layout: str, fix: str = "replace it with a good copy") -> dict[str, np.ndarray]:
    """The named arrays of an npz file (no pickle); missing keys or a broken file → one-line DataFormatError
    naming only the file (never the server's folders) and saying ``fix``."""
    try:
        with np.load(file, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise DataFormatError(f"{file.name}: missing key(s) {missing}; found {sorted(z.files)} (expected {layout})")
            return {k: z[k] for k in keys}
    except NPZ_ERRORS as e:
        reason = f"{type(e).__name__}: {e}".splitlines()[0][:120]
        raise DataFormatError(f"{file.name} is corrupt or not an npz file ({reason}); {fix}") from None


def read_csv_rows(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    """Rows of a CSV file as dicts; a missing required column is a DataFormatError naming the file."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            columns = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataFormatError(f"{path.name}: cannot read CSV ({e})") from None
    missing = [c for c in required if c not in columns]
    if missing:
        raise DataFormatError(f"{path.name}: missing column(s) {missing}; found {columns}")
    return rows


def index_images(root: Path) -> dict[str, Path]:
    """Map file name → path for every image file under ``root`` (searched recursively).

    Raises:
        DataFormatError: two files share a name, so a table row could not say which one it means.
    """
    found: dict[str, Path] = {}
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            if p.name in found:
                raise DataFormatError(f"image file name {p.name} occurs twice: {found[p.name]} and {p}")
            found[p.name] = p
    return found


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()  # decode now, so a truncated file fails here and not later
            return im.copy()
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
        raise DataFormatError(f"{display_path(path)}: unreadable image ({type(e).__name__}: {e})") from None


def _has_colour(images: np.ndarray) -> bool:
    return bool(np.any(images[..., 0] != images[..., 1]) or np.any(images[..., 1] != images[..., 2]))


def read_images(
    paths: Sequence[Path | None], *, size: int, channels: int | None, on_bad_image: str = "error"
) -> tuple[np.ndarray, np.ndarray]:
    """Decode and squash-resize image files to ``(N, size, size, C)`` uint8.

    Args:
        paths: one file per row; ``None`` marks a row whose file was not found.
        size: target side in px (bicubic squash, no crop, as MedMNIST does).
        channels: 1 or 3; ``None`` picks RGB if any image has colour, else grey.
        on_bad_image: ``"error"`` raises on the first missing/unreadable file; ``"skip"`` drops it
            and warns once with the count.

    Returns:
        ``(images, kept)``: the images and the indices into ``paths`` that were kept.
    """
    arrays, kept, bad = [], [], []
    for i, p in enumerate(paths):
        try:
            if p is None:
                raise DataNotFoundError(f"row {i}: image file not found")
            arrays.append(pil_to_array(_open(p), size, channels or 3))  # (size, size, C) uint8
            kept.append(i)
        except (DataFormatError, DataNotFoundError) as e:
            if on_bad_image == "error":
                hint = "; fix or remove it, or pass on_bad_image='skip' to leave such files out"
                raise type(e)(f"{e}{hint}") from None
            bad.append(str(p))
    if bad:
        warnings.warn(f"skipped {len(bad)} missing or unreadable image(s), e.g. {bad[0]}", stacklevel=3)
    if not arrays:
        raise DataNotFoundError("no readable images were found")
    images = np.stack(arrays)  # (N, size, size, C) uint8
    if channels is None and not _has_colour(images):
        images = images[..., :1]  # R = G = B everywhere, so one channel holds the grey image exactly
    return np.ascontiguousarray(images), np.asarray(kept, dtype=np.int64)
