"""Run names → folders, and uploads → arrays, without letting a request reach outside ``--runs``.

A run is addressed by its *name* as the listing shows it, never by a path: a name must look like
a plain folder name, must be one of the folders the listing found, and the resolved folder (and
every file read below it) must lie inside the resolved runs folder, so ``../``, absolute paths,
URL-encoded variants and symlinks that point elsewhere all end as "no run".
"""

from __future__ import annotations

import io
import re
from pathlib import Path

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


def read_upload_image(data: bytes, *, max_bytes: int, max_pixels: int):
    """Decode uploaded bytes into a PIL image after checking size, format and pixel count.

    The pixel count is read from the header before any decoding, so a decompression bomb (a small
    file that inflates to gigapixels) is refused without being inflated; Pillow's own
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
    w, h = img.size
    if w * h > max_pixels:
        raise UploadTooLargeError(f"image is {w}x{h} = {w * h} pixels; the limit is {max_pixels} — downscale it first")
    try:
        img.load()
    except Image.DecompressionBombError:
        raise UploadTooLargeError(f"image has too many pixels (limit {max_pixels}); downscale it first") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise BadUploadError(f"image could not be decoded ({type(e).__name__}: {str(e)[:80]}); re-save it as PNG") from None
    return img


def upload_to_array(data: bytes, image_shape: tuple[int, int, int], *, max_bytes: int, max_pixels: int) -> np.ndarray:
    """Uploaded PNG/JPEG bytes → ``(1, H, W, C)`` uint8, converted the way the dataset was (squash, bicubic)."""
    from synthmed.imaging import pil_to_array

    h, w, c = image_shape
    img = read_upload_image(data, max_bytes=max_bytes, max_pixels=max_pixels)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit greyscale PNG: scale to 8 bit, don't clip
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        from PIL import Image

        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return np.array(pil_to_array(img, size=h, channels=c)[None])  # a writable copy: torch warns on read-only arrays
