"""GAN losses registered by name; the one training loop in ``gan.py`` reads only their declared properties.

Each loss is a small frozen record of functions plus the optimisation facts its paper prescribes
(n_critic, optimiser, learning rate, weight clipping, gradient-penalty weight, which critic norms are valid),
so the loop never branches on a family name.

Inputs are raw discriminator outputs ("logits", shape (B,)); ``score`` maps them to the number reported
as D(x) / D(G(z)) (a probability for BCE, the raw output for least squares and the Wasserstein critic).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from synthmed.errors import unknown_name

Tensor = torch.Tensor


# -- loss functions -------------------------------------------------------------------------------
def bce_d(real: Tensor, fake: Tensor) -> Tensor:
    """Goodfellow et al. 2014 eq. 1: -log D(x) - log(1 - D(G(z)))."""
    return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


def bce_g(fake: Tensor) -> Tensor:
    """Non-saturating generator loss (Goodfellow et al. 2014 sec. 3): -log D(G(z))."""
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


def ls_d(real: Tensor, fake: Tensor) -> Tensor:
    """Mao et al. 2017 eq. 9 with a=0, b=1: ½(D(x)-1)² + ½D(G(z))²."""
    return 0.5 * ((real - 1.0) ** 2).mean() + 0.5 * (fake**2).mean()


def ls_g(fake: Tensor) -> Tensor:
    """Mao et al. 2017 eq. 9 with c=1: ½(D(G(z))-1)²."""
    return 0.5 * ((fake - 1.0) ** 2).mean()


def wgan_d(real: Tensor, fake: Tensor) -> Tensor:
    """Arjovsky et al. 2017 alg. 1 (as a loss to minimise): E[f(G(z))] - E[f(x)]."""
    return fake.mean() - real.mean()


def wgan_g(fake: Tensor) -> Tensor:
    """Arjovsky et al. 2017 alg. 1: -E[f(G(z))]."""
    return -fake.mean()


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor,
                     generator: torch.Generator | None = None) -> Tensor:
    """Gulrajani et al. 2017 eq. 3: E[(‖∇_x̂ f(x̂)‖₂ − 1)²] with x̂ = εx + (1−ε)x̃, ε ~ U[0, 1] per sample.

    Args:
        critic: maps a batch (B, C, H, W) to scores (B,) (labels already bound).
        real, fake: (B, C, H, W) batches of the same shape.
        generator: torch.Generator for ε (CPU); None = the global RNG.

    Returns:
        The penalty (scalar), without the λ weight.
    """
    eps = torch.rand(real.shape[0], 1, 1, 1, generator=generator).to(real.device)  # (B, 1, 1, 1)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)  # (B, C, H, W)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


# -- the registry ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class GANLoss:
    """A GAN objective plus the optimisation facts that come with it in its paper."""

    name: str
    d_loss: Callable[[Tensor, Tensor], Tensor]
    g_loss: Callable[[Tensor], Tensor]
    score: Callable[[Tensor], Tensor]  # raw D output → reported D(x) / D(G(z))
    optimizer: str = "adam"  # "adam" or "rmsprop"
    lr: float = 2e-4  # DCGAN (Radford et al. 2016 sec. 4)
    betas: tuple[float, float] = (0.5, 0.999)  # DCGAN: beta1 0.5 stabilises training
    n_critic: int = 1  # discriminator updates per generator update
    clip: float | None = None  # weight clipping of the critic after each update
    gp_weight: float = 0.0  # λ of the gradient penalty (0 = none)
    default_norm: str = "batch"  # critic norm when the config says "auto"
    forbidden_norms: tuple[str, ...] = ()  # norms the paper rules out
    # Collapsed-discriminator test (None = not defined for this objective): for `patience` consecutive
    # steps, score(D(x)) >= real_min and score(D(G(z))) <= fake_max and loss_g >= loss_g_min.
    collapse: tuple[float, float, float] | None = None


_LOSSES: dict[str, GANLoss] = {}


def register_loss(loss: GANLoss) -> GANLoss:
    if loss.name in _LOSSES:
        raise RuntimeError(f"GAN loss '{loss.name}' registered twice")
    _LOSSES[loss.name] = loss
    return loss


def get_loss(name: str) -> GANLoss:
    if name not in _LOSSES:
        raise unknown_name("GAN loss", name, _LOSSES)
    return _LOSSES[name]


def list_losses() -> list[str]:
    return sorted(_LOSSES)


def _identity(x: Tensor) -> Tensor:
    return x


# BCE: D(x) > 0.99, D(G(z)) < 0.01 and -log D(G(z)) > 5 means D separates perfectly and G gets no signal.
register_loss(GANLoss("bce", bce_d, bce_g, torch.sigmoid, collapse=(0.99, 0.01, 5.0)))
# Least squares: outputs pinned at the targets 1 / 0 and ½(D(G(z))-1)² at its 0.5 ceiling.
register_loss(GANLoss("lsgan", ls_d, ls_g, _identity, collapse=(0.95, 0.05, 0.45)))
# WGAN (Arjovsky et al. 2017 alg. 1): RMSprop lr 5e-5, n_critic 5, clip 0.01. Critic scores are
# unbounded, so only the NaN/Inf guard applies. BatchNorm is allowed (the paper's critic used it).
register_loss(GANLoss("wgan", wgan_d, wgan_g, _identity, optimizer="rmsprop", lr=5e-5, betas=(0.0, 0.0),
                      n_critic=5, clip=0.01))
# WGAN-GP (Gulrajani et al. 2017 alg. 1): λ 10, Adam lr 1e-4, β (0, 0.9), n_critic 5; no BatchNorm in
# the critic (sec. 4), layer norm instead. The issue leaves lr open; 1e-4 is the paper's value.
register_loss(GANLoss("wgan-gp", wgan_d, wgan_g, _identity, lr=1e-4, betas=(0.0, 0.9), n_critic=5,
                      gp_weight=10.0, default_norm="layer", forbidden_norms=("batch",)))
