"""Every registered backbone × stem × grey/RGB × 28/64 px builds and gives the right shapes."""

from __future__ import annotations

import pytest
import torch

from synthmed.classify import STEMS, build_classifier, list_classifiers
from synthmed.errors import ConfigError, UnknownNameError

# tiny nets gain nothing from a second thread; on the shared CPU spin-waiting makes them far slower
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_registry_lists_the_three_backbones():
    assert list_classifiers() == ["resnet18", "resnet50", "vgg16"]


@pytest.mark.parametrize("size", [28, 64])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("stem", STEMS)
@pytest.mark.parametrize("name", list_classifiers())
def test_builder_output_shapes(name, stem, channels, size):
    torch.manual_seed(0)
    net = build_classifier(name, num_classes=3, in_channels=channels, image_size=size, stem=stem).eval()
    first_conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.in_channels == channels  # grey input is never repeated to 3 channels
    assert first_conv.stride == ((2, 2) if stem == "standard" else (1, 1))
    x = torch.randint(0, 256, (1, channels, size, size), dtype=torch.uint8)  # one image: shapes only
    with torch.inference_mode():
        logits, feats = net(x), net.features(x)
    assert logits.shape == (1, 3) and logits.dtype == torch.float32
    assert feats.shape == (1, net.feature_dim)
    assert torch.isfinite(logits).all()


def test_unknown_model_name_suggests_the_closest():
    with pytest.raises(UnknownNameError, match="did you mean 'resnet18'"):
        build_classifier("resnet19", num_classes=2)


def test_unknown_stem_and_bad_channels_are_refused():
    with pytest.raises(UnknownNameError, match="did you mean 'cifar'"):
        build_classifier("resnet18", num_classes=2, stem="cifr")
    with pytest.raises(ConfigError, match="in_channels must be 1"):
        build_classifier("resnet18", num_classes=2, in_channels=4)
    with pytest.raises(ConfigError, match="at least 2 classes"):
        build_classifier("resnet18", num_classes=1)
