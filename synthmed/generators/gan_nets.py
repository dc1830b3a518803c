"""The one conditional DCGAN backbone (generator + discriminator/critic) for 28, 32, 64 and 128 px.

References:
    Radford et al. 2016, DCGAN (https://arxiv.org/abs/1511.06434): transposed convs + BatchNorm + ReLU + tanh
    in G; strided convs + LeakyReLU(0.2) in D; weights N(0, 0.02).
    Mirza & Osindero 2014, conditional GAN (https://arxiv.org/abs/1411.1784): label embedding in both nets.
    Miyato & Koyama 2018, projection discriminator (https://arxiv.org/abs/1802.05637).
    Gulrajani et al. 2017, WGAN-GP (https://arxiv.org/abs/1704.00028) sec. 4: no BatchNorm in the critic
    (the penalty is per sample); layer norm is the recommended drop-in.

``num_classes=0`` builds an unconditional pair (used by the per-class mode).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from synthmed.errors import ConfigError

SUPPORTED_SIZES = (28, 32, 64, 128)
Norm = Literal["batch", "spectral", "layer", "instance", "none"]


# -- helpers -------------------------------------------------------------------------------------
def _layout(image_size: int) -> tuple[int, int]:
    """(start spatial size, number of x2 up/down-samplings): 28 = 7→14→28, others 4→…→size."""
    if image_size not in SUPPORTED_SIZES:
        raise ConfigError(
            f"the DCGAN backbone supports image sizes {SUPPORTED_SIZES}; got {image_size}. "
            "Resize the dataset (e.g. --size 64)."
        )
    start = 7 if image_size == 28 else 4
    return start, int(round(math.log2(image_size // start)))


def dcgan_init_(module: nn.Module, generator: torch.Generator | None = None, embed_std: float = 0.02) -> None:
    """DCGAN init (Radford et al. 2016 sec. 4): conv/linear N(0, 0.02), norm gains N(1, 0.02); label
    embeddings N(0, ``embed_std``) (DCGAN has no labels: its 0.02 applied to them makes the label 50×
    quieter than z ~ N(0, 1) at step 0; ``GANConfig.embed_std`` says what the families use)."""
    for m in module.modules():
        if isinstance(m, nn.Embedding):
            w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            nn.init.normal_(w, 0.0, embed_std, generator=generator)
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            # spectral_norm keeps the raw weight under parametrizations.weight.original
            w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            nn.init.normal_(w, 0.0, 0.02, generator=generator)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02, generator=generator)
            nn.init.zeros_(m.bias)


def _d_norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":  # GroupNorm with one group = LayerNorm over (C, H, W), per sample
        return nn.GroupNorm(1, channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()  # "spectral" (applied to the conv weight) and "none"


# -- generator -----------------------------------------------------------------------------------
class DCGANGenerator(nn.Module):
    """z (B, nz) [+ label embedding] → image (B, C, S, S) in [-1, 1].

    Args:
        nz: latent size.
        num_classes: classes to condition on (0 = unconditional).
        image_size: 28, 32, 64 or 128.
        channels: 1 (grey) or 3 (RGB).
        base_channels: width of the last hidden layer; layers double towards the input.
    """

    def __init__(self, nz: int, num_classes: int, image_size: int, channels: int, base_channels: int):
        super().__init__()
        start, n_up = _layout(image_size)
        self.embed = nn.Embedding(num_classes, nz) if num_classes > 0 else None
        in_ch = nz * (2 if self.embed is not None else 1)  # z concatenated with its class embedding
        widths = [base_channels * 2 ** (n_up - 1 - i) for i in range(n_up)]  # e.g. [2C, C] for 28 px
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(in_ch, widths[0], start, 1, 0, bias=False),  # (B, w0, start, start)
            nn.BatchNorm2d(widths[0]), nn.ReLU(True),
        ]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1), nn.Tanh()]  # (B, C, S, S)
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], dim=1)  # (B, 2*nz)
        return self.net(z[:, :, None, None])


# -- discriminator / critic ----------------------------------------------------------------------
class DCGANDiscriminator(nn.Module):
    """image (B, C, S, S) [+ label] → score (B,) and, with ``conditioning="aux"``, class logits (B, K).

    Args:
        num_classes: classes to condition on (0 = unconditional).
        image_size: 28, 32, 64 or 128.
        channels: 1 or 3.
        base_channels: width of the first conv; widths double as the map halves.
        norm: "batch", "spectral", "layer", "instance" or "none" (first layer never normalised).
        conditioning: how the label reaches D: "concat" (label embedded as an extra input plane),
            "projection" (Miyato & Koyama 2018), or "aux" (D sees no label and has a class head that
            predicts it, as in ACGAN, Odena et al. 2017).
    """

    def __init__(self, num_classes: int, image_size: int, channels: int, base_channels: int,
                 norm: Norm = "batch", conditioning: Literal["concat", "projection", "aux"] = "concat"):
        super().__init__()
        start, n_down = _layout(image_size)
        self.image_size = image_size
        sn = spectral_norm if norm == "spectral" else (lambda m: m)
        self.concat = nn.Embedding(num_classes, image_size * image_size) if (
            num_classes > 0 and conditioning == "concat") else None
        in_ch = channels + (1 if self.concat is not None else 0)
        widths = [base_channels * 2**i for i in range(n_down)]  # e.g. [C, 2C] for 28 px
        layers: list[nn.Module] = [sn(nn.Conv2d(in_ch, widths[0], 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [sn(nn.Conv2d(a, b, 4, 2, 1, bias=norm == "none")), _d_norm(norm, b), nn.LeakyReLU(0.2, True)]
        self.features = nn.Sequential(*layers, nn.Flatten())  # (B, widths[-1] * start * start)
        feat = widths[-1] * start * start
        self.out = sn(nn.Linear(feat, 1))
        self.project = sn(nn.Embedding(num_classes, feat)) if (
            num_classes > 0 and conditioning == "projection") else None
        self.aux = sn(nn.Linear(feat, num_classes)) if (num_classes > 0 and conditioning == "aux") else None

    def clipped_parameters(self) -> list[nn.Parameter]:
        """What WGAN's weight clipping bounds: every parameter but the concat label plane's embedding and the
        class head. The plane enters the first conv beside the image and is never multiplied by it, so its size
        does not change the critic's Lipschitz constant in the image, which is what clipping is for; clipped to
        ±0.01 it would reach the critic at 1 % of the image's scale. The class head reads h(x) but never enters
        the score. The projection embedding multiplies h(x) inside the score and stays clipped."""
        free = {id(p) for m in (self.concat, self.aux) if m is not None for p in m.parameters()}
        return [p for p in self.parameters() if id(p) not in free]

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None):
        if self.concat is not None:
            plane = self.concat(labels).view(-1, 1, self.image_size, self.image_size)
            x = torch.cat([x, plane], dim=1)  # (B, C+1, S, S)
        h = self.features(x)  # (B, F)
        score = self.out(h).squeeze(1)  # (B,)
        if self.project is not None:
            score = score + (self.project(labels) * h).sum(dim=1)  # projection term <embed(y), h>
        aux = self.aux(h) if self.aux is not None else None
        return score, aux
