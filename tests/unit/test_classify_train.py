"""Training loop, TrainedClassifier and their error messages, on tiny synthetic sets (seconds)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from synthmed.callbacks import History
from synthmed.classify import ClassifierConfig, TrainedClassifier, train_classifier
from synthmed.classify.augment import augment_batch
from synthmed.classify.train import _batches
from synthmed.config import validate
from synthmed.data.types import LabeledImages
from synthmed.errors import ConfigError, DataFormatError, DataNotFoundError

# tiny nets gain nothing from a second thread; on the shared CPU spin-waiting makes them far slower
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _separable(n: int, seed: int, channels: int = 1, size: int = 28) -> LabeledImages:
    """Class 1 is brighter than class 0, plus noise: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    base = np.where(labels[:, None, None, None] == 1, 170, 70)
    images = np.clip(base + rng.normal(0, 40, (n, size, size, channels)), 0, 255).astype(np.uint8)
    return LabeledImages(images, labels.astype(np.int64), ("normal", "pneumonia"), name="toy")


@pytest.fixture(scope="module")
def toy():
    return _separable(16, 0), _separable(12, 1)


def _cfg(**kw) -> ClassifierConfig:
    base = dict(max_steps=3, batch_size=8, eval_every=1, patience=None, seed=0)
    return ClassifierConfig(**{**base, **kw})


def test_same_seed_gives_same_weights_and_other_seed_differs(toy):
    train, val = toy
    a = train_classifier(train, val, _cfg())
    b = train_classifier(train, val, _cfg())
    c = train_classifier(train, val, _cfg(seed=1))
    assert a.checksum == b.checksum
    assert a.checksum != c.checksum
    np.testing.assert_array_equal(a.predict_proba(val.images), b.predict_proba(val.images))


def test_training_leaves_the_global_torch_rng_untouched(toy):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    train_classifier(toy[0], None, _cfg(max_steps=1))
    assert torch.equal(before, torch.get_rng_state())


def test_save_load_roundtrip_reproduces_predictions(toy, tmp_path):
    train, val = toy
    clf = train_classifier(train, val, _cfg(), out_dir=tmp_path)
    assert (tmp_path / "classifier.pt").exists()
    assert json.loads((tmp_path / "history.json").read_text())[0]["step"] == 1
    loaded = TrainedClassifier.load(tmp_path / "classifier.pt")
    np.testing.assert_allclose(loaded.predict_proba(val.images), clf.predict_proba(val.images), rtol=0, atol=0)
    assert loaded.checksum == clf.checksum
    assert loaded.class_names == ("normal", "pneumonia") and loaded.image_shape == (28, 28, 1)
    assert (loaded.steps_done, loaded.best_step, loaded.history) == (clf.steps_done, clf.best_step, clf.history)
    with pytest.raises(DataNotFoundError, match="does not exist"):
        TrainedClassifier.load(tmp_path / "missing.pt")


def _noisy(n: int, seed: int) -> LabeledImages:
    """Two classes 12 grey levels apart under noise of std 60: validation F1 goes up and down."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    base = np.where(labels[:, None, None, None] == 1, 134, 122)
    images = np.clip(base + rng.normal(0, 60, (n, 28, 28, 1)), 0, 255).astype(np.uint8)
    return LabeledImages(images, labels.astype(np.int64), ("normal", "pneumonia"), name="noisy")


def test_early_stopping_keeps_the_best_validation_weights():
    from synthmed.metrics.classification import classification_metrics

    train, val = _noisy(16, 0), _noisy(24, 1)
    cfg = _cfg(max_steps=8, lr=3e-3)
    clf = train_classifier(train, val, cfg)
    f1s = [row["val_macro_f1"] for row in clf.history]
    best = int(np.argmax(f1s))  # first maximum: ties keep the earlier weights
    assert clf.best_step == clf.history[best]["step"] < clf.steps_done == 8  # the best is not the last here
    kept = classification_metrics(val.labels, clf.predict_proba(val.images), val.class_names)["macro_f1"]
    assert kept == pytest.approx(f1s[best])
    # the same run without val ends on the last weights (val passes draw no randomness)
    last = train_classifier(train, None, cfg)
    assert last.checksum != clf.checksum
    last_f1 = classification_metrics(val.labels, last.predict_proba(val.images), val.class_names)["macro_f1"]
    assert last_f1 == pytest.approx(f1s[-1])
    stopped = train_classifier(train, val, cfg.model_copy(update={"patience": 2}))
    assert stopped.stopped_by == "early_stopping" and stopped.steps_done == stopped.best_step + 2
    assert [r["val_macro_f1"] for r in stopped.history] == f1s[: stopped.steps_done]  # the same run, cut short
    assert stopped.best_step == 1 + int(np.argmax(f1s[: stopped.steps_done]))
    if stopped.best_step == clf.best_step:
        assert stopped.checksum == clf.checksum  # same best weights, found sooner


def test_callbacks_receive_loss_lr_and_validation_scalars(toy):
    hist = History()
    train_classifier(toy[0], toy[1], _cfg(max_steps=4, eval_every=2), callbacks=[hist])
    assert [r["step"] for r in hist.rows] == [1, 2, 3, 4]
    assert np.isnan(hist.rows[0]["val_macro_f1"]) and 0 <= hist.rows[1]["val_macro_f1"] <= 1
    assert hist.rows[0]["lr"] == pytest.approx(1e-3) and hist.rows[3]["lr"] < hist.rows[0]["lr"]  # cosine


def test_epochs_budget_replaces_max_steps(toy):
    clf = train_classifier(toy[0], None, _cfg(epochs=2, max_steps=100))
    assert clf.steps_done == 4 and clf.stopped_by == "max_steps"  # 16 images / batch 8 = 2 steps per epoch


def test_augmentation_is_seeded_and_changes_training(toy):
    x = torch.from_numpy(toy[0].images).permute(0, 3, 1, 2)
    a = augment_batch(x, torch.Generator().manual_seed(0))
    b = augment_batch(x, torch.Generator().manual_seed(0))
    assert a.dtype == torch.uint8 and a.shape == x.shape
    assert torch.equal(a, b) and not torch.equal(a, x)
    plain = train_classifier(toy[0], None, _cfg(augment=False))
    augmented = train_classifier(toy[0], None, _cfg(augment=True))
    assert plain.checksum != augmented.checksum
    assert augmented.checksum == train_classifier(toy[0], None, _cfg(augment=True)).checksum


def test_balanced_sampling_draws_classes_evenly():
    labels = np.array([0] * 28 + [1] * 4)
    cfg = _cfg(balanced_sampling=True, batch_size=8)
    it = _batches(labels, 2, cfg)
    drawn = np.concatenate([labels[next(it)] for _ in range(100)])
    assert 0.4 < drawn.mean() < 0.6  # 4 of 32 images are class 1, yet about half the draws
    plain = _batches(labels, 2, _cfg(batch_size=8))
    assert np.concatenate([labels[next(plain)] for _ in range(100)]).mean() < 0.2


def test_embed_and_feature_module_follow_the_feature_contract(toy):
    clf = train_classifier(toy[0], None, _cfg(max_steps=1))
    emb = clf.embed(toy[1].images)
    assert emb.shape == (12, clf.feature_dim) == (12, 512) and emb.dtype == np.float32
    fm = clf.feature_module()
    assert isinstance(fm.num_features, int) and fm.num_features == clf.feature_dim
    x = torch.from_numpy(toy[1].images).permute(0, 3, 1, 2)  # (N, 1, H, W) uint8
    with torch.inference_mode():
        np.testing.assert_allclose(fm(x).numpy(), emb, rtol=1e-5, atol=1e-5)
        assert fm(x.expand(-1, 3, -1, -1)).shape == (12, 512)  # RGB into a grey model: converted to luma
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=fm)
    fid.update(x, real=True)
    fid.update(x, real=False)
    assert float(fid.compute()) == pytest.approx(0.0, abs=1e-2)


def test_bad_inputs_raise_errors_that_say_how_to_fix(toy):
    clf = train_classifier(toy[0], None, _cfg(max_steps=1))
    with pytest.raises(DataFormatError, match="uint8"):
        clf.predict_proba(toy[1].images.astype(np.float32))
    with pytest.raises(DataFormatError, match=r"\(N, H, W, C\)"):
        clf.predict_proba(toy[1].images[..., 0])
    with pytest.raises(DataFormatError, match=r"expected images of shape \(H, W, C\) = \(28, 28, 1\)"):
        clf.predict(np.zeros((2, 32, 32, 1), np.uint8))
    with pytest.raises(DataFormatError, match="val classes"):
        other = LabeledImages(toy[1].images, toy[1].labels, ("a", "b"))
        train_classifier(toy[0], other, _cfg(max_steps=1))
    with pytest.raises(ConfigError, match="did you mean 'resnet18'"):
        validate(ClassifierConfig, {"model": "resnet-18"})
    with pytest.raises(ConfigError, match="did you mean 'patience'"):
        validate(ClassifierConfig, {"patiense": 3})
