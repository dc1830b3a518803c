"""Class-row grids say which row is which class (issue 15 §5): one function, used by every grid writer."""

from __future__ import annotations

import numpy as np

from synthmed.imaging import class_rows_grid


def _images(n=12, c=1, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28, c), dtype=np.uint8), np.arange(n) % 3


def test_rows_are_labelled_left_of_an_unchanged_grid():
    images, labels = _images()
    plain = class_rows_grid(images, labels, 3, 4)
    named = class_rows_grid(images, labels, 3, 4, ["normal", "pneumonia", "a very long class name indeed"])
    strip = named.shape[1] - plain.shape[1]
    assert named.shape[0] == plain.shape[0] and named.shape[2] == 1 and strip > 20
    assert np.array_equal(named[:, strip:], plain)  # the tiles are untouched
    for row in range(3):  # each row's band of the strip holds dark text pixels; the padding between rows none
        y0 = 2 + row * 30
        assert (named[y0 : y0 + 28, :strip] < 128).sum() > 20, f"row {row} has no label"
        assert (named[y0 + 28 : y0 + 30, :strip] < 128).sum() == 0


def test_colour_grids_get_a_colour_strip_and_different_names_draw_differently():
    images, labels = _images(c=3)
    a = class_rows_grid(images, labels, 3, 4, ["bcc", "bkl", "melanoma"])
    b = class_rows_grid(images, labels, 3, 4, ["bkl", "bcc", "melanoma"])  # same widest name: same strip width
    assert a.shape == b.shape and a.shape[2] == 3 and a.dtype == np.uint8
    assert not np.array_equal(a[2:30], b[2:30]) and np.array_equal(a[62:], b[62:])


def test_data_show_grid_is_labelled_with_the_real_class_names(data_dir, tmp_path):
    from PIL import Image

    from synthmed.data import load_dataset
    from synthmed.data.registry import save_examples_grid

    data = load_dataset("pneumoniamnist", data_dir=data_dir)
    path = save_examples_grid(data, tmp_path / "show.png", per_class=4, seed=0, scale=1)
    grid = np.asarray(Image.open(path))
    assert grid.shape[1] > 2 + 4 * 30  # wider than the tiles alone: the label strip
