"""Conditional VAE: KL closed form, losses, warm-up, determinism, grids, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthmed.callbacks import History
from synthmed.errors import ConfigError, NotFittedError
from synthmed.generators import make_generator
from synthmed.generators.vae import CVAE, kl_divergence, reconstruction_loss


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py


def tiny(**overrides) -> CVAE:
    return make_generator("cvae", CVAE.tiny_config(), **overrides)


def test_kl_equals_closed_form_on_known_mu_logvar():
    mu = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    logvar = torch.tensor([[0.0, 0.0], [np.log(4.0), np.log(0.25)]], dtype=torch.float32)
    # per dim: ½ (σ² + μ² − 1 − log σ²)
    expected = torch.tensor([0.0 + 0.5, 0.5 * (4 + 4 - 1 - np.log(4)) + 0.5 * (0.25 + 1 - 1 - np.log(0.25))])
    torch.testing.assert_close(kl_divergence(mu, logvar), expected.float())
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, (0.5 * logvar).exp()), torch.distributions.Normal(0.0, 1.0)
    ).sum(1)
    torch.testing.assert_close(kl_divergence(mu, logvar), ref)


def test_reconstruction_losses_are_zero_free_and_ordered():
    target = torch.tensor([[[[0.0, 1.0]]]])  # (1, 1, 1, 2)
    good, bad = torch.tensor([[[[-8.0, 8.0]]]]), torch.tensor([[[[8.0, -8.0]]]])
    for kind in ("bce", "mse"):
        assert reconstruction_loss(good, target, kind) < reconstruction_loss(bad, target, kind)
    torch.testing.assert_close(reconstruction_loss(bad, target, "mse"), torch.sigmoid(torch.tensor([8.0])).pow(2) * 2)


def test_beta_warms_up_linearly():
    gen = make_generator("cvae", beta=2.0, kl_warmup_steps=10)
    assert [gen.beta_at(s) for s in (0, 5, 10, 50)] == [0.0, 1.0, 2.0, 2.0]
    assert make_generator("cvae", kl_warmup_steps=0).beta_at(0) == 1.0


@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3), (64, 1)])
def test_fit_sample_shapes_for_each_size(size, channels):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, size, size, channels), dtype=np.uint8)
    gen = tiny(max_steps=2).fit(images, np.array([0, 1] * 4))
    out = gen.sample(np.array([1, 0, 1]), seed=1)
    assert out.shape == (3, size, size, channels) and out.dtype == np.uint8


def test_same_seed_gives_identical_weights_and_samples(tiny_images):
    a, b = (tiny(recon_loss="mse").fit(*tiny_images) for _ in range(2))
    for pa, pb in zip(a.decoder_.state_dict().values(), b.decoder_.state_dict().values()):
        assert torch.equal(pa, pb)
    labels = np.array([0, 1, 1, 0])
    assert np.array_equal(a.sample(labels, seed=5), b.sample(labels, seed=5))
    assert not np.array_equal(a.sample(labels, seed=5), a.sample(labels, seed=6))


def test_fit_emits_scalars_and_both_grids(tiny_images):
    hist = History()
    tiny(max_steps=4).fit(*tiny_images, callbacks=hist)
    assert [r["step"] for r in hist.rows] == [1, 2, 3, 4]
    assert {"recon", "kl", "loss", "beta"} <= set(hist.rows[-1])
    assert hist.grids == [(2, "reconstructions"), (2, "samples"), (4, "reconstructions"), (4, "samples")]


def test_sample_before_fit_says_how_to_fix():
    with pytest.raises(NotFittedError, match=r"call fit\(\) or CVAE.load"):
        make_generator("cvae").sample(np.array([0]))


def test_unsupported_size_raises_config_error():
    images = np.zeros((4, 48, 48, 1), np.uint8)
    with pytest.raises(ConfigError, match="supports image sizes"):
        tiny().fit(images, np.array([0, 1, 0, 1]))
