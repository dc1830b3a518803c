"""Class-conditional DDPM: forward noising, guidance, DDIM determinism, padding, resume (both families)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthmed.errors import ConfigError
from synthmed.generators import get_generator_class, load_generator, make_generator
from synthmed.generators.diffusion import DDPM, DDPMConfig, build_scheduler, build_unet, guided_eps, padded_size
from synthmed.loop import make_ema


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py


def tiny(**overrides) -> DDPM:
    return make_generator("ddpm", DDPM.tiny_config(), **overrides)


@pytest.mark.parametrize("schedule", ["linear", "squaredcos_cap_v2"])
def test_add_noise_matches_closed_form(schedule):
    sched = build_scheduler(DDPMConfig(beta_schedule=schedule), "ddpm")
    betas = sched.betas.double()
    alpha_bar = torch.cumprod(1 - betas, 0)  # ᾱ_t = Π (1 − β_s)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 1, 8, 8, generator=g), torch.randn(4, 1, 8, 8, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    expected = alpha_bar[t].sqrt().view(-1, 1, 1, 1) * x0 + (1 - alpha_bar[t]).sqrt().view(-1, 1, 1, 1) * eps
    torch.testing.assert_close(sched.add_noise(x0, eps, t), expected.float(), rtol=1e-5, atol=1e-5)
    assert len(betas) == 1000


def test_guidance_scale_one_is_conditional_and_zero_is_unconditional():
    torch.manual_seed(0)
    cfg = DDPMConfig(**{k: v for k, v in DDPM.tiny_config().items() if k in DDPMConfig.model_fields})
    unet = build_unet(cfg, channels=1, size=8, num_classes=2).eval()
    x, t = torch.randn(3, 1, 8, 8), torch.tensor(500)
    y, null = torch.tensor([0, 1, 1]), torch.full((3,), 2)
    with torch.no_grad():
        cond, uncond = unet(x, t, class_labels=y).sample, unet(x, t, class_labels=null).sample
        assert not torch.allclose(cond, uncond)  # the class embedding matters
        torch.testing.assert_close(guided_eps(unet, x, t, y, 2, 1.0), cond)
        torch.testing.assert_close(guided_eps(unet, x, t, y, 2, 0.0), uncond)
        torch.testing.assert_close(guided_eps(unet, x, t, y, 2, 3.0), uncond + 3.0 * (cond - uncond),
                                   rtol=1e-4, atol=1e-5)


def test_ddim_same_seed_is_deterministic(tiny_images):
    gen = tiny().fit(*tiny_images)
    labels = np.array([0, 1, 0])
    a = gen.sample(labels, seed=7, guidance=2.0)
    assert a.shape == (3, 28, 28, 1) and a.dtype == np.uint8
    assert np.array_equal(a, gen.sample(labels, seed=7, guidance=2.0))
    assert not np.array_equal(a, gen.sample(labels, seed=8, guidance=2.0))


def test_ddpm_sampler_walks_every_training_timestep(tiny_images):
    gen = tiny(timesteps=20).fit(*tiny_images)  # 20 noise levels keep the full ancestral chain cheap
    labels = np.array([1, 0])
    out = gen.sample(labels, seed=1, sampler="ddpm")
    assert out.shape == (2, 28, 28, 1) and np.array_equal(out, gen.sample(labels, seed=1, sampler="ddpm"))


def test_four_level_unet_pads_28_to_32_and_crops_back(tiny_images):
    assert padded_size(28, 3) == 28 and padded_size(28, 4) == 32 and padded_size(64, 4) == 64
    gen = tiny(block_out_channels=(4, 8, 8, 8), max_steps=1).fit(*tiny_images)
    assert gen.unet_.config.sample_size == 32
    assert gen.sample(np.array([1, 0]), seed=0).shape == (2, 28, 28, 1)


def test_save_load_reproduces_samples(tiny_images, tmp_path):
    gen = tiny().fit(*tiny_images)
    gen.save(tmp_path / "g.pt")
    again = load_generator(tmp_path / "g.pt")
    assert isinstance(again, DDPM) and again.steps_done_ == 3
    labels = np.array([1, 1, 0])
    assert np.array_equal(again.sample(labels, seed=3), gen.sample(labels, seed=3))


def test_ddim_steps_beyond_training_timesteps_are_refused(tiny_images):
    gen = tiny(timesteps=20).fit(*tiny_images)
    with pytest.raises(ConfigError, match="cannot exceed the 20 training timesteps"):
        gen.sample(np.array([0]), steps=50)


@pytest.mark.parametrize("family", ["cvae", "ddpm"])
def test_resume_equals_uninterrupted_run_and_same_seed_same_weights(family, tiny_images, tmp_path):
    cls = get_generator_class(family)
    cfg = {**cls.tiny_config(), "max_steps": 4, "checkpoint_every": 2, "batch_size": 3}
    full = make_generator(family, cfg).fit(*tiny_images, out_dir=tmp_path / "full")
    again = make_generator(family, cfg).fit(*tiny_images)
    make_generator(family, cfg, max_steps=2).fit(*tiny_images, out_dir=tmp_path / "split")
    resumed = make_generator(family, cfg).fit(*tiny_images, out_dir=tmp_path / "split", resume=True)
    assert resumed.steps_done_ == full.steps_done_ == 4
    for other in (again, resumed):
        for name, module in full._stateful().items():
            if isinstance(module, torch.nn.Module):
                for (k, a), b in zip(module.state_dict().items(), other._stateful()[name].state_dict().values()):
                    assert torch.equal(a, b), f"{family} {name}.{k} differs"


def test_resume_with_changed_architecture_is_refused(tiny_images, tmp_path):
    tiny(max_steps=1).fit(*tiny_images, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="cannot resume ddpm"):
        tiny(lr=0.5).fit(*tiny_images, out_dir=tmp_path, resume=True)


def test_ema_warmup_decay_is_min_of_decay_and_num_updates_rule():
    net = torch.nn.Linear(2, 1, bias=False)
    ema = make_ema(net, 0.995, warmup=True)
    expected = None
    for n, value in enumerate([1.0, 3.0, -2.0]):
        with torch.no_grad():
            net.weight.fill_(value)
        ema.update_parameters(net)  # first update copies; then decay d_n = min(0.995, (1 + n) / (10 + n))
        d = min(0.995, (1 + n) / (10 + n))
        expected = value if expected is None else d * expected + (1 - d) * value
        torch.testing.assert_close(ema.module.weight, torch.full((1, 2), expected))
