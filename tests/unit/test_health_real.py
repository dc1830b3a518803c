"""The health rules calibrated on real PneumoniaMNIST (the held-out design of a 50-shot draw, the cheap
domain model of ``_instrument_data``): held-out real images and mildly degraded ones pass; a generator
trained for a handful of steps, a generator that draws one image per class, and one that ignores its labels fail."""

from __future__ import annotations

import numpy as np

from synthmed.metrics.health import STATUS_FAILED, STATUS_OK, assess_health
from synthmed.metrics.instruments import instrument_report

NAMES = ("normal", "pneumonia")


def _health(images, labels, family):
    from _instrument_data import design, features, proba

    sets, _ = design()
    out = instrument_report((images, labels), (sets["H"].images, sets["H"].labels), (sets["R"].images, sets["R"].labels),
                            sets["train"].images, NAMES, featurize=features, predict_proba=proba, n_subsets=15,
                            n_boot=150, per_class=False)
    return assess_health(out["fidelity"], out["faithfulness"], {"stopped_by": "max_steps", "steps_done": 1}, family=family)


def test_real_images_and_a_blurred_copy_of_them_are_ok(data_dir):
    from _instrument_data import design

    h2 = design()[0]["H2"]
    assert _health(h2.images, h2.labels, "perfect")["status"] == STATUS_OK
    rng = np.random.default_rng(0)  # a working but imperfect generator: held-out images with noise
    noisy = np.clip(h2.images + rng.normal(0, 12, h2.images.shape), 0, 255).astype(np.uint8)
    h = _health(noisy, h2.labels, "noisy")
    assert h["status"] == STATUS_OK, h["reason"]


def test_a_few_step_cgan_is_failed(data_dir):
    from _instrument_data import design

    from synthmed.generators import make_generator

    train = design()[0]["train"]
    gen = make_generator("cgan", max_steps=3, seed=0, device="cpu")
    gen.fit(train.images, train.labels)
    labels = np.repeat([0, 1], 150)
    h = _health(gen.sample(labels, seed=0), labels, "cgan")
    assert h["status"] == STATUS_FAILED and h["advice"], h["reason"]


def test_one_image_per_class_is_collapsed(data_dir):
    from _instrument_data import design

    h2 = design()[0]["H2"]
    first = [int(np.flatnonzero(h2.labels == c)[0]) for c in (0, 1)]
    labels = np.repeat([0, 1], 150)
    images = h2.images[np.repeat(first, 150)]
    h = _health(images, labels, "collapsed")
    assert h["status"] == STATUS_FAILED and "collapsed" in [c["rule"] for c in h["checks"]], h["reason"]


def test_shuffled_labels_are_label_blind(data_dir):
    from _instrument_data import design

    h2 = design()[0]["H2"]
    labels = np.random.default_rng(0).permutation(h2.labels)
    h = _health(h2.images, labels, "shuffled")
    assert h["status"] == STATUS_FAILED and [c["rule"] for c in h["checks"]] == ["label-blind"]
