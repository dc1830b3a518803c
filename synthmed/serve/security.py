"""Run names → folders, and uploads → arrays, without letting a request reach outside ``--runs``.

A run is addressed by its *name* as the listing shows it, never by a path: a name must look like
a plain folder name, must be one of the folders the listing found, and the resolved folder (and
every file read below it) must lie inside the resolved runs folder, so ``../``, absolute paths,
URL-encoded variants and symlinks that point elsewhere all end as "no run".
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from synthmed.errors import DataFormatError, SynthmedError, unknown_name

# A run name is one path component: letters, digits, ".", "_", "-" (no separators, no leading dot).
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")
UPLOAD_FORMATS = ("PNG", "JPEG")  # what the issue asks for; GIF/TIFF/WebP are refused with a hint


class NotFoundError(SynthmedError):
    """A run, generator, class or classifier that the request names does not exist (HTTP 404)."""


class UploadTooLargeError(SynthmedError):
    """An upload exceeds the byte or pixel limit (HTTP 413)."""


class BadUploadError(DataFormatError):
    """An upload is not a readable PNG/JPEG image (HTTP 400)."""


class BrokenRunError(SynthmedError):
    """A run's own files are damaged or point outside the runs folder (HTTP 409: the run, not the request)."""


def is_inside(path: Path, root: Path) -> bool:
    """True when ``path`` (symlinks resolved) lies in ``root`` (already resolved)."""
    try:
        path.resolve(strict=True).relative_to(root)
    except (OSError, ValueError):
        return False
    return True


def list_run_folders(runs_dir: Path) -> dict[str, Path]:
    """Run name → resolved folder, for each direct sub-folder of ``runs_dir`` that stays inside it.

    A folder is listed when it holds ``manifest.json`` (finished) or ``config.yaml`` (being written).
    Symlinked runs are listed only when their target is inside ``runs_dir`` too.
    """
    root = runs_dir.resolve()
    out: dict[str, Path] = {}
    if not root.is_dir():
        return out
    for p in sorted(root.iterdir()):
        if not RUN_NAME.match(p.name) or not is_inside(p, root) or not p.is_dir():
            continue
        if (p / "manifest.json").is_file() or (p / "config.yaml").is_file():
            out[p.name] = p.resolve()
    return out


def resolve_run(runs_dir: Path, name: str) -> Path:
    """The folder of run ``name``; ``NotFoundError`` unless it is a name from the listing."""
    runs = list_run_folders(runs_dir)
    if not isinstance(name, str) or name not in runs:
        shown = str(name)[:80].encode("ascii", "backslashreplace").decode()
        raise NotFoundError(str(unknown_name("run", shown, runs)) + "; use a name from GET /api/runs")
    return runs[name]


def resolve_inside(run_dir: Path, relative: str) -> Path:
    """``run_dir / relative`` (a path taken from the run's own manifest), refused if it leaves ``run_dir``."""
    path = run_dir / relative
    if not is_inside(path, run_dir.resolve()):
        raise NotFoundError(f"{relative} is missing from run '{run_dir.name}' or points outside it")
    return path.resolve()


def read_json_inside(run_dir: Path, relative: str, kind: type = dict) -> Any:
    """Parse ``run_dir / relative`` (which must resolve inside ``run_dir``) as JSON of type ``kind``.

    Raises:
        NotFoundError: the file is missing or a link that leaves the run.
        BrokenRunError: it is not valid JSON of the expected shape (one line, no server path).
    """
    path = resolve_inside(run_dir, relative)
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as e:
        raise BrokenRunError(f"run '{run_dir.name}': {relative} is damaged ({type(e).__name__}); "
                             "re-run 'synthmed run' on it to rewrite it") from None
    if not isinstance(data, kind):
        raise BrokenRunError(f"run '{run_dir.name}': {relative} holds a {type(data).__name__}, not a "
                             f"{kind.__name__}; re-run 'synthmed run' on it to rewrite it")
    return data


def links_leaving(run_dir: Path, root: Path) -> list[str]:
    """Paths (relative to ``run_dir``) of links under ``run_dir`` whose target is not inside ``root``.

    Walks without following links, so a link to an outside folder is reported, not entered.
    """
    bad = []
    root = root.resolve()
    for folder, dirs, files in os.walk(run_dir, followlinks=False):
        for name in dirs + files:
            p = Path(folder) / name
            if p.is_symlink() and not is_inside(p, root):
                bad.append(str(p.relative_to(run_dir)))
    return bad


def check_image_header(img, *, max_pixels: int, max_side: int, max_aspect: float) -> None:
    """Refuse an image by its header size (read without decoding): pixels, longest side and aspect ratio.

    A 24,000,000 × 1 PNG is under any pixel limit yet costs a gigabyte to decode and resize, so the
    side and the aspect ratio are bounded too.
    """
    w, h = img.size
    if w * h > max_pixels:
        raise UploadTooLargeError(f"image is {w}x{h} = {w * h} pixels; the limit is {max_pixels} — downscale it first")
    if max(w, h) > max_side:
        raise UploadTooLargeError(f"image is {w}x{h}; the longest side may be at most {max_side} px — downscale it first")
    if min(w, h) < 1 or max(w, h) / min(w, h) > max_aspect:
        raise BadUploadError(f"image is {w}x{h}; its aspect ratio is beyond {max_aspect:g}:1 — crop it to the region "
                             "to classify")


def read_upload_image(data: bytes, *, max_bytes: int, max_pixels: int, max_side: int = 12_000,
                      max_aspect: float = 16.0):
    """Decode uploaded bytes into a PIL image after checking size, format and pixel count.

    The pixel count, longest side and aspect ratio are read from the header before any decoding, so a
    decompression bomb (a small file that inflates to gigapixels) is refused without being inflated; Pillow's own
    ``DecompressionBombError`` is the second line of defence.

    Raises:
        UploadTooLargeError: more than ``max_bytes`` bytes or ``max_pixels`` pixels.
        BadUploadError: empty, not an image, not PNG/JPEG, or truncated.
    """
    from PIL import Image, UnidentifiedImageError

    if len(data) > max_bytes:
        raise UploadTooLargeError(f"upload is {len(data)} bytes; the limit is {max_bytes} bytes — send a smaller image")
    if not data:
        raise BadUploadError("upload is empty; choose a PNG or JPEG file")
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise UploadTooLargeError(f"image has too many pixels (limit {max_pixels}); downscale it first") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise BadUploadError("upload is not a readable image; send a PNG or JPEG file") from None
    if img.format not in UPLOAD_FORMATS:
        raise BadUploadError(f"upload is {img.format}; send a PNG or JPEG file (convert it first)")
    check_image_header(img, max_pixels=max_pixels, max_side=max_side, max_aspect=max_aspect)
    try:
        img.load()
    except Image.DecompressionBombError:
        raise UploadTooLargeError(f"image has too many pixels (limit {max_pixels}); downscale it first") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise BadUploadError(f"image could not be decoded ({type(e).__name__}: {str(e)[:80]}); re-save it as PNG") from None
    return img


def colour_note(img, channels: int) -> str | None:
    """A warning when the upload's colour does not match the training images (grey ↔ colour)."""
    rgb = np.asarray(img.convert("RGB").resize((64, 64)), dtype=np.int16)
    chroma = float(np.abs(rgb - rgb.mean(axis=-1, keepdims=True)).mean())  # 0 for a grey image
    if channels == 1 and chroma > 4.0:
        return ("this is a colour image; the classifiers were trained on grey images, so it was converted to grey "
                "and the probabilities below are not meaningful for it")
    if channels == 3 and chroma <= 1.0:
        return "this is a grey image; the classifiers were trained on colour images"
    return None


def upload_to_array(data: bytes, image_shape: tuple[int, int, int], *, max_bytes: int, max_pixels: int,
                    notes: list[str] | None = None) -> np.ndarray:
    """Uploaded PNG/JPEG bytes → ``(1, H, W, C)`` uint8, converted the way the dataset was (squash, bicubic).

    When ``notes`` is given, a colour mismatch with the training images is appended to it.
    """
    from synthmed.imaging import pil_to_array

    h, w, c = image_shape
    img = read_upload_image(data, max_bytes=max_bytes, max_pixels=max_pixels)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit greyscale PNG: scale to 8 bit, don't clip
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        from PIL import Image

        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    note = colour_note(img, c)
    if notes is not None and note:
        notes.append(note)
    return np.array(pil_to_array(img, size=h, channels=c)[None])  # a writable copy: torch warns on read-only arrays
