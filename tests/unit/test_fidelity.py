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


# -- matched-size design against the held-out floor (real PneumoniaMNIST; see _instrument_data) ----------


def test_prdc_density_and_coverage_known_answers():
    real, same = gaussian(400, d=4, seed=1), gaussian(400, d=4, seed=2)
    out = F.features_to_prdc(real, same, k=5)
    assert 0.8 < out[F.KEY_DENSITY] < 1.2  # Naeem et al.: E[density] = 1 for identical distributions
    assert out[F.KEY_COVERAGE] > 0.9  # ≈ 1 − 2^−k = 0.97 for identical distributions
    collapsed = F.features_to_prdc(real, gaussian(400, d=4, seed=3, scale=0.05), k=5)
    assert collapsed[F.KEY_PRECISION] > 0.95 and collapsed[F.KEY_COVERAGE] < 0.2  # real-looking but one mode
    shifted = F.features_to_prdc(real, gaussian(400, d=4, seed=4, mean=2.0), k=5)
    assert shifted[F.KEY_DENSITY] < 0.3 and shifted[F.KEY_COVERAGE] < 0.3  # off the real manifold


@pytest.fixture(scope="module")
def held(data_dir):
    from _instrument_data import design, features

    sets, _ = design()
    return sets, {k: features(sets[k].images) for k in ("R", "H", "H2")}


def test_perfect_generator_sits_at_the_floor(held):
    sets, f = held
    out = F.matched_fidelity(f["R"], f["H"], f["H2"], n_subsets=30, seed=0)
    assert (out["n_synthetic"], out["n_heldout"], out["n_reference"]) == (300, 300, 300)
    assert set(out["metrics"]) == set(F.MATCHED_METRICS)
    for name, m in out["metrics"].items():
        assert m["at_floor"] and m["position"] == "at floor", (name, m)  # inside the floor's interval
        if m["ratio"] is not None:  # every ratio inside the floor's own ratio interval (floor / floor = 1)
            assert m["floor_ratio_ci"][0] <= m["ratio"] <= m["floor_ratio_ci"][1], (name, m)
            assert m["ratio_ci"][0] <= 1 <= m["ratio_ci"][1], (name, m)
    assert out["metrics"][F.KEY_KID_MEAN]["ratio"] is None  # unbiased KID: read the difference, not a ratio
    per_class = F.matched_fidelity_per_class(f["R"], sets["R"].labels, f["H"], sets["H"].labels, f["H2"],
                                             sets["H2"].labels, class_names=("normal", "pneumonia"), n_subsets=30)
    assert set(per_class) == {"normal", "pneumonia"}
    for name, res in per_class.items():  # each class has its own floor at its own matched size
        assert res["n_synthetic"] == res["n_heldout"] == min((sets["H"].labels == (name == "pneumonia")).sum(),
                                                             (sets["H2"].labels == (name == "pneumonia")).sum())
    # 95 % intervals per metric: with 12 per-class checks one miss is expected by chance, so only the
    # large class (~225 images) is held to every metric; the small one (~75) only to FD
    assert all(m["at_floor"] for m in per_class["pneumonia"]["metrics"].values())
    assert per_class["normal"]["metrics"][F.KEY_FID]["at_floor"]


def test_a_wrong_generator_lands_far_from_the_floor(held):
    from _instrument_data import features

    sets, f = held
    flipped = features(sets["H2"].images[:, ::-1].copy())  # upside-down chest X-rays
    out = F.matched_fidelity(f["R"], f["H"], flipped, n_subsets=20)
    fid = out["metrics"][F.KEY_FID]
    assert not fid["at_floor"] and fid["position"] == "above floor" and fid["ratio"] > 5 and fid["ratio_ci"][0] > fid["floor_ratio_ci"][1]
    assert out["metrics"][F.KEY_DENSITY]["synthetic"] < out["metrics"][F.KEY_DENSITY]["floor_ci"][0]


def test_matched_fidelity_matches_sizes_and_demotes_inception_score():
    real, held_, fake = gaussian(60, seed=1), gaussian(40, seed=2), gaussian(100, seed=3)
    logits = np.log(np.eye(2)[np.arange(100) % 2] * 0.98 + 0.01)
    out = F.matched_fidelity(real, held_, fake, n_subsets=10, k=3, synthetic_logits=logits)
    assert out["n_synthetic"] == out["n_heldout"] == 40 and "sizes matched at 40" in out["note"]
    assert out["inception_score"]["cap"] == 2 and "capped" in out["inception_score"]["note"]
    assert out["inception_score"]["synthetic"][F.KEY_IS_MEAN] <= 2.0 + 1e-6
    with pytest.raises(ConfigError, match="n_subsets"):
        F.matched_fidelity(real, held_, fake, n_subsets=3)


def test_prdc_with_given_radii_equals_the_prdc_package_exactly():
    import contextlib
    import io

    from prdc import compute_prdc

    real, fake = gaussian(300, d=16, seed=5), gaussian(250, d=16, seed=6, mean=0.3)
    with contextlib.redirect_stdout(io.StringIO()):
        ref = compute_prdc(real.astype(np.float32), fake.astype(np.float32), nearest_k=5)
    for radii in (None, F.prdc_radii(real, 5)):  # computed here, or once for R and reused
        got = F.features_to_prdc(real, fake, k=5, real_radii=radii)
        assert got == {k: float(v) for k, v in ref.items()}  # bit-identical, not approximately


def test_low_rank_fd_equals_the_general_formula():
    """Half-samples have n ≤ D: their FD comes from the n × n symmetric problem. Known answer: both sets lie in
    a 12-d subspace of 40-d, so FD equals the FD of their coordinates in an orthonormal basis of it (12-d, full
    rank, well conditioned); the general 40-d formula on the singular product is off by ~1e-7 relative here."""
    import torch
    from torch_fidelity.metric_fid import fid_features_to_statistics

    rng = np.random.default_rng(7)
    basis = np.linalg.qr(rng.normal(size=(40, 12)))[0].T  # (12, 40) orthonormal rows
    a, b = rng.normal(size=(60, 12)) * 3, rng.normal(size=(30, 12)) * 2 + 0.2
    real, fake = a @ basis, b @ basis  # rank 12 in 40-d
    low = F._fid_low_rank(fid_features_to_statistics(torch.from_numpy(real)), fake)
    assert low == pytest.approx(F.features_to_fid(a, b), rel=1e-12)
    assert low == pytest.approx(F.features_to_fid(real, fake), rel=1e-6)
    full = gaussian(80, d=8, seed=8)  # n > D: the general path
    assert F._pair_metrics(real, F._ref_side(real, 5), fake, 5)["fid"] == low
    assert F._pair_metrics(full[:40], F._ref_side(full[:40], 5), full[40:], 5)["fid"] == F.features_to_fid(full[:40], full[40:])


def test_matched_floor_computed_apart_gives_the_same_matched_fidelity():
    real, held, fake = gaussian(120, d=8, seed=1), gaussian(100, d=8, seed=2), gaussian(130, d=8, seed=3, mean=0.2)
    floor = F.matched_floor(real, held, len(fake), n_subsets=12, seed=4)
    again = F.MatchedFloor.from_arrays(floor.to_arrays())
    a = F.matched_fidelity(real, held, fake, n_subsets=12, seed=4, floor=again)
    assert a == F.matched_fidelity(real, held, fake, n_subsets=12, seed=4)
    # a floor made for another synthetic size, seed or subset count is not used: recomputed, same numbers
    other = F.matched_floor(real, held, 60, n_subsets=12, seed=4)
    assert not other.fits(100, 120, 100, 12, 5, 4)
    assert F.matched_fidelity(real, held, fake, n_subsets=12, seed=4, floor=other) == a


def test_per_class_floor_skips_a_class_whose_half_samples_are_too_small_for_knn():
    # found on the grey skin stand-in: 12 held-out melanomas, half-samples of 6 = k + 1 crashed prdc's radii
    rng = np.random.default_rng(0)
    feats, labels = rng.normal(size=(92, 8)), np.r_[np.zeros(80, int), np.ones(12, int)]
    floors = F.matched_floor_per_class(feats, labels, feats[::-1].copy(), labels[::-1].copy(), [80, 12],
                                       class_names=("nv", "mel"), n_subsets=10)
    assert list(floors) == ["nv"]
    with pytest.raises(ConfigError, match="needs ≥ 14 images"):
        F.matched_floor(feats[:13], feats[:13], 13, n_subsets=10)
    F.matched_floor(feats[:14], feats[14:28], 14, n_subsets=10)  # 7 per half: enough for k = 5
