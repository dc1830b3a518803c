"""cvae and ddpm on the real 50-shot PneumoniaMNIST split: a few tiny steps, then balanced samples."""

from __future__ import annotations

import numpy as np
import pytest
from synthmed.callbacks import History
from synthmed.generators import get_generator_class, load_generator, make_generator

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]


@pytest.mark.parametrize("family", ["cvae", "ddpm"])
def test_tiny_fit_on_real_50shot_gives_balanced_uint8_samples(family, pneumonia_50shot, tmp_path):
    train = pneumonia_50shot["train"]
    hist = History()
    gen = make_generator(family, get_generator_class(family).tiny_config(), max_steps=4)
    gen.fit(train.images, train.labels, callbacks=hist, out_dir=tmp_path)
    assert len(hist.rows) == 4 and all(np.isfinite(v) for v in hist.rows[-1].values())
    assert any(tag == "samples" for _, tag in hist.grids)

    requested = np.repeat(np.arange(train.num_classes), 6)  # label-balanced request: 6 per class
    samples = gen.sample(requested, seed=0)
    assert samples.shape == (12, 28, 28, 1) and samples.dtype == np.uint8
    assert np.bincount(requested).tolist() == [6, 6]
    assert samples.std() > 0  # not a constant image
    assert np.array_equal(load_generator(tmp_path / "checkpoint.pt").sample(requested, seed=0), samples)
