"""real+domain-aug: count-matched like real+duplicate, each extra image through MedMNIST-C's augmentation for
its modality; seeded (and the caller's NumPy state left alone); a missing package or an unknown modality is one
line naming the fix; on real PneumoniaMNIST and skin images every corruption that can run here does."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from synthmed.conditions import build_condition, get_condition
from synthmed.data.types import LabeledImages
from synthmed.errors import SynthmedError
from synthmed.study import load_study_config

NAME = "real+domain-aug"


def _needs_medmnistc():
    try:
        import medmnistc.corruptions.registry  # noqa: F401  (imports wand, which needs libMagickWand)
    except (ImportError, OSError) as e:
        pytest.skip(f"MedMNIST-C not installed here ({e}); make setup installs it, .ci/run the library")


def _real(name="pneumoniamnist", n=6, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(40, 216, (2 * n, 28, 28, channels), dtype=np.uint8)
    return LabeledImages(images=images, labels=np.repeat([0, 1], n), class_names=("normal", "pneumonia"), name=name)


def test_count_matched_and_only_the_extra_images_change():
    _needs_medmnistc()
    real = _real()
    c = build_condition(NAME, real=real, seed=3, options={"extra_total": 40})
    assert (c.n_real, c.n_extra, len(c.train)) == (12, 40, 52) and c.augment is False
    assert np.array_equal(c.train.images[:12], real.images) and np.array_equal(c.train.labels[:12], real.labels)
    assert np.bincount(c.train.labels[12:]).tolist() == [20, 20]
    dup = build_condition("real+duplicate", real=real, seed=3, options={"extra_total": 40})
    assert np.array_equal(dup.train.labels, c.train.labels)  # the same re-drawn images as the duplicate control ...
    changed = np.any(dup.train.images[12:] != c.train.images[12:], axis=(1, 2, 3))
    assert 0.5 < changed.mean() < 1.0  # ... most through a corruption, some left as they are (the identity)
    assert c.facts["medmnistc_set"] == "pneumoniamnist" and len(c.facts["corruptions"]) == 13 and not c.facts["left_out"]


def test_same_seed_same_images_and_the_global_numpy_state_is_left_alone():
    _needs_medmnistc()
    real = _real()
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = build_condition(NAME, real=real, seed=1, options={"extra_total": 30})
    assert np.array_equal(np.random.get_state()[1], before)
    b = build_condition(NAME, real=real, seed=1, options={"extra_total": 30})
    other = build_condition(NAME, real=real, seed=2, options={"extra_total": 30})
    assert np.array_equal(a.train.images, b.train.images)
    assert not np.array_equal(a.train.images, other.train.images)


def test_skin_images_use_dermamnist_corruptions_and_name_the_ones_that_cannot_run():
    _needs_medmnistc()
    from medmnistc.corruptions.registry import CORRUPTIONS_DS

    real = _real("ham10000_28", channels=3)
    c = build_condition(NAME, real=real, seed=0, options={"extra_total": 20})
    assert c.facts["medmnistc_set"] == "dermamnist" and c.train.images.shape[1:] == (28, 28, 3)
    assert set(c.facts["corruptions"]) | set(c.facts["left_out"]) == set(CORRUPTIONS_DS["dermamnist"])
    assert len(c.facts["corruptions"]) >= 10  # every one that runs at 28 px here is used
    assert all(isinstance(why, str) and why for why in c.facts["left_out"].values())


def test_unknown_modality_and_missing_package_are_one_line_errors(monkeypatch):
    _needs_medmnistc()
    with pytest.raises(SynthmedError, match="MedMNIST-C has no corruptions for dataset 'mydata'") as e:
        build_condition(NAME, real=_real("mydata"), options={"extra_total": 4})
    assert "\n" not in str(e.value)
    monkeypatch.setitem(sys.modules, "medmnistc.corruptions.registry", None)  # as if it were not installed
    with pytest.raises(SynthmedError, match="needs MedMNIST-C .*pip install --no-deps medmnistc") as e:
        build_condition(NAME, real=_real(), options={"extra_total": 4})
    assert "\n" not in str(e.value)


def test_registered_as_an_opt_in_count_matched_control():
    cond = get_condition(NAME)
    assert cond.is_control and not cond.in_default and not cond.needs_generator
    assert cond.options_from_study({"total": 1200, "ratio": None}) == {"extra_total": 1200, "extra_ratio": None}
    assert NAME in load_study_config(profile="usage").conditions and NAME not in load_study_config().conditions


def test_real_pneumoniamnist_images_through_every_corruption(pneumonia_50shot):
    _needs_medmnistc()
    real = pneumonia_50shot["train"]
    c = build_condition(NAME, real=real, seed=0, options={"extra_total": 200})
    dup = build_condition("real+duplicate", real=real, seed=0, options={"extra_total": 200})
    extra, source = c.train.images[len(real):], dup.train.images[len(real):]  # the same re-drawn images
    assert extra.shape == (200, 28, 28, 1) and extra.dtype == np.uint8 and not c.facts["left_out"]
    changed = np.abs(extra.astype(int) - source.astype(int)).mean(axis=(1, 2, 3)) > 0
    assert 0.8 < changed.mean() < 1.0  # one of 14 choices is the identity
    assert 20 < extra.mean() < 235 and extra.std() > 10  # still X-ray grey levels, not blank or saturated
