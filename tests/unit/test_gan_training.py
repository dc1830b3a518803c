"""The GAN training loop (gan.py): determinism, exact resume, monitoring, divergence guard, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthmed.callbacks import History
from synthmed.errors import ConfigError, NotFittedError, SynthmedError, TrainingDivergedError
from synthmed.generators import make_generator
from synthmed.generators.gan import ConditionalGAN
from synthmed.generators.gan_losses import GANLoss, bce_d, bce_g, register_loss

pytestmark = pytest.mark.usefixtures("torch_single_thread")  # tiny nets: 1 thread is faster on a shared CPU

TINY = {"nz": 8, "base_channels": 4, "batch_size": 4, "grid_per_class": 2}


def _weights(gan) -> list[torch.Tensor]:
    return [t for u in gan.units_ for m in (u.g, u.d, u.ema) for t in m.state_dict().values()]


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(_weights(a), _weights(b)))


@pytest.mark.parametrize("family,extra", [("cgan", {}), ("wgan-gp", {}), ("cgan", {"per_class": True})])
def test_same_seed_gives_identical_weights(tiny_images, family, extra):
    images, labels = tiny_images
    a = make_generator(family, max_steps=3, **TINY, **extra).fit(images, labels)
    b = make_generator(family, max_steps=3, **TINY, **extra).fit(images, labels)
    c = make_generator(family, max_steps=3, seed=1, **TINY, **extra).fit(images, labels)
    assert _same(a, b)
    assert not _same(a, c)


@pytest.mark.parametrize("family,extra", [("acgan", {}), ("wgan", {}), ("cgan", {"per_class": True})])
def test_resume_gives_the_weights_of_an_uninterrupted_run(tiny_images, tmp_path, family, extra):
    images, labels = tiny_images
    whole = make_generator(family, max_steps=4, **TINY, **extra).fit(images, labels)
    make_generator(family, max_steps=2, **TINY, **extra).fit(images, labels, out_dir=tmp_path)
    resumed = make_generator(family, max_steps=4, **TINY, **extra).fit(images, labels, out_dir=tmp_path, resume=True)
    assert resumed.steps_done_ == 4
    assert _same(whole, resumed)
    assert np.array_equal(whole.sample(labels, seed=5), resumed.sample(labels, seed=5))


def test_resume_refuses_a_changed_config(tiny_images, tmp_path):
    images, labels = tiny_images
    make_generator("cgan", max_steps=1, **TINY).fit(images, labels, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="nz"):
        make_generator("cgan", max_steps=2, **{**TINY, "nz": 9}).fit(images, labels, out_dir=tmp_path, resume=True)


@pytest.mark.parametrize("family,extra_keys", [("cgan", set()), ("acgan", {"loss_cls"}), ("wgan-gp", {"gp"})])
def test_every_step_reports_the_monitoring_scalars_and_grids(tiny_images, family, extra_keys):
    images, labels = tiny_images
    hist = History()
    grids = []

    class Grids(History):
        def on_grid(self, step, grid, tag):
            grids.append((step, tag, grid.shape, grid.dtype))

    make_generator(family, max_steps=3, grid_every=2, **TINY).fit(images, labels, callbacks=[hist, Grids()])
    base = {"loss_d", "loss_g", "d_real", "d_fake_before", "d_fake_after"}
    assert [r["step"] for r in hist.rows] == [1, 2, 3]
    assert set(hist.rows[0]) == {"step"} | base | extra_keys
    # every 2 steps plus the last; one row per class (2 rows of 28 px + padding), grid_per_class columns
    assert [(s, t) for s, t, _, _ in grids] == [(2, "samples"), (3, "samples")]
    assert grids[0][2] == (2 * 30 + 2, 2 * 30 + 2, 1) and grids[0][3] == np.uint8


def test_sample_is_seeded_batch_independent_and_uses_requested_labels(tiny_images):
    images, labels = tiny_images
    gan = make_generator("lsgan", max_steps=2, **TINY).fit(images, labels)
    want = np.array([1, 0, 1, 1, 0])
    a = gan.sample(want, seed=7)
    assert a.shape == (5, 28, 28, 1) and a.dtype == np.uint8
    assert np.array_equal(a, gan.sample(want, seed=7, batch_size=2))
    assert not np.array_equal(a, gan.sample(want, seed=8))
    with pytest.raises(SynthmedError, match=r"labels must lie in \[0, 1\]"):
        gan.sample(np.array([2]))


@pytest.mark.parametrize("extra", [{}, {"per_class": True}])
def test_recomputed_bn_stats_are_seeded_and_leave_the_ema_generator_alone(tiny_images, extra):
    images, labels = tiny_images
    gan = make_generator("cgan", max_steps=3, **TINY, **extra).fit(images, labels)
    before = [t.clone() for u in gan.units_ for t in u.ema.state_dict().values()]
    ema = gan.sample(labels, seed=3)
    re = gan.sample(labels, seed=3, bn_stats="recompute")
    assert np.array_equal(re, gan.sample(labels, seed=3, bn_stats="recompute"))  # deterministic per seed
    assert not np.array_equal(re, ema)  # other statistics, other images
    assert np.array_equal(re, gan.sample(labels, seed=3, bn_stats="recompute", batch_size=2))  # eval-mode sampling
    assert all(torch.equal(a, b) for a, b in zip(before, (t for u in gan.units_ for t in u.ema.state_dict().values())))
    assert np.array_equal(ema, gan.sample(labels, seed=3))  # the stored EMA statistics are untouched
    with pytest.raises(ConfigError, match="bn_stats must be one of ema, recompute"):
        gan.sample(labels, bn_stats="fresh")


@pytest.mark.parametrize("conditioning", ["concat", "projection", "aux"])
def test_wgan_clips_every_critic_weight_but_the_label_plane_and_class_head(tiny_images, conditioning):
    images, labels = tiny_images
    gan = make_generator("wgan", max_steps=2, embed_std=0.5, conditioning=conditioning, **TINY).fit(images, labels)
    d = gan.units_[0].d
    clipped = d.clipped_parameters()
    assert all(p.abs().max().item() <= 0.01 for p in clipped)  # Arjovsky et al.'s bound, after each update
    free = [p for p in d.parameters() if all(p is not c for c in clipped)]
    if conditioning == "concat":  # the plane sits beside the image, never multiplies it: left at its scale
        assert len(free) == 1 and free[0] is d.concat.weight and free[0].std().item() == pytest.approx(0.5, rel=0.2)
    elif conditioning == "aux":  # the class head reads h(x) but is not part of the score: free to grow
        assert {id(p) for p in free} == {id(d.aux.weight), id(d.aux.bias)}
        assert d.aux.weight.abs().max().item() > 0.01
    else:  # the projection embedding multiplies h(x): clipped like every other weight
        assert free == []


def test_sample_before_fit_says_to_fit_or_load():
    with pytest.raises(NotFittedError, match="call fit\\(\\) or CGAN.load"):
        make_generator("cgan").sample(np.array([0]))


def test_acgan_per_class_is_refused_with_the_fix(tiny_images):
    with pytest.raises(ConfigError, match="use family 'cgan' with per_class=True"):
        make_generator("acgan", per_class=True, max_steps=1, **TINY).fit(*tiny_images)


def test_unknown_config_key_names_the_closest(tiny_images):
    with pytest.raises(ConfigError, match="base_channels"):
        make_generator("cgan", base_chanels=4)


# -- divergence guard: objectives that are collapsed / non-finite by construction -----------------------
register_loss(GANLoss("test-always-collapsed", bce_d, bce_g, torch.sigmoid, collapse=(0.0, 1.0, -1e9)))
register_loss(GANLoss("test-nan", lambda r, f: bce_d(r, f) * float("nan"), bce_g, torch.sigmoid))


class _Collapsing(ConditionalGAN):
    name, loss_name = "test-collapsing", "test-always-collapsed"


class _NaN(ConditionalGAN):
    name, loss_name = "test-nan", "test-nan"


def test_collapsed_discriminator_stops_after_patience_and_never_checkpoints_a_collapsed_step(tiny_images, tmp_path):
    gan = _Collapsing(max_steps=50, collapse_patience=3, checkpoint_every=1, **TINY)
    with pytest.raises(TrainingDivergedError, match=r"collapsed at step 3: .* for 3 steps .*try wgan-gp"):
        gan.fit(*tiny_images, out_dir=tmp_path)
    assert not (tmp_path / "checkpoint.pt").exists()  # every step looked collapsed, so none was "good"


def test_divergence_keeps_the_last_good_checkpoint(tiny_images, tmp_path):
    make_generator("cgan", max_steps=2, **TINY).fit(*tiny_images, out_dir=tmp_path)  # a good checkpoint
    with pytest.raises(TrainingDivergedError, match="checkpoint is kept at"):
        _Collapsing(max_steps=50, collapse_patience=2, checkpoint_every=1, **TINY).fit(*tiny_images, out_dir=tmp_path)
    from synthmed.generators import load_generator

    assert load_generator(tmp_path / "checkpoint.pt").steps_done_ == 2


def test_nan_loss_stops_at_the_first_step(tiny_images):
    with pytest.raises(TrainingDivergedError, match="diverged at step 1: loss_d, .*became NaN/Inf"):
        _NaN(max_steps=5, **TINY).fit(*tiny_images)
