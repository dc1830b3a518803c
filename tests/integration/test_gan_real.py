"""Every GAN variant trains on the real 50-shot PneumoniaMNIST split (tiny width, a few steps) and samples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synthmed.callbacks import History
from synthmed.generators import make_generator

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("torch_single_thread")]

VARIANTS = [("cgan", {}), ("acgan", {}), ("lsgan", {}), ("wgan", {}), ("wgan-gp", {}), ("cgan", {"per_class": True})]


@pytest.mark.parametrize("family,extra", VARIANTS, ids=[f + ("-per-class" if e else "") for f, e in VARIANTS])
def test_variant_trains_on_real_50shot_and_samples_balanced_classes(pneumonia_50shot, tmp_path, family, extra):
    train = pneumonia_50shot["train"]
    hist = History()
    gan = make_generator(family, nz=16, base_channels=8, batch_size=16, max_steps=4, grid_every=2, checkpoint_every=2, **extra)
    gan.fit(train.images, train.labels, callbacks=[hist], out_dir=tmp_path)
    assert gan.steps_done_ == 4 and (tmp_path / "checkpoint.pt").exists()
    assert all(math.isfinite(v) for row in hist.rows for v in row.values())
    assert hist.grids == [(2, "samples"), (4, "samples")]

    want = np.repeat(np.arange(train.num_classes), 10)  # 10 per class
    out = gan.sample(want, seed=0)
    assert out.shape == (20, 28, 28, 1) and out.dtype == np.uint8
    assert out.std() > 0  # not a blank image
    assert np.array_equal(out[:10], gan.sample(want[:10], seed=0))  # batch composition does not matter
