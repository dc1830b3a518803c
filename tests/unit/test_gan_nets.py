"""The conditional DCGAN backbone (gan_nets.py): sizes, channels, norms, init."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from synthmed.errors import ConfigError
from synthmed.generators import make_generator
from synthmed.generators.gan_nets import DCGANDiscriminator, DCGANGenerator, dcgan_init_

pytestmark = pytest.mark.usefixtures("torch_single_thread")  # tiny nets: 1 thread is faster on a shared CPU


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_and_discriminator_shapes(size, channels):
    g = DCGANGenerator(nz=8, num_classes=3, image_size=size, channels=channels, base_channels=4)
    d = DCGANDiscriminator(num_classes=3, image_size=size, channels=channels, base_channels=4, conditioning="aux")
    y = torch.tensor([0, 2])
    x = g(torch.randn(2, 8), y)
    assert x.shape == (2, channels, size, size)
    assert x.abs().max() <= 1.0  # tanh output
    score, aux = d(x, y)
    assert score.shape == (2,) and aux.shape == (2, 3)


@pytest.mark.parametrize("norm", ["batch", "spectral", "layer", "instance", "none"])
@pytest.mark.parametrize("conditioning", ["concat", "projection", "aux"])
def test_every_norm_and_conditioning_builds_and_runs(norm, conditioning):
    d = DCGANDiscriminator(num_classes=2, image_size=28, channels=1, base_channels=4, norm=norm,
                           conditioning=conditioning)
    x = torch.randn(3, 1, 28, 28)
    score, aux = d(x, None if conditioning == "aux" else torch.tensor([0, 1, 1]))  # "aux": D sees no label
    assert score.shape == (3,)
    assert (aux is None) == (conditioning != "aux") and (aux is None or aux.shape == (3, 2))
    has_bn = any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    assert has_bn == (norm == "batch")


def test_unconditional_nets_take_no_labels():
    g = DCGANGenerator(nz=8, num_classes=0, image_size=28, channels=1, base_channels=4)
    d = DCGANDiscriminator(num_classes=0, image_size=28, channels=1, base_channels=4)
    assert g.embed is None and d.concat is None
    assert d(g(torch.randn(2, 8)))[0].shape == (2,)


def test_dcgan_init_is_normal_0_002():
    g = DCGANGenerator(nz=32, num_classes=2, image_size=32, channels=3, base_channels=32)
    dcgan_init_(g, torch.Generator().manual_seed(0))
    w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, nn.ConvTranspose2d)])
    assert abs(w.mean().item()) < 1e-3 and w.std().item() == pytest.approx(0.02, rel=0.05)


def test_unsupported_size_says_which_sizes_work():
    with pytest.raises(ConfigError, match=r"supports image sizes \(28, 32, 64, 128\); got 48"):
        DCGANGenerator(nz=8, num_classes=2, image_size=48, channels=1, base_channels=4)


def test_128px_rgb_builds_and_takes_one_training_step():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 128, 128, 3), dtype=np.uint8)
    gan = make_generator("wgan-gp", base_channels=2, nz=8, batch_size=4, max_steps=1, grid_per_class=1)
    gan.fit(images, np.array([0, 1, 0, 1]))
    assert gan.steps_done_ == 1 and gan.d_steps_done_ == 5
    assert gan.sample(np.array([1]), seed=0).shape == (1, 128, 128, 3)


def test_wgan_gp_critic_has_no_batchnorm_and_refuses_it():
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (4, 28, 28, 1), dtype=np.uint8), np.array([0, 1, 0, 1])
    gan = make_generator("wgan-gp", base_channels=4, nz=8, batch_size=4, max_steps=1).fit(images, labels)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in gan.units_[0].d.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in gan.units_[0].d.modules())  # layer norm
    with pytest.raises(ConfigError, match="d_norm='batch' is not valid"):
        make_generator("wgan-gp", d_norm="batch", max_steps=1).fit(images, labels)


def test_label_embeddings_take_their_own_init_std():
    g = DCGANGenerator(nz=32, num_classes=7, image_size=28, channels=3, base_channels=8)
    d = DCGANDiscriminator(7, 28, 3, 8, norm="spectral", conditioning="projection")
    for net in (g, d):
        dcgan_init_(net, torch.Generator().manual_seed(0), embed_std=1.0)
    assert g.embed.weight.std().item() == pytest.approx(1.0, rel=0.1)
    assert d.project.parametrizations.weight.original.std().item() == pytest.approx(1.0, rel=0.1)
    w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, nn.ConvTranspose2d)])
    assert w.std().item() == pytest.approx(0.02, rel=0.05)  # the convs keep DCGAN's init


@pytest.mark.parametrize("family, conditioning, std", [("cgan", "projection", 0.2), ("wgan-gp", "projection", 0.2),
                                                     ("wgan", "projection", 0.2), ("lsgan", "concat", 0.02),
                                                     ("acgan", "aux", 0.02)])
def test_label_path_defaults_resolve_per_family_and_yield_to_the_config(family, conditioning, std):
    from synthmed.generators import get_generator_class

    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (8, 28, 28, 1), dtype=np.uint8), np.repeat([0, 1], 4)
    tiny = get_generator_class(family).tiny_config()
    gen = make_generator(family, tiny).fit(images, labels)
    assert (gen.conditioning_, gen.embed_std_) == (conditioning, std)
    assert (gen.units_[0].d.project is not None) == (conditioning == "projection")
    assert (gen.units_[0].d.aux is not None) == (conditioning == "aux")
    other = make_generator(family, {**tiny, "conditioning": "concat", "embed_std": 0.5}).fit(images, labels)
    assert (other.conditioning_, other.embed_std_) == ("concat", 0.5) and other.units_[0].d.concat is not None
