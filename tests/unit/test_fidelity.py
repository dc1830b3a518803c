"""Fidelity metrics on synthetic Gaussian features with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from synthmed.errors import ConfigError, DataFormatError
from synthmed.metrics import fidelity as F


def gaussian(n, d=6, seed=0, mean=0.0, scale=1.0):
    return np.random.default_rng(seed).normal(mean, scale, size=(n, d))


def scipy_fid(a, b):
    """Independent reference: the original TTUR formula with scipy.linalg.sqrtm."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_fid_identical_sets_is_zero():
    x = gaussian(500)
    assert abs(F.features_to_fid(x, x)) < 1e-8


def test_fid_mean_shift_equals_squared_norm():
    x = gaussian(1000)
    mu = np.array([1.0, -2.0, 0.5, 0.0, 0.0, 3.0])
    assert F.features_to_fid(x, x + mu) == pytest.approx(float(mu @ mu), rel=1e-9, abs=1e-8)


def test_fid_matches_scipy_sqrtm_reference():
    a = gaussian(400, d=8, seed=1)
    b = gaussian(300, d=8, seed=2) @ np.random.default_rng(3).normal(size=(8, 8)) * 0.7 + 0.3
    assert F.features_to_fid(a, b) == pytest.approx(scipy_fid(a, b), rel=1e-6)


def test_kid_identical_distributions_near_zero_and_shift_is_large():
    a, b = gaussian(400, seed=1), gaussian(400, seed=2)
    same = F.features_to_kid(a, b, subset_size=400, subsets=3)
    shifted = F.features_to_kid(a, b + 1.0, subset_size=400, subsets=3)
    assert abs(same[F.KEY_KID_MEAN]) < 0.05  # unbiased MMD² may dip slightly below 0
    assert shifted[F.KEY_KID_MEAN] > 100 * abs(same[F.KEY_KID_MEAN])


def test_kid_subset_size_is_clamped_to_the_smaller_set():
    out = F.features_to_kid(gaussian(50, seed=1), gaussian(30, seed=2), subset_size=1000, subsets=5)
    assert out[F.KEY_KID_SUBSET_SIZE] == 30


def test_collapsed_fake_set_has_high_precision_low_recall():
    real = gaussian(400, d=2, seed=1)
    collapsed = gaussian(400, d=2, seed=2, scale=0.05)  # all fakes near the real mode
    pr = F.features_to_precision_recall(real, collapsed, k=3)
    assert pr[F.KEY_PRECISION] > 0.95
    assert pr[F.KEY_RECALL] < 0.2
    good = F.features_to_precision_recall(real, gaussian(400, d=2, seed=3), k=3)
    assert good[F.KEY_PRECISION] > 0.8 and good[F.KEY_RECALL] > 0.8


def test_inception_score_known_values():
    k = 4
    confident = np.log(np.eye(k)[np.arange(400) % k] * (1 - 1e-9) + 1e-9 / k)  # one-hot, balanced classes
    assert F.logits_to_inception_score(confident, splits=1)[F.KEY_IS_MEAN] == pytest.approx(k, rel=1e-4)  # exp H(p(y))
    assert F.logits_to_inception_score(np.zeros((100, k)))[F.KEY_IS_MEAN] == pytest.approx(1.0)


def test_fidelity_from_features_records_extractor_and_makes_is_optional():
    facts = {"extractor": "domain", "input_size": 28, "checksum": "abc123"}
    out = F.fidelity_from_features(gaussian(60, seed=1), gaussian(50, seed=2), kid_subsets=5, extractor=facts)
    assert (out[F.KEY_EXTRACTOR], out[F.KEY_INPUT_SIZE], out[F.KEY_CHECKSUM]) == ("domain", 28, "abc123")
    assert (out[F.KEY_N_REAL], out[F.KEY_N_FAKE], out[F.KEY_KID_SUBSET_SIZE]) == (60, 50, 25)  # half the smaller set
    assert out[F.KEY_KID_STD] > 0  # subsets differ, so the spread is informative
    assert out[F.KEY_IS_MEAN] is None
    with_is = F.fidelity_from_features(gaussian(60, seed=1), gaussian(50, seed=2), kid_subsets=5,
                                       fake_logits=gaussian(50, d=3, seed=4))
    assert with_is[F.KEY_IS_MEAN] >= 1.0


def test_fidelity_per_class_scores_each_class_and_skips_tiny_ones():
    real = np.concatenate([gaussian(100, seed=1), gaussian(100, seed=2, mean=5.0), gaussian(3, seed=5)])
    real_y = np.repeat([0, 1, 2], [100, 100, 3])
    fake = np.concatenate([gaussian(80, seed=3), gaussian(80, seed=4, mean=6.0), gaussian(2, seed=6)])
    fake_y = np.repeat([0, 1, 2], [80, 80, 2])
    out = F.fidelity_per_class(real, real_y, fake, fake_y, class_names=("a", "b", "c"), kid_subsets=5)
    assert out["a"][F.KEY_FID] < 1.0  # same distribution
    assert out["b"][F.KEY_FID] == pytest.approx(6.0, rel=0.3)  # mean shift of 1 in 6 dims ⇒ |μ|² = 6
    assert "needs ≥ 4" in out["c"][F.KEY_SKIPPED] and out["c"][F.KEY_N_FAKE] == 2


def test_real_floor_uses_disjoint_subsets_and_sits_below_a_shifted_fake():
    real = gaussian(600, seed=1)
    floor = F.real_floor(real, 200, seed=0, kid_subsets=5)
    assert floor["n"] == 200 and floor[F.KEY_N_REAL] == floor[F.KEY_N_FAKE] == 200
    assert 0 < floor[F.KEY_FID] < 0.5  # finite-sample bias only
    shifted = F.fidelity_from_features(real[:200], gaussian(200, seed=9, mean=1.0), kid_subsets=5)
    assert shifted[F.KEY_FID] > 10 * floor[F.KEY_FID]
    # the same seed gives the same floor
    assert F.real_floor(real, 200, seed=0, kid_subsets=5)[F.KEY_FID] == floor[F.KEY_FID]


def test_real_floor_raises_when_pool_too_small():
    with pytest.raises(ConfigError, match="lower n"):
        F.real_floor(gaussian(100), 60)


def test_mismatched_feature_dimensions_raise():
    with pytest.raises(DataFormatError, match="one extractor"):
        F.features_to_fid(gaussian(10, d=3), gaussian(10, d=4))


def test_fidelity_report_bundles_overall_per_class_and_floor():
    real, real_y = gaussian(300, seed=1), np.repeat([0, 1], 150)
    fake, fake_y = gaussian(200, seed=2, mean=0.5), np.repeat([0, 1], 100)
    rep = F.fidelity_report(real, real_y, fake, fake_y, class_names=("a", "b"), kid_subsets=3)
    assert set(rep) == {"overall", "per_class", "real_floor"} and set(rep["per_class"]) == {"a", "b"}
    assert rep["real_floor"]["n"] == 150 and "n=150" in rep["real_floor"]["note"]  # pool of 300 allows 2 x 150
    assert rep["overall"][F.KEY_FID] > rep["real_floor"][F.KEY_FID]
