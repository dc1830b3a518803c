"""Classifier backbones: torchvision ResNet-18/50 and VGG-16, random init, adapted to 28/64 px.

Every backbone is torchvision's own (``weights=None``: nothing is downloaded); only the stem and
the head change, so the architecture stays the one the MedMNIST v2 benchmark tables cite
(Yang et al. 2023, https://doi.org/10.1038/s41597-022-01721-8).

Stems (``stem=``):
    "standard"  torchvision's stem, which downsamples early. ResNet: 7x7 stride-2 conv + 3x3
                stride-2 max-pool (28 px → 7 px before layer1). VGG-16 (with BN): the first
                conv gets stride 2. Cheap: ~4x the training throughput of "cifar" at 28 px on a 2-core CPU.
    "cifar"     full resolution into the first block, as in He et al. 2016 §4.2 (CIFAR-10 ResNets):
                ResNet: 3x3 stride-1 conv, no max-pool. VGG-16: torchvision's convs unchanged.
                More accurate on tiny images, ~4x slower.

Grey images: the first conv takes ``in_channels`` (1 for grey) directly, so no per-batch
channel repeat is ever done. VGG-16 drops the max-pools that would shrink the map below 1x1
(28 px keeps 4 of 5 pools), pools adaptively to 1x1 and uses a 512-512-K head instead of
torchvision's 25088-4096-4096-K head (which is sized for 224 px and would hold 120 M weights).

Every network is wrapped in ``ImageClassifier``, which takes uint8 ``(N, C, H, W)`` tensors and
normalises internally (architecture contract: images between stages are uint8).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from synthmed.errors import ConfigError, unknown_name

Stem = Literal["standard", "cifar"]
STEMS: tuple[str, ...] = ("standard", "cifar")

_BUILDERS: dict[str, Callable[..., tuple[nn.Module, int]]] = {}


def register_classifier(name: str):
    """Decorator: register a backbone builder ``fn(in_channels, image_size, stem) -> (net, feature_dim)``."""

    def deco(fn):
        if name in _BUILDERS:
            raise RuntimeError(f"classifier '{name}' registered twice")
        _BUILDERS[name] = fn
        return fn

    return deco


def list_classifiers() -> list[str]:
    """Names accepted by ``build_classifier`` / ``ClassifierConfig.model``."""
    return sorted(_BUILDERS)


# -- the wrapper every stage sees ---------------------------------------------------------------
class ImageClassifier(nn.Module):
    """Backbone + linear head; uint8 in, logits out.

    Args:
        backbone: maps a normalised float ``(N, C, H, W)`` batch to ``(N, feature_dim)`` features.
        feature_dim: width of the penultimate features (the ``embed`` output).
        num_classes: number of output logits.
        in_channels: 1 (grey) or 3 (RGB).
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, in_channels: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(feature_dim, num_classes)
        self.feature_dim = int(feature_dim)
        self.in_channels = int(in_channels)
        # [0, 255] → [-1, 1]; fixed (not data-dependent) so a saved model needs no dataset statistics.
        self.register_buffer("mean", torch.full((1, in_channels, 1, 1), 127.5))
        self.register_buffer("std", torch.full((1, in_channels, 1, 1), 127.5))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, H, W) → float32 (N, C, H, W) in [-1, 1]."""
        return (x.float() - self.mean) / self.std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, H, W) → (N, feature_dim) float32 penultimate features."""
        return self.backbone(self.normalise(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (N, K) logits


class PenultimateFeatures(nn.Module):
    """Penultimate features in torchmetrics' custom-extractor convention.

    ``forward`` takes uint8 ``(N, C, H, W)`` and returns ``(N, num_features)`` float32. A grey
    model given RGB input converts it to luma (ITU-R BT.601, as ``synthmed.imaging.to_channels``);
    an RGB model given grey input broadcasts the single channel (a view, no copy).
    """

    def __init__(self, net: ImageClassifier):
        super().__init__()
        self.net = net
        self.num_features = int(net.feature_dim)  # torchmetrics reads this instead of a dummy forward
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if c == 3 and self.net.in_channels == 1:
            x = (x.float() * self.luma).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
        elif c == 1 and self.net.in_channels == 3:
            x = x.expand(-1, 3, -1, -1)
        elif c != self.net.in_channels:
            raise ConfigError(f"feature extractor expects 1 or 3 channels; got {c}")
        return self.net.features(x).float()


# -- builders -----------------------------------------------------------------------------------
def _check_stem(stem: str) -> None:
    if stem not in STEMS:
        raise unknown_name("stem", stem, STEMS)


def _resnet(fn: Callable[..., nn.Module], in_channels: int, stem: str) -> tuple[nn.Module, int]:
    net = fn(weights=None)
    if stem == "cifar":
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    else:  # torchvision's own 7x7/2 stem, re-made only for the channel count
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")  # as torchvision's ResNet init
    dim = net.fc.in_features
    net.fc = nn.Identity()  # the backbone ends at the pooled features; ImageClassifier owns the head
    return net, dim


@register_classifier("resnet18")
def _build_resnet18(in_channels: int, image_size: int, stem: str) -> tuple[nn.Module, int]:
    from torchvision.models import resnet18

    return _resnet(resnet18, in_channels, stem)


@register_classifier("resnet50")
def _build_resnet50(in_channels: int, image_size: int, stem: str) -> tuple[nn.Module, int]:
    from torchvision.models import resnet50

    return _resnet(resnet50, in_channels, stem)


@register_classifier("vgg16")
def _build_vgg16(in_channels: int, image_size: int, stem: str) -> tuple[nn.Module, int]:
    # torchvision's own VGG-16 conv stack (config "D") with batch norm (its vgg16_bn layout): BN lets it
    # train from random init at ResNet's lr; without BN, Simonyan & Zisserman (2015, §3.1) had to
    # initialise the deep configs from a shallower trained net. Built from make_layers so torchvision's
    # 224-px classifier (25088-4096-4096, ~120 M weights) is never allocated.
    from torchvision.models.vgg import cfgs, make_layers

    layers = list(make_layers(cfgs["D"], batch_norm=True))
    stride = 2 if stem == "standard" else 1
    layers[0] = nn.Conv2d(in_channels, layers[0].out_channels, kernel_size=3, stride=stride, padding=1)
    size = (image_size + stride - 1) // stride
    for i, layer in enumerate(layers):  # drop pools that would take the map below 1x1 (28 px: the 5th)
        if isinstance(layer, nn.MaxPool2d):
            if size // 2 >= 1:
                size //= 2
            else:
                layers[i] = nn.Identity()
    hidden = 512  # one small hidden layer: the penultimate features stay 512-d like ResNet-18's
    backbone = nn.Sequential(
        nn.Sequential(*layers),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
        nn.Linear(512, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),  # torchvision VGG's classifier dropout
    )
    for m in backbone.modules():  # torchvision's VGG init (torchvision/models/vgg.py, VGG.__init__)
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
    return backbone, hidden


def build_classifier(name: str, num_classes: int, in_channels: int = 1, image_size: int = 28,
                     stem: str = "standard") -> ImageClassifier:
    """Build a randomly initialised classifier taking uint8 ``(N, in_channels, H, W)`` input.

    Args:
        name: one of ``list_classifiers()`` ("resnet18", "resnet50", "vgg16").
        num_classes: number of classes (≥ 2).
        in_channels: 1 for grey, 3 for RGB.
        image_size: input side in pixels (28 or 64 tested; ≥ 8).
        stem: "standard" (early downsampling, fast) or "cifar" (full resolution, slower).

    Returns:
        An ``ImageClassifier`` (weights from torch's global RNG: seed it first for repeatable init).
    """
    if name not in _BUILDERS:
        raise unknown_name("classifier", name, _BUILDERS)
    _check_stem(stem)
    if in_channels not in (1, 3):
        raise ConfigError(f"in_channels must be 1 (grey) or 3 (RGB); got {in_channels}")
    if num_classes < 2:
        raise ConfigError(f"a classifier needs at least 2 classes; got num_classes={num_classes}")
    if image_size < 8:
        raise ConfigError(f"image_size must be at least 8 px; got {image_size}")
    backbone, dim = _BUILDERS[name](in_channels, image_size, stem)
    return ImageClassifier(backbone, dim, num_classes, in_channels)
