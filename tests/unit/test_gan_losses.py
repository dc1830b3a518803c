"""Known answers for the registered GAN losses (gan_losses.py)."""

from __future__ import annotations

import math

import pytest
import torch

from synthmed.errors import UnknownNameError
from synthmed.generators.gan_losses import (
    bce_d, bce_g, get_loss, gradient_penalty, list_losses, ls_d, ls_g, wgan_d, wgan_g,
)

pytestmark = pytest.mark.usefixtures("torch_single_thread")  # tiny nets: 1 thread is faster on a shared CPU


def _sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def test_bce_losses_match_their_definition():
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 0.0])
    want_d = (-math.log(_sig(2.0)) - math.log(0.5)) / 2 + (-math.log(1 - _sig(-1.0)) - math.log(0.5)) / 2
    assert bce_d(real, fake).item() == pytest.approx(want_d, rel=1e-6)
    want_g = (-math.log(_sig(-1.0)) - math.log(0.5)) / 2  # non-saturating: -log D(G(z))
    assert bce_g(fake).item() == pytest.approx(want_g, rel=1e-6)
    assert bce_d(torch.zeros(4), torch.zeros(4)).item() == pytest.approx(2 * math.log(2), rel=1e-6)


def test_least_squares_losses_match_mao_et_al():
    real, fake = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert ls_d(real, fake).item() == pytest.approx(0.5 * 0.5 + 0.5 * 0.5)  # ½E[(D(x)-1)²] + ½E[D(G(z))²]
    assert ls_g(fake).item() == pytest.approx(0.25)  # ½E[(D(G(z))-1)²]
    assert ls_d(torch.ones(3), torch.zeros(3)).item() == 0.0


def test_wasserstein_losses_are_mean_differences():
    real, fake = torch.tensor([3.0, 1.0]), torch.tensor([-1.0, 0.0])
    assert wgan_d(real, fake).item() == pytest.approx(-0.5 - 2.0)
    assert wgan_g(fake).item() == pytest.approx(0.5)


def test_gradient_penalty_on_a_linear_critic_equals_its_closed_form():
    # f(x) = <w, x> + b has gradient w everywhere, so the penalty is (‖w‖₂ − 1)² whatever ε is.
    w = torch.zeros(1, 2, 3, 3)
    w[0, 0, 0, 0], w[0, 1, 2, 2] = 2.0, math.sqrt(5.0)  # ‖w‖ = 3
    critic = lambda x: (x * w).flatten(1).sum(1) + 0.7  # noqa: E731
    real, fake = torch.randn(5, 2, 3, 3), torch.randn(5, 2, 3, 3)
    gp = gradient_penalty(critic, real, fake, torch.Generator().manual_seed(0))
    assert gp.item() == pytest.approx((3.0 - 1.0) ** 2, rel=1e-5)
    unit = lambda x: x[:, 0, 0, 0]  # noqa: E731  gradient norm 1 -> no penalty
    assert gradient_penalty(unit, real, fake).item() == pytest.approx(0.0, abs=1e-10)


def test_gradient_penalty_is_differentiable_in_the_critic_weights():
    w = torch.full((1, 1, 2, 2), 0.9, requires_grad=True)
    gp = gradient_penalty(lambda x: (x * w).flatten(1).sum(1), torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2))
    gp.backward()
    # d/dw (2|w| - 1)² with all four entries 0.9: 2(1.8 - 1) · w/‖w‖ = 1.6 · 0.5
    assert torch.allclose(w.grad, torch.full_like(w, 0.8), atol=1e-5)


def test_losses_declare_their_papers_settings():
    assert set(list_losses()) >= {"bce", "lsgan", "wgan", "wgan-gp"}
    wgan, gp, bce = get_loss("wgan"), get_loss("wgan-gp"), get_loss("bce")
    assert (wgan.optimizer, wgan.lr, wgan.n_critic, wgan.clip) == ("rmsprop", 5e-5, 5, 0.01)
    assert (gp.gp_weight, gp.betas, gp.n_critic, gp.default_norm) == (10.0, (0.0, 0.9), 5, "layer")
    assert "batch" in gp.forbidden_norms
    assert (bce.optimizer, bce.lr, bce.betas, bce.n_critic) == ("adam", 2e-4, (0.5, 0.999), 1)


def test_unknown_loss_suggests_the_closest_name():
    with pytest.raises(UnknownNameError, match="did you mean 'wgan-gp'"):
        get_loss("wgan_gp")
