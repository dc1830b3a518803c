"""Image helpers shared by every stage: grids, PNG writing, resizing, grey/RGB conversion."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from synthmed.utils.io import write_bytes_atomic


def make_grid(images: np.ndarray, nrow: int | None = None, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """Tile ``(N, H, W, C)`` uint8 images into one ``(H', W', C)`` grid, ``nrow`` images per row."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    n, h, w, c = images.shape
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / nrow))
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), pad_value, dtype=np.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y : y + h, x : x + w] = img
    return grid


def class_rows_grid(images: np.ndarray, labels: np.ndarray, num_classes: int, per_class: int,
                    class_names: list[str] | tuple[str, ...] | None = None) -> np.ndarray:
    """One row per class, ``per_class`` images each (missing slots stay blank).

    With ``class_names`` each row is labelled with its class name in a strip on the left, so a
    reader of any grid (data show, split examples, sample grids, the web page) knows which row is which.
    """
    h, w, c = images.shape[1:]
    tiles = np.full((num_classes * per_class, h, w, c), 255, dtype=np.uint8)
    for k in range(num_classes):
        idx = np.flatnonzero(labels == k)[:per_class]
        tiles[k * per_class : k * per_class + len(idx)] = images[idx]
    grid = make_grid(tiles, nrow=per_class)
    return label_rows(grid, [str(n) for n in class_names], row_height=h) if class_names is not None else grid


def label_rows(grid: np.ndarray, names: list[str], row_height: int, pad: int = 2, max_chars: int = 18) -> np.ndarray:
    """Prepend a white strip to a ``make_grid`` grid with ``names[i]`` centred on row ``i`` (drawn with PIL)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=max(8, min(14, int(row_height * 0.45))))
    names = [n if len(n) <= max_chars else n[: max_chars - 1] + "…" for n in names]
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    width = int(max((probe.textlength(n, font=font) for n in names), default=0)) + 3 * pad
    mode = "L" if grid.shape[-1] == 1 else "RGB"
    strip = Image.new(mode, (width, grid.shape[0]), 255 if mode == "L" else (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    for i, name in enumerate(names):
        y = pad + i * (row_height + pad) + row_height // 2
        draw.text((width - pad, y), name, fill=0 if mode == "L" else (0, 0, 0), font=font, anchor="rm")
    arr = np.asarray(strip, dtype=np.uint8)
    return np.concatenate([arr[..., None] if mode == "L" else arr, grid], axis=1)


def png_bytes(image: np.ndarray, scale: int = 1) -> bytes:
    from PIL import Image

    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    pil = Image.fromarray(img)
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def save_png(path: str | os.PathLike, image: np.ndarray, scale: int = 1) -> Path:
    """Write a (H, W[, C]) uint8 image as PNG, atomically."""
    return write_bytes_atomic(path, png_bytes(image, scale=scale))


def to_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """Convert (N, H, W, C) uint8 between grey (C=1) and RGB (C=3)."""
    c = images.shape[-1]
    if c == channels:
        return images
    if c == 1 and channels == 3:
        return np.repeat(images, 3, axis=-1)
    if c == 3 and channels == 1:
        grey = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None]
    raise ValueError(f"cannot convert {c} channels to {channels}")


def pil_to_array(pil, size: int, channels: int) -> np.ndarray:
    """A PIL image → (size, size, channels) uint8, squashed (no crop) with bicubic, as MedMNIST does."""
    from PIL import Image

    pil = pil.convert("L" if channels == 1 else "RGB")
    if pil.size != (size, size):
        pil = pil.resize((size, size), Image.BICUBIC)
    arr = np.asarray(pil, dtype=np.uint8)
    return arr[..., None] if channels == 1 else arr
