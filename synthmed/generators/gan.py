"""Class-conditional GAN families behind the generator interface: cgan, acgan, lsgan, wgan, wgan-gp.

One DCGAN backbone (``gan_nets.py``), one training loop (here) and losses registered by name
(``gan_losses.py``). A family is a few lines: it names its loss and its default label path (ACGAN's is the class head).
The loop reads only the loss object's declared properties (n_critic, optimiser, clip, gradient penalty).

What a "step" is: one generator update. Before each, the discriminator/critic makes ``n_critic`` updates
(1 for cgan/acgan/lsgan, 5 for the WGANs), each on a fresh real batch. ``steps_done_`` and
``d_steps_done_`` record both counts; each family's ``default_max_steps`` is set so a default run on the
100-image 50-shot PneumoniaMNIST split at 28 px takes about 3-4 minutes on a 2-core CPU (see bench/RESULTS.md),
which is why the WGANs get fewer steps.

``per_class=True`` trains one unconditional GAN per class behind the same interface; the per-class GANs
take turns (step s updates class s mod K), so the total budget stays the same and ``sample`` routes each
requested label to its class's generator.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from synthmed.callbacks import CallbackList
from synthmed.errors import ConfigError, SynthmedError, TrainingDivergedError
from synthmed.generators.base import ConditionalGenerator, GeneratorConfig, register_generator
from synthmed.generators.diffaugment import DEFAULT_POLICY, diff_augment
from synthmed.generators.gan_losses import GANLoss, get_loss, gradient_penalty
from synthmed.generators.gan_nets import DCGANDiscriminator, DCGANGenerator, dcgan_init_
from synthmed.generators.training import TorchGeneratorMixin, grid_labels, to_model_tensor, to_uint8_images
from synthmed.imaging import class_rows_grid
from synthmed.loop import BatchSampler, TrainingBudget, make_ema


class GANConfig(GeneratorConfig):
    """Settings of every GAN family (defaults follow DCGAN unless the loss's paper says otherwise)."""

    nz: int = Field(100, ge=1)  # latent size (DCGAN)
    base_channels: int = Field(64, ge=1)  # DCGAN width (64 in the paper); tests use 4
    batch_size: int = Field(64, ge=1)  # DCGAN batch; capped at the images available per unit
    lr: float | None = Field(None, gt=0)  # None = the loss's paper value (2e-4 DCGAN, 5e-5 WGAN, 1e-4 WGAN-GP)
    betas: tuple[float, float] | None = None  # None = the loss's value ((0.5, 0.999); (0, 0.9) for WGAN-GP)
    n_critic: int | None = Field(None, ge=1)  # None = the loss's value (1; 5 for the WGANs)
    d_norm: Literal["auto", "batch", "spectral", "layer", "instance", "none"] = "auto"  # auto = loss default
    # how D uses the label (concat: an extra input plane; projection: Miyato & Koyama 2018; aux: D sees no label
    # and has a class head, both nets add its class loss, as in ACGAN); auto = the family's
    conditioning: Literal["auto", "concat", "projection", "aux"] = "auto"
    embed_std: float | None = Field(None, gt=0)  # init std of the label embeddings in G and D (z is N(0, 1)); None = the family's
    diffaugment: str = DEFAULT_POLICY  # Zhao et al. 2020; on by default because training sets are few-shot
    ema_decay: float = Field(0.995, gt=0, lt=1)  # horizon ~200 steps (runs are 500-2000); ramped up from 0
    aux_weight: float = Field(1.0, ge=0)  # class-loss weight with conditioning "aux" (Odena et al. 2017 use 1)
    per_class: bool = False  # one unconditional GAN per class instead of one conditional GAN
    collapse_patience: int = Field(100, ge=1)  # consecutive collapsed-D steps before stopping
    grid_per_class: int = Field(8, ge=1)  # columns of the fixed-noise progression grid


@contextlib.contextmanager
def _buffers_restored(*modules: torch.nn.Module):
    """Run a monitoring forward pass without leaving a trace (BatchNorm stats, spectral-norm vectors)."""
    saved = [[b.detach().clone() for b in m.buffers()] for m in modules]
    try:
        yield
    finally:
        for m, bufs in zip(modules, saved):
            for b, s in zip(m.buffers(), bufs):
                b.copy_(s)


BN_STATS = ("ema", "recompute")  # sample(bn_stats=...): the EMA generator's BatchNorm statistics
BN_BATCHES = 20  # batches of 256 noise vectors that re-estimate them (5,120 passes: the estimate's noise is small)


class _Unit:
    """One generator/discriminator pair with its optimisers, EMA and batch order."""

    def __init__(self, g, d, ema, opt_g, opt_d, sampler: BatchSampler, members: np.ndarray, conditional: bool):
        self.g, self.d, self.ema, self.opt_g, self.opt_d = g, d, ema, opt_g, opt_d
        self.sampler, self.members, self.conditional = sampler, members, conditional

    def parts(self) -> dict[str, Any]:
        """Everything with a ``state_dict`` that a checkpoint must hold for an exact resume."""
        return {"g": self.g, "d": self.d, "ema": self.ema, "opt_g": self.opt_g, "opt_d": self.opt_d,
                "sampler": self.sampler}


class ConditionalGAN(TorchGeneratorMixin, ConditionalGenerator):
    """Conditional DCGAN trained with a registered loss; subclasses name the loss.

    Fitted attributes: ``num_classes_``, ``image_shape_``, ``units_`` (one per class in per-class mode),
    ``steps_done_``, ``d_steps_done_``, ``stopped_by_``, ``fitted_``.
    """

    Config: ClassVar[type[GeneratorConfig]] = GANConfig
    loss_name: ClassVar[str] = "bce"
    default_max_steps: ClassVar[int] = 2000  # ~3 min for cgan at 28 px on 2 CPU cores (bench/RESULTS.md)
    default_conditioning: ClassVar[str] = "concat"  # conditioning="auto" resolves to this
    default_embed_std: ClassVar[float] = 0.02  # embed_std=None resolves to this (DCGAN's init)
    sample_knobs: ClassVar[tuple[str, ...]] = ("bn_stats",)  # keyword arguments of sample() beyond seed

    @classmethod
    def resolved_config(cls, config: GANConfig) -> GANConfig:
        config = super().resolved_config(config)
        loss = get_loss(cls.loss_name)
        return config.model_copy(update={
            "d_norm": loss.default_norm if config.d_norm == "auto" else config.d_norm,
            "conditioning": cls.default_conditioning if config.conditioning == "auto" else config.conditioning,
            "embed_std": cls.default_embed_std if config.embed_std is None else config.embed_std,
            "n_critic": config.n_critic or loss.n_critic,
            "lr": config.lr or loss.lr,
            "betas": config.betas or (loss.betas if loss.optimizer == "adam" else None)})  # RMSprop has none

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        return {"nz": 8, "base_channels": 4, "batch_size": 8, "max_steps": 2, "grid_every": 1, "grid_per_class": 2}

    # -- setup -------------------------------------------------------------------------------------
    def _groups(self, labels: np.ndarray) -> list[np.ndarray]:
        """Training-image indices per unit: all images, or one group per class in per-class mode."""
        if not self.config.per_class:
            return [np.arange(len(labels))]
        groups = [np.flatnonzero(labels == k) for k in range(int(labels.max()) + 1)]
        empty = [k for k, m in enumerate(groups) if len(m) == 0]
        if empty:
            raise SynthmedError(f"{self.name}: per_class=True needs images of every class; class(es) {empty} "
                                "have none. Remove the class or train a conditional GAN")
        return groups

    def _build(self, num_classes: int, image_shape: tuple[int, int, int]) -> None:
        """Resolve the loss's settings and build one unit (nets, EMA, optimisers, batch order) per group."""
        cfg = self.config
        self.loss_: GANLoss = get_loss(self.loss_name)
        self.resolved_ = r = self.resolved_config(cfg)
        self.norm_, self.conditioning_, self.embed_std_ = r.d_norm, r.conditioning, r.embed_std
        if self.norm_ in self.loss_.forbidden_norms:
            raise ConfigError(f"{self.name}: d_norm='{self.norm_}' is not valid for this loss (its paper rules it "
                              f"out); use 'layer', 'instance', 'spectral' or 'none'")
        if cfg.per_class and self.conditioning_ == "aux":
            raise ConfigError(f"{self.name}: per_class=True trains unconditional GANs, which have no class head "
                              "to train; use family 'cgan' with per_class=True")
        self.n_critic_, self.max_steps_ = r.n_critic, r.max_steps
        self.num_classes_, self.image_shape_ = int(num_classes), tuple(int(v) for v in image_shape)
        size, _, channels = self.image_shape_
        k = 0 if cfg.per_class else self.num_classes_
        # fit() sets the training groups; load() only samples, so one-image placeholders do
        groups = getattr(self, "_groups_", None) or [np.arange(1)] * (self.num_classes_ if cfg.per_class else 1)
        self.units_: list[_Unit] = []
        for i, members in enumerate(groups):
            init = torch.Generator().manual_seed(cfg.seed * 1009 + i)
            with torch.random.fork_rng(devices=[]):  # spectral norm draws its start vectors from the global RNG
                torch.manual_seed(cfg.seed * 1009 + i)
                g = DCGANGenerator(cfg.nz, k, size, channels, cfg.base_channels)
                d = DCGANDiscriminator(k, size, channels, cfg.base_channels, norm=self.norm_,
                                       conditioning=self.conditioning_)
            dcgan_init_(g, init, self.embed_std_), dcgan_init_(d, init, self.embed_std_)
            g, d = g.to(self.device_), d.to(self.device_)
            sampler = BatchSampler(len(members), cfg.batch_size, seed=cfg.seed * 1009 + i)
            ema = make_ema(g, cfg.ema_decay, warmup=True)
            self.units_.append(_Unit(g, d, ema, self._optimizer(g), self._optimizer(d), sampler, members,
                                     conditional=k > 0))
        self.rng_ = torch.Generator().manual_seed(cfg.seed)  # noise, DiffAugment and GP draws (CPU => portable)

    def _stateful(self) -> dict[str, Any]:
        return {f"unit{i}.{name}": obj for i, u in enumerate(self.units_) for name, obj in u.parts().items()}

    def _blob(self, step: int) -> dict[str, Any]:
        blob = super()._blob(step)
        blob["meta"].update(n_critic=self.n_critic_, d_steps_done=step * self.n_critic_, norm=self.norm_,
                            conditioning=self.conditioning_, embed_std=self.embed_std_, ema=True,
                            stopped_by=self.stopped_by_)
        return blob

    def _optimizer(self, net: torch.nn.Module) -> torch.optim.Optimizer:
        r = self.resolved_
        if self.loss_.optimizer == "rmsprop":  # WGAN: momentum-free, as Arjovsky et al. 2017 prescribe
            return torch.optim.RMSprop(net.parameters(), lr=r.lr)
        return torch.optim.Adam(net.parameters(), lr=r.lr, betas=r.betas)

    # -- one step ------------------------------------------------------------------------------------
    def _aug(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return diff_augment(x, self.config.diffaugment, generator or self.rng_) if self.config.diffaugment else x

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.config.nz, generator=self.rng_).to(self.device_)  # (n, nz)

    def _train_step(self, u: _Unit, x_all: torch.Tensor, y_all: torch.Tensor) -> dict[str, float]:
        """n_critic discriminator updates, then one generator update; returns the step's scalars."""
        L, cfg = self.loss_, self.config
        aux = self.conditioning_ == "aux"
        aux_w = cfg.aux_weight if aux else 0.0
        d_label = (lambda y: None) if aux or not u.conditional else (lambda y: y)
        g_label = (lambda y: y) if u.conditional else (lambda y: None)
        out: dict[str, float] = {}
        for _ in range(self.n_critic_):
            idx = torch.from_numpy(u.members[u.sampler.next()]).to(self.device_)
            real, y = x_all[idx], y_all[idx]  # (B, C, H, W), (B,)
            with torch.no_grad():
                fake = u.g(self._noise(len(idx)), g_label(y))
            real_a, fake_a = self._aug(real), self._aug(fake)
            r_logit, r_aux = u.d(real_a, d_label(y))
            f_logit, f_aux = u.d(fake_a, d_label(y))
            loss_d = L.d_loss(r_logit, f_logit)
            if aux_w:  # Odena et al. 2017 eq. 2: D also classifies real and fake images
                loss_cls = F.cross_entropy(r_aux, y) + F.cross_entropy(f_aux, y)
                loss_d = loss_d + aux_w * loss_cls
                out["loss_cls"] = loss_cls.item()
            if L.gp_weight:
                gp = gradient_penalty(lambda v: u.d(v, d_label(y))[0], real_a, fake_a, self.rng_)
                loss_d = loss_d + L.gp_weight * gp
                out["gp"] = gp.item()
            u.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            u.opt_d.step()
            if L.clip is not None:  # WGAN weight clipping keeps the critic (roughly) Lipschitz in the image
                with torch.no_grad():
                    for p in u.d.clipped_parameters():
                        p.clamp_(-L.clip, L.clip)
        out["loss_d"], out["d_real"] = loss_d.item(), L.score(r_logit).mean().item()

        u.d.requires_grad_(False)  # the G step needs gradients w.r.t. the images only
        z = self._noise(len(y))
        aug_state = self.rng_.get_state()  # replayed below so "after" sees the same augmentation
        f_logit, f_aux = u.d(self._aug(u.g(z, g_label(y))), d_label(y))
        loss_g = L.g_loss(f_logit) + (aux_w * F.cross_entropy(f_aux, y) if aux_w else 0.0)
        u.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        u.opt_g.step()
        u.ema.update_parameters(u.g)
        with torch.no_grad(), _buffers_restored(u.g, u.d):
            replay = torch.Generator().set_state(aug_state)
            after, _ = u.d(self._aug(u.g(z, g_label(y)), replay), d_label(y))
        u.d.requires_grad_(True)
        out.update(loss_g=loss_g.item(), d_fake_before=L.score(f_logit).mean().item(),
                   d_fake_after=float(L.score(after).mean()))
        return out

    def _collapsed(self, s: dict[str, float]) -> bool:
        """D(x) ≥ a, D(G(z)) ≤ b and loss_g ≥ c (the loss's ``collapse`` thresholds) on this step."""
        c = self.loss_.collapse
        return c is not None and s["d_real"] >= c[0] and s["d_fake_before"] <= c[1] and s["loss_g"] >= c[2]

    # -- the loop ------------------------------------------------------------------------------------
    def fit(self, images: np.ndarray, labels: np.ndarray, *, callbacks=None, out_dir: Path | None = None,
            resume: bool = False) -> "ConditionalGAN":
        """Train on uint8 NHWC ``images`` with int ``labels``; resume from ``out_dir/checkpoint.pt`` if asked.

        Raises:
            TrainingDivergedError: NaN/Inf losses, or a collapsed discriminator for ``collapse_patience`` steps.
        """
        images, labels = self.check_training_data(images, labels)
        self.fitted_ = False
        self._groups_ = self._groups(labels)
        start = self._begin_fit(images, labels, out_dir, resume)  # builds (seeded), then restores on resume
        x_all = to_model_tensor(images, self.device_)  # (N, C, H, W) in [-1, 1]
        y_all = torch.from_numpy(labels).to(self.device_)
        cbs, cfg, streak = CallbackList(callbacks), self.config, [0]

        def step_fn(step: int) -> dict[str, float]:
            scalars = self._train_step(self.units_[step % len(self.units_)], x_all, y_all)
            streak[0] = streak[0] + 1 if self._collapsed(scalars) else 0
            if streak[0] >= cfg.collapse_patience:
                ckpt = self.checkpoint_path_
                kept = f"; the last good checkpoint is kept at {ckpt}" if ckpt and ckpt.exists() else ""
                raise TrainingDivergedError(
                    f"{self.name} collapsed at step {step + 1}: the discriminator separated real from fake for "
                    f"{streak[0]} steps (D(x)={scalars['d_real']:.3g}, D(G(z))={scalars['d_fake_before']:.3g}, "
                    f"loss_g={scalars['loss_g']:.3g}){kept}. Keep DiffAugment on, lower lr or try wgan-gp.")
            return scalars

        def grid_fn(step: int) -> None:  # every grid_every steps and at the last step
            if step % cfg.grid_every == 0 or step >= self.max_steps_:
                cbs.on_grid(step, self.grid(), "samples")

        def checkpoint_fn(step: int) -> None:  # never checkpoint a step that already looks collapsed
            if streak[0] == 0 or budget.done(step):  # ... except the final one
                self._write_checkpoint(step)

        budget = TrainingBudget(self.max_steps_, cfg.max_minutes)
        return self._train(start, budget, step_fn, cbs, grid_fn, grid_every=1, checkpoint_fn=checkpoint_fn)

    @property
    def d_steps_done_(self) -> int:
        """Discriminator/critic updates done (n_critic per generator step)."""
        return self.steps_done_ * self.n_critic_

    # -- sampling ------------------------------------------------------------------------------------
    def sample(self, labels: np.ndarray, *, seed: int | None = None, batch_size: int = 256,
               bn_stats: Literal["ema", "recompute"] = "ema") -> np.ndarray:
        """Draw images for ``labels`` with the EMA generator(s): (N, H, W, C) uint8, deterministic per seed.

        ``bn_stats``: the BatchNorm statistics the EMA generator samples with. "ema": averaged alongside the
        weights during training, so they mix statistics of earlier live weights; "recompute": the EMA weights'
        own, re-estimated on ``BN_BATCHES`` batches of fresh noise (the weights are unchanged)."""
        self.check_is_fitted()
        if bn_stats not in BN_STATS:
            raise ConfigError(f"bn_stats must be one of {', '.join(BN_STATS)}; got {bn_stats!r}")
        return self._generate(self.check_labels(labels), seed, batch_size, recompute=bn_stats == "recompute")

    @torch.no_grad()
    def _recomputed(self, u: _Unit, seed: int, batch_size: int = 256) -> torch.nn.Module:
        """A copy of ``u``'s EMA generator with BatchNorm statistics re-estimated for its own weights: a cumulative
        average (momentum None) over ``BN_BATCHES`` train-mode passes of N(0, 1) noise and uniform labels, seeded.
        Hand-written: torch.optim.swa_utils.update_bn feeds the model one tensor per batch; G takes (z, y)."""
        g = copy.deepcopy(u.ema.module)
        norms = [m for m in g.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        if norms:
            rng = torch.Generator().manual_seed(seed)
            g.train()
            for _ in range(BN_BATCHES):
                z = torch.randn(batch_size, self.config.nz, generator=rng)
                y = torch.randint(self.num_classes_, (batch_size,), generator=rng) if u.conditional else None
                g(z.to(self.device_), None if y is None else y.to(self.device_))
        return g.eval()

    @torch.no_grad()
    def _generate(self, labels: np.ndarray, seed: int | None, batch_size: int = 256,
                  recompute: bool = False) -> np.ndarray:
        seed = self.config.seed if seed is None else seed
        z = torch.randn(len(labels), self.config.nz, generator=torch.Generator().manual_seed(seed))  # (N, nz)
        out = np.empty((len(labels), *self.image_shape_), dtype=np.uint8)  # (N, H, W, C)
        for k, u in enumerate(self.units_):
            rows = np.arange(len(labels)) if u.conditional else np.flatnonzero(labels == k)
            # eval: BatchNorm uses running stats, so a sample ignores its batch-mates
            g = self._recomputed(u, seed + 7_919 * (k + 1)) if recompute else u.ema.module.eval()
            for s in range(0, len(rows), batch_size):
                r = rows[s : s + batch_size]
                y = torch.from_numpy(labels[r]).to(self.device_) if u.conditional else None
                out[r] = to_uint8_images(g(z[r].to(self.device_), y))
        return out

    def grid(self) -> np.ndarray:
        """The fixed-noise progression grid: one row per class, ``grid_per_class`` columns, EMA weights."""
        per = self.config.grid_per_class
        labels = grid_labels(self.num_classes_, per)
        return class_rows_grid(self._generate(labels, self.config.seed + 10_007), labels, self.num_classes_, per)


@register_generator("cgan")
class CGAN(ConditionalGAN):
    """Conditional DCGAN with the BCE loss (Mirza & Osindero 2014; Radford et al. 2016).

    Its discriminator sees the label by projection, with label embeddings initialised at std 0.2: with the
    concat plane and DCGAN's 0.02 it was label-blind on the 7-class skin set (class faithfulness 0.142, chance
    0.143); at std 1.0 it collapsed to one image per class (recall 0.01); projection at 0.2 was the best on
    every instrument there (bench/RESULTS.md, section health).
    """

    loss_name = "bce"
    default_conditioning = "projection"
    default_embed_std = 0.2


@register_generator("acgan")
class ACGAN(ConditionalGAN):
    """Auxiliary-classifier GAN (Odena et al. 2017): D has a class head; both nets add its class loss."""

    loss_name = "bce"
    default_conditioning = "aux"


@register_generator("lsgan")
class LSGAN(ConditionalGAN):
    """Conditional DCGAN with least-squares losses (Mao et al. 2017)."""

    loss_name = "lsgan"


@register_generator("wgan")
class WGAN(ConditionalGAN):
    """Wasserstein GAN with weight clipping (Arjovsky et al. 2017): RMSprop 5e-5, n_critic 5, clip 0.01.

    Its critic sees the label by projection, as cgan's and wgan-gp's. Under clipping the projection embedding is
    held to ±0.01 like the output layer it is added to, so the label's part of the score has the score's own
    scale, where the concat label plane (exempt from clipping, see ``clipped_parameters``) enters beside the image
    at the first layer. On PneumoniaMNIST's five default draws projection left class faithfulness 0.015 below the
    held-out floor on average (worst draw 0.062) against concat's 0.065 (worst 0.214), at a lower FD ratio on four
    draws (mean 25.6 vs 41.6; bench/RESULTS.md, section health). ACGAN's label path (``conditioning="aux"``) is
    worse: at class-loss weight 1 or 0.1 the class loss swamps the clipped critic's scores and the generator
    collapses; at 0.01 it learns, with faithfulness 0.755 and recall 0.10 on draw 0.
    """

    loss_name = "wgan"
    default_conditioning = "projection"
    default_embed_std = 0.2
    default_max_steps = 700  # 5 critic updates per step: ~3 min at 28 px on 2 CPU cores


@register_generator("wgan-gp")
class WGANGP(ConditionalGAN):
    """WGAN with gradient penalty (Gulrajani et al. 2017): λ 10, Adam (0, 0.9), n_critic 5, layer-norm critic.

    Its critic sees the label by projection at embedding std 0.2, as cgan's: with the concat plane at 0.02 it
    was label-blind on the skin set and 0.085 below the held-out floor in class faithfulness on PneumoniaMNIST
    draw 0 (0.822 vs 0.907); projection at 0.2 came within 0.05 on both draws at the same FD (0.873, 0.953;
    bench/RESULTS.md, section health).
    """

    loss_name = "wgan-gp"
    default_conditioning = "projection"
    default_embed_std = 0.2
    default_max_steps = 500  # 5 critic updates + penalty per step: ~3 min at 28 px on 2 CPU cores
