"""DiffAugment: differentiable augmentation applied to real *and* fake images before the discriminator.

Zhao, Liu, Lin, Zhu & Han, "Differentiable Augmentation for Data-Efficient GAN Training", NeurIPS 2020,
https://arxiv.org/abs/2006.10738. Adapted from the authors' reference implementation
https://github.com/mit-han-lab/data-efficient-gans/blob/master/DiffAugment_pytorch.py (BSD-2-Clause),
with an explicit ``torch.Generator`` so augmentation is seeded (same seed => same training).

Hand-written because no maintained pip package provides it: the authors publish it only as a file to
copy, and kornia/torchvision augmentations are neither this exact policy nor seeded per call this way.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def _rand(shape: tuple[int, ...], x: Tensor, generator: torch.Generator | None) -> Tensor:
    """U[0, 1) of ``shape`` drawn on CPU from ``generator`` (reproducible on any device), moved to x."""
    return torch.rand(shape, generator=generator).to(device=x.device, dtype=x.dtype)


def rand_brightness(x: Tensor, g: torch.Generator | None) -> Tensor:
    return x + (_rand((x.size(0), 1, 1, 1), x, g) - 0.5)  # shift in [-0.5, 0.5)


def rand_saturation(x: Tensor, g: torch.Generator | None) -> Tensor:
    mean = x.mean(dim=1, keepdim=True)  # a no-op on grey images, as in the reference code
    return (x - mean) * (_rand((x.size(0), 1, 1, 1), x, g) * 2) + mean  # scale in [0, 2)


def rand_contrast(x: Tensor, g: torch.Generator | None) -> Tensor:
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (_rand((x.size(0), 1, 1, 1), x, g) + 0.5) + mean  # scale in [0.5, 1.5)


def rand_translation(x: Tensor, g: torch.Generator | None, ratio: float = 0.125) -> Tensor:
    """Shift by up to ``ratio`` of the size in each direction, zero-padding (reference: 1/8)."""
    b, _, h, w = x.shape
    sx, sy = int(h * ratio + 0.5), int(w * ratio + 0.5)
    tx = (_rand((b, 1, 1), x, g) * (2 * sx + 1)).long() - sx  # integers in [-sx, sx]
    ty = (_rand((b, 1, 1), x, g) * (2 * sy + 1)).long() - sy
    gb, gx, gy = torch.meshgrid(torch.arange(b, device=x.device), torch.arange(h, device=x.device),
                                torch.arange(w, device=x.device), indexing="ij")
    gx = torch.clamp(gx + tx + 1, 0, h + 1)
    gy = torch.clamp(gy + ty + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])  # (B, C, H+2, W+2): the zero border is what shifts in
    return padded.permute(0, 2, 3, 1).contiguous()[gb, gx, gy].permute(0, 3, 1, 2)


def rand_cutout(x: Tensor, g: torch.Generator | None, ratio: float = 0.5) -> Tensor:
    """Zero one square of side ``ratio`` × size at a random place (reference: 1/2)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ox = (_rand((b, 1, 1), x, g) * (h + (1 - ch % 2))).long()
    oy = (_rand((b, 1, 1), x, g) * (w + (1 - cw % 2))).long()
    gb, gx, gy = torch.meshgrid(torch.arange(b, device=x.device), torch.arange(ch, device=x.device),
                                torch.arange(cw, device=x.device), indexing="ij")
    gx = torch.clamp(gx + ox - ch // 2, 0, h - 1)
    gy = torch.clamp(gy + oy - cw // 2, 0, w - 1)
    mask = torch.ones(b, h, w, dtype=x.dtype, device=x.device)
    mask[gb, gx, gy] = 0
    return x * mask.unsqueeze(1)


AUGMENTS: dict[str, list[Callable[[Tensor, torch.Generator | None], Tensor]]] = {
    "color": [rand_brightness, rand_saturation, rand_contrast],
    "translation": [rand_translation],
    "cutout": [rand_cutout],
}
DEFAULT_POLICY = "color,translation,cutout"  # the paper's setting for 100-shot / limited-data training


def diff_augment(x: Tensor, policy: str = DEFAULT_POLICY, generator: torch.Generator | None = None) -> Tensor:
    """Apply the comma-separated ``policy`` to a batch (B, C, H, W); differentiable w.r.t. ``x``.

    Args:
        x: images in [-1, 1], any device.
        policy: subset of "color", "translation", "cutout"; "" = identity.
        generator: CPU torch.Generator for the random parameters (None = global RNG).
    """
    for name in filter(None, (p.strip() for p in policy.split(","))):
        for fn in AUGMENTS[name]:
            x = fn(x, generator)
    return x.contiguous()
