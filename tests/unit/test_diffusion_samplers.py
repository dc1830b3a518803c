"""DDPM sampler choices (issue 13): DDIM, DPM-Solver++ and UniPC on the same weights — shape, range,
determinism, class conditioning, agreement on the probability-flow ODE, one-line errors."""

from __future__ import annotations

import typing
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from synthmed.errors import ConfigError, SynthmedError
from synthmed.generators import make_generator
from synthmed.generators.diffusion import DDPM, SAMPLERS, DDPMConfig, build_scheduler

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py

FEW_STEP = ["ddim", "dpm-solver", "unipc"]


@pytest.fixture(scope="module")
def fitted():
    """A tiny DDPM after 3 training steps on 8 random 28 px images (2 classes); batches of 2 when sampling,
    so a 5-image request runs three chains through one scheduler (the solvers' history must reset)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(8, 28, 28, 1), dtype=np.uint8)
    return make_generator("ddpm", DDPM.tiny_config(), sample_batch_size=2).fit(images, np.array([0, 1] * 4))


def test_the_config_choices_are_the_samplers_and_sampler_is_a_declared_knob():
    assert set(typing.get_args(DDPMConfig.model_fields["sampler"].annotation)) == set(SAMPLERS)
    assert "sampler" in DDPM.sample_knobs and "steps" in DDPM.sample_knobs
    assert DDPMConfig().sampler == "ddim" and DDPMConfig().sample_steps == 50  # the default is unchanged


@pytest.mark.parametrize("kind", ["dpm-solver", "unipc"])
def test_solvers_are_configured_from_the_training_schedule(kind):
    cfg = DDPMConfig(beta_schedule="squaredcos_cap_v2", timesteps=500)
    train, sched = build_scheduler(cfg, "ddpm"), build_scheduler(cfg, kind)
    assert np.allclose(sched.alphas_cumprod.numpy(), train.alphas_cumprod.numpy())
    assert sched.config.thresholding and sched.config.sample_max_value == 1.0  # x0 clipped to [-1, 1] as in DDIM
    sched.set_timesteps(10)
    assert len(sched.timesteps) == 10 and int(sched.timesteps[0]) == 499


@pytest.mark.parametrize("kind", FEW_STEP)
def test_each_sampler_returns_uint8_images_per_label_and_same_seed_same_images(fitted, kind):
    labels = np.array([0, 1, 1, 0, 1])
    a = fitted.sample(labels, seed=7, sampler=kind, steps=4)
    assert a.shape == (5, 28, 28, 1) and a.dtype == np.uint8 and a.std() > 0
    assert np.array_equal(a, fitted.sample(labels, seed=7, sampler=kind, steps=4))
    assert not np.array_equal(a, fitted.sample(labels, seed=8, sampler=kind, steps=4))
    flipped = fitted.sample(1 - labels, seed=7, sampler=kind, steps=4)  # same noise, other class embedding
    assert not np.array_equal(a, flipped)


@pytest.mark.parametrize("kind", FEW_STEP)
def test_guided_sampling_works_with_each_sampler(fitted, kind):
    labels = np.array([1, 0, 1])
    a = fitted.sample(labels, seed=2, sampler=kind, steps=3, guidance=2.0)
    assert a.shape == (3, 28, 28, 1) and np.array_equal(a, fitted.sample(labels, seed=2, sampler=kind, steps=3, guidance=2.0))
    assert not np.array_equal(a, fitted.sample(labels, seed=2, sampler=kind, steps=3))  # w = 2 ≠ w = 1


def test_config_sampler_is_the_default_of_sample(fitted, monkeypatch):
    labels = np.array([0, 1])
    expected = fitted.sample(labels, seed=1, sampler="unipc", steps=4)
    monkeypatch.setattr(fitted, "config", fitted.config.model_copy(update={"sampler": "unipc", "sample_steps": 4}))
    assert np.array_equal(fitted.sample(labels, seed=1), expected)


class GaussianEps(torch.nn.Module):
    """The exact ε-predictor for per-class Gaussian data x0 ~ N(c_y, s² I), standing in for the UNet:
    ε*(x_t, t) = √(1−ᾱ) (x_t − √ᾱ c_y) / (ᾱ s² + 1 − ᾱ)."""

    def __init__(self, alphas_cumprod: torch.Tensor, centres: torch.Tensor, s: float):
        super().__init__()
        self.abar, self.centres, self.s = alphas_cumprod.double(), centres.double(), s

    def forward(self, x, t, class_labels):
        a, c = self.abar[int(t)], self.centres[class_labels].view(-1, 1, 1, 1)
        eps = (1 - a).sqrt() * (x.double() - a.sqrt() * c) / (a * self.s**2 + 1 - a)
        return SimpleNamespace(sample=eps.float())


def test_every_sampler_solves_the_probability_flow_ode_to_its_closed_form(fitted, monkeypatch):
    """Known answer: for Gaussian data the probability-flow ODE keeps z = (x_t − √ᾱ c) / √(ᾱ s² + 1 − ᾱ),
    so the noise x_T maps to x_0 = c + s z_T. DDIM converges to it at first order, DPM-Solver++ and UniPC
    at second order (mean |Δ| in grey levels, measured: DDIM 2.7 / 1.4 at 50 / 100 steps, both solvers
    1.3 / 0.3-0.4)."""
    centres, s, seed, labels = torch.tensor([-0.4, 0.4]), 0.2, 3, np.array([0, 1])
    abar = build_scheduler(fitted.config, "ddpm").alphas_cumprod.double()
    monkeypatch.setattr(fitted, "ema_", SimpleNamespace(module=GaussianEps(abar, centres, s)))
    x_T = torch.randn((2, 1, 28, 28), generator=torch.Generator().manual_seed(seed)).double()  # the sampler's noise
    a, c = abar[-1], centres[labels].view(-1, 1, 1, 1).double()
    x_0 = c + s * (x_T - a.sqrt() * c) / (a * s**2 + 1 - a).sqrt()
    expected = ((x_0.clamp(-1, 1) + 1) * 127.5).round().permute(0, 2, 3, 1).numpy()
    err = {(k, n): np.abs(fitted.sample(labels, seed=seed, sampler=k, steps=n).astype(float) - expected).mean()
           for k in FEW_STEP for n in (10, 100)}
    assert err["ddim", 100] < 2.0 and err["dpm-solver", 100] < 0.6 and err["unipc", 100] < 0.6, err
    assert all(err[k, 100] < err[k, 10] for k in FEW_STEP), err
    assert err["dpm-solver", 100] < err["ddim", 100] / 2 and err["unipc", 100] < err["ddim", 100] / 2, err


def test_unknown_sampler_is_a_one_line_config_error(fitted):
    with pytest.raises(ConfigError, match="ddpm sampler must be one of ddim, ddpm, dpm-solver, unipc; got 'euler'") as e:
        fitted.sample(np.array([0]), sampler="euler")
    assert "\n" not in str(e.value)
    with pytest.raises(SynthmedError) as e:
        make_generator("ddpm", sampler="euler")
    assert "sampler" in str(e.value) and "\n" not in str(e.value)


def test_solver_steps_beyond_training_timesteps_are_refused(fitted):
    with pytest.raises(ConfigError, match="unipc steps \\(2000\\) cannot exceed the 1000 training timesteps"):
        fitted.sample(np.array([0]), sampler="unipc", steps=2000)
