"""Run names never become paths; uploads are checked for size, format and pixel count before decoding."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="pip install 'synthmed[web]'")

from synthmed.serve.security import (  # noqa: E402
    BadUploadError,
    NotFoundError,
    UploadTooLargeError,
    list_run_folders,
    read_upload_image,
    resolve_inside,
    resolve_run,
    upload_to_array,
)

LIMITS = {"max_bytes": 1 << 20, "max_pixels": 1_000_000}


def _png(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture
def runs(tmp_path):
    """runs/ with a finished run, a run being written, a stray file, and an outside folder with a manifest."""
    root = tmp_path / "runs"
    (root / "good").mkdir(parents=True)
    (root / "good" / "manifest.json").write_text(json.dumps({"stages": []}))
    (root / "writing").mkdir()
    (root / "writing" / "config.yaml").write_text("name: x\n")
    (root / "not-a-run").mkdir()
    (root / "notes.txt").write_text("hi")
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "manifest.json").write_text(json.dumps({"stages": []}))
    os.symlink(outside, root / "escape")  # a symlinked run that points outside runs/
    os.symlink(root / "good", root / "alias")  # a symlinked run that stays inside
    return root, outside


def test_listing_has_runs_inside_only(runs):
    root, _ = runs
    assert sorted(list_run_folders(root)) == ["alias", "good", "writing"]


@pytest.mark.parametrize("name", ["../secret", "..", ".", "", "/etc", "/etc/passwd", "good/../../secret",
                                  "%2e%2e%2fsecret", "..%2Fsecret", "..\\secret", "escape", "good/stages",
                                  "not-a-run", "notes.txt", "good\x00"])
def test_resolve_run_refuses_anything_but_a_listed_name(runs, name):
    root, _ = runs
    with pytest.raises(NotFoundError, match="use a name from GET /api/runs"):
        resolve_run(root, name)


def test_resolve_run_by_absolute_path_is_refused_even_if_it_is_a_run(runs):
    root, _ = runs
    with pytest.raises(NotFoundError):
        resolve_run(root, str(root / "good"))


def test_resolve_run_finds_listed_name(runs):
    root, _ = runs
    assert resolve_run(root, "good") == (root / "good").resolve()


def test_resolve_inside_refuses_manifest_paths_that_leave_the_run(runs, tmp_path):
    root, outside = runs
    run = root / "good"
    (run / "stages").mkdir()
    os.symlink(outside, run / "stages" / "generator-evil")
    with pytest.raises(NotFoundError, match="outside"):
        resolve_inside(run, "../../secret/manifest.json")
    with pytest.raises(NotFoundError):
        resolve_inside(run, "stages/generator-evil/manifest.json")
    with pytest.raises(NotFoundError):
        resolve_inside(run, str(outside / "manifest.json"))
    assert resolve_inside(run, "manifest.json") == (run / "manifest.json").resolve()


def test_upload_png_is_squashed_to_the_dataset_shape():
    img = Image.fromarray(np.tile(np.arange(256, dtype=np.uint8), (100, 1)))  # 256x100 grey ramp
    x = upload_to_array(_png(img), (28, 28, 1), **LIMITS)
    assert x.shape == (1, 28, 28, 1) and x.dtype == np.uint8
    assert x[0, :, 0, 0].max() < 30 and x[0, :, -1, 0].min() > 225  # left dark, right bright: squashed, not cropped


def test_upload_rgb_jpeg_becomes_grey_for_a_grey_dataset():
    rgb = Image.new("RGB", (50, 40), (200, 10, 10))
    x = upload_to_array(_png(rgb, "JPEG"), (28, 28, 1), **LIMITS)
    assert x.shape == (1, 28, 28, 1)
    assert abs(int(x.mean()) - round(0.299 * 200 + 0.587 * 10 + 0.114 * 10)) <= 3  # ITU-R 601 luma


def test_upload_16bit_png_is_scaled_not_clipped():
    arr = np.full((30, 30), 40000, dtype=np.uint16)
    x = upload_to_array(_png(Image.fromarray(arr)), (28, 28, 1), **LIMITS)
    assert 150 < x.mean() < 160  # 40000/65535*255 ≈ 156


def test_non_image_is_400():
    with pytest.raises(BadUploadError, match="PNG or JPEG"):
        read_upload_image(b"%PDF-1.4 not an image", **LIMITS)
    with pytest.raises(BadUploadError, match="empty"):
        read_upload_image(b"", **LIMITS)


def test_other_formats_are_refused_with_a_hint():
    with pytest.raises(BadUploadError, match="GIF; send a PNG or JPEG"):
        read_upload_image(_png(Image.new("L", (8, 8)), "GIF"), **LIMITS)


def test_truncated_png_is_400():
    data = _png(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)))
    with pytest.raises(BadUploadError, match="decoded"):
        read_upload_image(data[: len(data) // 2], **LIMITS)


def test_too_many_bytes_is_413():
    with pytest.raises(UploadTooLargeError, match="limit is 100 bytes"):
        read_upload_image(b"x" * 101, max_bytes=100, max_pixels=10)


def test_decompression_bomb_is_refused_before_decoding():
    bomb = _png(Image.new("1", (20000, 20000)))  # 400 MP of zeros compresses to a few tens of kB
    assert len(bomb) < LIMITS["max_bytes"]
    with pytest.raises(UploadTooLargeError, match="pixels"):
        read_upload_image(bomb, **LIMITS)


def test_pillow_bomb_guard_is_mapped_to_413(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow raises at 2x this
    with pytest.raises(UploadTooLargeError):
        read_upload_image(_png(Image.new("L", (100, 100))), max_bytes=1 << 20, max_pixels=10**9)
