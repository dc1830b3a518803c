"""Copy detection: planted exact/near copies are caught, fresh images are not."""

from __future__ import annotations

import numpy as np
import pytest

from synthmed.errors import ConfigError, DataFormatError
from synthmed.metrics import memorization as M


def blobs(n, seed, size=28):
    """Smooth random grey images (sums of Gaussian bumps), more image-like than white noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = np.zeros((n, size, size), np.float64)
    for i in range(n):
        for _ in range(4):
            cy, cx, s, a = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(2, 7), rng.uniform(60, 200)
            out[i] += a * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    return np.clip(out, 0, 255).astype(np.uint8)[..., None]


def near_copy(images, seed, sigma=3.0):
    noise = np.random.default_rng(seed).normal(0, sigma, images.shape)
    return np.clip(images.astype(np.float64) + noise, 0, 255).astype(np.uint8)


def test_nearest_two_matches_brute_force_and_is_exact_at_zero():
    rng = np.random.default_rng(0)
    ref, q = rng.random((50, 20)), rng.random((7, 20))
    q[0] = ref[13]  # exact copy
    d, i = M.nearest_two(q, ref, chunk=3, device="cpu")
    full = np.linalg.norm(q[:, None] - ref[None], axis=2)
    np.testing.assert_array_equal(i, np.argsort(full, axis=1)[:, :2])
    np.testing.assert_allclose(d, np.sort(full, axis=1)[:, :2], rtol=1e-12)
    assert i[0, 0] == 13 and d[0, 0] == 0.0


def test_planted_copies_are_caught_and_fresh_images_pass():
    train, held = blobs(60, seed=1), blobs(40, seed=2)
    fresh = blobs(30, seed=3)
    synthetic = np.concatenate([train[:5], near_copy(train[5:10], seed=4), fresh])
    labels = np.array([0, 1] * 5 + [0] * 15 + [1] * 15)
    rep = M.copy_report(synthetic, labels, train, heldout_images=held, class_names=("a", "b"), device="cpu")
    flags = rep.is_copy
    assert flags[:10].all(), "exact and near copies must be flagged"
    assert flags[10:].mean() <= 0.1, "fresh images must (almost) never be flagged"
    np.testing.assert_array_equal(rep.spaces["pixel"].nn_index[:10], np.arange(10))
    s = rep.summary()
    assert s[M.KEY_COPY_COUNT] == int(flags.sum())
    assert s[M.KEY_COPY_FRACTION_PER_CLASS]["a"] == pytest.approx(flags[labels == 0].mean())
    assert s["pixel"][M.KEY_THRESHOLD] > 0


def test_exact_copy_of_a_duplicated_training_image_is_caught_without_calibration():
    train = blobs(20, seed=1)
    train[7] = train[3]  # a duplicate inside the training set defeats the ratio test (NN1 = NN2 = 0)
    rep = M.copy_report(train[3:4], np.array([0]), train, device="cpu")
    assert rep.spaces["pixel"].threshold == 0.0
    assert rep.is_copy[0] and not rep.spaces["pixel"].ratio_flag[0]


def test_feature_space_copies_and_closest_pairs():
    rng = np.random.default_rng(0)
    train_f, fake_f = rng.normal(size=(80, 16)), rng.normal(size=(20, 16))
    fake_f[:3] = train_f[[10, 20, 30]] + 1e-3 * rng.normal(size=(3, 16))
    train, fake = blobs(80, seed=1), blobs(20, seed=2)
    rep = M.copy_report(fake, np.zeros(20, int), train, synthetic_feats=fake_f, train_feats=train_f, device="cpu",
                        extractor={"extractor": "tiny", "input_size": 28, "checksum": "c"})
    assert rep.spaces["feature"].is_copy[:3].all() and rep.spaces["feature"].is_copy[3:].sum() <= 1
    pairs = rep.closest_pairs("feature", top_k=3)
    assert sorted(map(tuple, pairs.tolist())) == [(0, 10), (1, 20), (2, 30)]
    assert rep.summary()["extractor"]["extractor"] == "tiny"


def test_closest_pairs_png_writes_one_image(tmp_path):
    from PIL import Image

    train, fake = blobs(10, seed=1), blobs(6, seed=2)
    rep = M.copy_report(fake, np.zeros(6, int), train, device="cpu")
    path = M.closest_pairs_png(fake, train, rep.closest_pairs("pixel", 4), tmp_path / "pairs.png", top_k=4,
                               per_row=2, scale=2)
    img = Image.open(path)
    # 2 rows x 4 tiles of 28 px with 2 px padding, upscaled x2
    assert img.size == ((4 * 30 + 2) * 2, (2 * 30 + 2) * 2)


def test_real_pneumonia_copies_caught_and_test_images_pass(pneumonia_50shot):
    train, val, test = (pneumonia_50shot[k] for k in ("train", "val", "test"))
    synthetic = np.concatenate([train.images[:5], near_copy(train.images[5:10], seed=0), test.images[:40]])
    labels = np.concatenate([train.labels[:10], test.labels[:40]])
    rep = M.copy_report(synthetic, labels, train.images, heldout_images=val.images[:200],
                        class_names=train.class_names, device="cpu")
    assert rep.is_copy[:10].all()
    assert rep.is_copy[10:].mean() <= 0.1


def test_bad_inputs_raise_clear_errors():
    train = blobs(5, seed=1)
    with pytest.raises(DataFormatError, match="differ in"):
        M.copy_report(blobs(2, seed=2, size=16), np.zeros(2, int), train)
    with pytest.raises(ConfigError, match="both synthetic_feats and train_feats"):
        M.copy_report(train[:2], np.zeros(2, int), train, synthetic_feats=np.zeros((2, 3)))
    with pytest.raises(ConfigError, match="≥ 2 training images"):
        M.nearest_two(np.zeros((1, 3)), np.zeros((1, 3)))


def test_calibration_ignores_heldout_images_that_duplicate_training_images():
    train, held = blobs(40, seed=1), blobs(30, seed=2)
    held[:5] = train[:5]  # leaked duplicates across splits (PneumoniaMNIST has 8 in val)
    tv, hv = M.images_to_pixel_vectors(train), M.images_to_pixel_vectors(held)
    thr = M.calibrate_threshold(tv, hv, percentile=0.0, device="cpu")
    assert thr == pytest.approx(M.nearest_two(hv[5:], tv, device="cpu")[0][:, 0].min())


# -- calibrated copy detector on real PneumoniaMNIST (issue 12 known answers) ------------------------------


@pytest.fixture(scope="module")
def detector(data_dir):
    """Calibrated on H (300 held-out real images) against the 100 k-shot training images, α = 1 %."""
    from _instrument_data import design, features

    sets, _ = design()
    train, held = sets["train"].images, sets["H"].images
    det = M.calibrate_copy_detector(train, held, train_feats=features(train), heldout_feats=features(held), alpha=0.01)
    return det, sets


def _evaluate(det, images, labels=None):
    from _instrument_data import features

    return det.evaluate(images, labels, features(images), class_names=["normal", "pneumonia"])


def test_null_rate_is_calibrated_and_reported(detector):
    det, _ = detector
    null = det.null
    assert null["n"] == 300 and null["rate"] <= det.alpha  # leave-one-out rate on H, at most α by construction
    assert null["ci"][0] <= det.alpha <= null["ci"][1]
    assert set(det.thresholds) == {"pixel", "feature"} and det.alpha_per_space == pytest.approx(0.005)
    assert all(0 < t < 1 for t in det.thresholds.values())


def test_perfect_generator_flags_at_the_null_rate(detector):
    det, sets = detector
    out = _evaluate(det, sets["H2"].images, sets["H2"].labels)
    lo, hi = out["flag_rate"]["ci"]
    assert lo <= out["null"]["rate"] <= hi  # copy rate = null rate within its binomial interval
    assert not out["copies_above_null"]
    assert set(out["flag_rate_per_class"]) == {"normal", "pneumonia"}


@pytest.mark.parametrize("make", ["noise", "shift"])
def test_copier_is_caught(detector, make):
    det, sets = detector
    train = sets["train"].images
    if make == "noise":  # tiny noise: σ = 2 grey levels
        copies = near_copy(train, seed=0, sigma=2.0)
    else:  # a 1-pixel shift to the right (the vacated column repeats its neighbour)
        copies = np.concatenate([train[:, :, :1], train[:, :, :-1]], axis=2)
    out = _evaluate(det, copies)
    assert out["flag_rate"]["rate"] >= 0.95, out["flag_rate"]
    assert out["copies_above_null"] and out["train_copied"]["rate"] >= 0.9


def test_smooth_novel_images_are_not_flagged(detector):
    """Defect 3: blurred held-out images are new; the old absolute pixel threshold flagged such images."""
    from scipy.ndimage import gaussian_filter

    det, sets = detector
    blurred = gaussian_filter(sets["H2"].images.astype(np.float64), sigma=(0, 1.0, 1.0, 0)).round().astype(np.uint8)
    out = _evaluate(det, blurred)
    assert out["flag_rate"]["rate"] <= out["null"]["ci"][1] and not out["copies_above_null"], out["flag_rate"]


def test_alpha_too_small_for_the_heldout_set_says_how_to_fix(detector):
    _, sets = detector
    with pytest.raises(ConfigError, match="use alpha ≥"):
        M.calibrate_copy_detector(sets["train"].images, sets["H"].images[:50], alpha=0.01)


def test_restored_detector_scores_like_the_calibrated_one(detector):
    from _instrument_data import features

    det, sets = detector
    train = sets["train"].images
    calibration = {"alpha": det.alpha, "thresholds": det.thresholds, "null": det.null, "n_train": det.n_train,
                   "confidence": det.confidence, "max_shift": det.max_shift, "extractor": det.extractor}
    again = M.restore_copy_detector(train, features(train), calibration, det.heldout_scores)
    images = np.concatenate([sets["H2"].images[:50], train[:20]])  # new images and exact copies
    assert _evaluate(again, images) == _evaluate(det, images)
    with pytest.raises(ConfigError, match="train_feats"):
        M.restore_copy_detector(train, None, calibration, det.heldout_scores)
