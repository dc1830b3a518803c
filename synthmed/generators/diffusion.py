"""Class-conditional DDPM (``ddpm``) with DDIM sampling and classifier-free guidance.

References:
    Ho et al. 2020, "Denoising Diffusion Probabilistic Models" (ε-prediction, eq. 14 simple loss).
    Song et al. 2021, "Denoising Diffusion Implicit Models" (DDIM, eq. 12; eta=0 is deterministic).
    Nichol & Dhariwal 2021 (cosine schedule, diffusers' "squaredcos_cap_v2").
    Ho & Salimans 2022, "Classifier-Free Diffusion Guidance" (label dropout, guided ε, eq. 6).

    Lu et al. 2022, "DPM-Solver++" (multistep, data prediction; recommended for few-step guided sampling).
    Zhao et al. 2023, "UniPC" (unified predictor-corrector, multistep).

Library choice: the UNet and the schedulers come from Hugging Face diffusers (``UNet2DModel`` with
``num_class_embeds``, ``DDPMScheduler``, ``DDIMScheduler``, ``DPMSolverMultistepScheduler``,
``UniPCMultistepScheduler``; every sampler is configured from the training ``DDPMScheduler``'s config). MONAI's ``DiffusionModelUNet`` was the
alternative; it needs ``einops`` for attention (not installed) and its inferers take no class
labels, so guidance would need our own loop anyway. diffusers measured here: ≈160 img/s training
and ≈1000 img-evals/s sampling for the default 0.64 M-parameter UNet at 28 px on 2 CPU cores.
Only the training loop and the sampler glue (guidance, batching, padding) are written here.

Sizes: a UNet with L levels downsamples L-1 times, so the image side must divide by 2**(L-1).
The default 3-level UNet runs at 28 px directly (28→14→7) and at 64 px; other sizes (or 4 levels
at 28 px) are padded with black (-1) to the next multiple and cropped back after sampling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from synthmed.callbacks import CallbackList
from synthmed.generators.base import ConditionalGenerator, GeneratorConfig, register_generator
from synthmed.generators.training import TorchGeneratorMixin, grid_labels, to_model_tensor, to_uint8_images
from synthmed.imaging import class_rows_grid
from synthmed.loop import BatchSampler, TrainingBudget, make_ema


# -- helpers -----------------------------------------------------------------------------------
def padded_size(size: int, levels: int) -> int:
    """Smallest side ≥ ``size`` that a UNet with ``levels`` levels (levels-1 downsamplings) accepts."""
    m = 2 ** (levels - 1)
    return -(-size // m) * m


def build_unet(config: "DDPMConfig", channels: int, size: int, num_classes: int):
    """diffusers ``UNet2DModel`` with one extra class embedding: index ``num_classes`` is "no label"."""
    from diffusers import UNet2DModel

    levels = len(config.block_out_channels)
    down, up = ["DownBlock2D"] * levels, ["UpBlock2D"] * levels
    if config.attention:  # self-attention only at the coarsest level, where it is cheap (7×7 at 28 px)
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    return UNet2DModel(
        sample_size=padded_size(size, levels), in_channels=channels, out_channels=channels,
        block_out_channels=tuple(config.block_out_channels), layers_per_block=config.layers_per_block,
        down_block_types=tuple(down), up_block_types=tuple(up), norm_num_groups=config.norm_num_groups,
        num_class_embeds=num_classes + 1,
    )


SAMPLERS = ("ddim", "ddpm", "dpm-solver", "unipc")  # the ``sampler`` choices (config and sample())


def build_scheduler(config: "DDPMConfig", kind: str):
    """The training noise schedule as a ``DDPMScheduler``, or a sampler on the same βs (``from_config``):
    ``ddim`` (DDIM, eta = 0), ``dpm-solver`` (DPM-Solver++ order 2, multistep) or ``unipc`` (UniPC bh2)."""
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler

    ddpm = DDPMScheduler(num_train_timesteps=config.timesteps, beta_schedule=config.beta_schedule,
                         prediction_type="epsilon", clip_sample=True)
    if kind == "ddpm":
        return ddpm
    if kind == "ddim":  # "trailing" spacing starts DDIM at t = T-1, which matters with few steps (Lin et al. 2024)
        return DDIMScheduler.from_config(ddpm.config, timestep_spacing="trailing")
    # The multistep solvers predict x0 and have no clip_sample; thresholding with sample_max_value = 1 clips
    # that x0 prediction to [-1, 1] as DDIM's clip_sample does (the dynamic quantile is floored at 1).
    clip = {"thresholding": True, "sample_max_value": 1.0}
    if kind == "dpm-solver":
        return DPMSolverMultistepScheduler.from_config(ddpm.config, algorithm_type="dpmsolver++", **clip)
    if kind == "unipc":
        return UniPCMultistepScheduler.from_config(ddpm.config, **clip)
    raise ValueError(f"unknown sampler {kind!r}")  # callers check against SAMPLERS first


def guided_eps(unet, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, null_label: int,
               guidance: float) -> torch.Tensor:
    """Classifier-free guided noise prediction ε = ε_uncond + w (ε_cond − ε_uncond) (Ho & Salimans, eq. 6).

    ``w = 1`` is plain conditional (the unconditional pass is skipped); ``w = 0`` is unconditional.
    Shapes: x (B, C, H, W), labels (B,) → (B, C, H, W).
    """
    if guidance == 1.0:
        return unet(x, t, class_labels=labels).sample
    null = torch.full_like(labels, null_label)
    if guidance == 0.0:
        return unet(x, t, class_labels=null).sample
    eps_cond, eps_uncond = unet(torch.cat([x, x]), t, class_labels=torch.cat([labels, null])).sample.chunk(2)
    return eps_uncond + guidance * (eps_cond - eps_uncond)


# -- config ------------------------------------------------------------------------------------
class DDPMConfig(GeneratorConfig):
    block_out_channels: tuple[int, ...] = (16, 32, 64)  # 3 levels: 0.64 M params, fits the 6-min CPU budget
    layers_per_block: int = Field(1, ge=1)  # one ResNet block per level: half the cost of diffusers' 2
    attention: bool = True  # self-attention at the coarsest level only
    norm_num_groups: int = Field(8, ge=1)  # GroupNorm groups; must divide every width (16 does not fit 32 groups)
    timesteps: int = Field(1000, ge=2)  # training noise levels (Ho et al. 2020)
    beta_schedule: Literal["linear", "squaredcos_cap_v2"] = "linear"  # linear = Ho et al.; cosine = Nichol & Dhariwal
    cond_dropout: float = Field(0.1, ge=0.0, le=1.0)  # label dropout for classifier-free guidance (Ho & Salimans)
    lr: float = Field(1e-3, gt=0)  # AdamW; a 0.6 M-param UNet tolerates it and the step budget is short
    batch_size: int = Field(64, ge=1)  # CPU throughput saturates around 64 at 28 px
    grad_clip: float = Field(1.0, gt=0)  # max grad norm, as in the diffusers training examples
    ema_decay: float = Field(0.995, gt=0, lt=1)  # ≈200-step window after warm-up; suits ~2k-step runs
    # ddim: few deterministic steps; ddpm: the full ancestral chain; dpm-solver (DPM-Solver++) / unipc:
    # multistep solvers meant for 10-20 steps (bench/RESULTS.md, bench_sampler: FD vs DDIM-100 per step count)
    sampler: Literal["ddim", "ddpm", "dpm-solver", "unipc"] = "ddim"
    sample_steps: int = Field(50, ge=1)  # steps of ddim / dpm-solver / unipc (Song et al. use 50-100); ignored by "ddpm"
    # w; 1 = conditional only. Sweep (bench/RESULTS.md): w=1 had the lowest PCA-Fréchet distance to real
    # test images (6.07 vs 7.64 at w=0, 6.93 at w=2, 8.63 at w=3) at half the cost of any w ∉ {0, 1}
    guidance: float = Field(1.0, ge=0.0)
    sample_batch_size: int = Field(256, ge=1)  # images denoised together
    progress: bool = True  # tqdm bar while sampling
    grid_per_class: int = Field(4, ge=1)  # images per class row in progression grids
    grid_steps: int = Field(10, ge=1)  # DDIM steps for progression grids: cheap, still recognisable


# -- the family --------------------------------------------------------------------------------
@register_generator("ddpm")
class DDPM(TorchGeneratorMixin, ConditionalGenerator):
    """Class-conditional denoising diffusion: ε-prediction UNet, EMA weights, DDPM/DDIM sampling, CFG.

    Fitted attributes: ``unet_``, ``ema_`` (averaged copy used for sampling), ``optimizer_``,
    ``sampler_`` (data order), ``rng_`` (noise, timesteps, label dropout), ``num_classes_``,
    ``image_shape_``, ``steps_done_``, ``fitted_``.
    """

    Config = DDPMConfig
    sample_knobs = ("sampler", "steps", "guidance", "progress")  # keyword arguments of sample() beyond seed
    default_max_steps = 2000  # ≈6 min on the 2-core CPU at 28 px (bench/RESULTS.md, ddpm section)
    state_attrs = {"unet": "unet_", "ema": "ema_", "optimizer": "optimizer_", "sampler": "sampler_"}

    @classmethod
    def tiny_config(cls) -> dict:
        return {"block_out_channels": (8, 16), "norm_num_groups": 4, "attention": False, "max_steps": 3,
                "batch_size": 16, "sample_steps": 3, "grid_every": 2, "grid_per_class": 2, "grid_steps": 2,
                "progress": False}

    def _build(self, num_classes: int, image_shape: tuple[int, int, int]) -> None:
        c = self.config
        self.num_classes_, self.image_shape_ = num_classes, image_shape
        self.unet_ = build_unet(c, image_shape[2], image_shape[0], num_classes).to(self.device_)
        self.ema_ = make_ema(self.unet_, c.ema_decay, warmup=True)  # short CPU runs: see make_ema
        self.optimizer_ = torch.optim.AdamW(self.unet_.parameters(), lr=c.lr)
        self.noise_scheduler_ = build_scheduler(c, "ddpm")
        self.rng_ = torch.Generator(device=self.device_).manual_seed(c.seed)

    @property
    def null_label(self) -> int:
        """The class-embedding index meaning "no label" (classifier-free guidance)."""
        return self.num_classes_

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        p = padded_size(x.shape[-1], len(self.config.block_out_channels)) - x.shape[-1]
        return F.pad(x, (p // 2, p - p // 2, p // 2, p - p // 2), value=-1.0) if p else x

    def fit(self, images: np.ndarray, labels: np.ndarray, *, callbacks=None, out_dir: Path | None = None,
            resume: bool = False) -> "DDPM":
        """Train the ε-prediction UNet on ``(N, H, W, C)`` uint8 images with ``(N,)`` labels; returns self.

        Args:
            images: training images (any square size ≥ 8; padded internally when needed).
            labels: class index per image.
            callbacks: receives ``eps_mse`` per step and a "samples" grid every ``grid_every`` steps.
            out_dir: where ``checkpoint.pt`` is written every ``checkpoint_every`` steps and at the end.
            resume: continue from ``out_dir/checkpoint.pt`` when it exists (weights then equal an
                uninterrupted run's).
        """
        images, labels = self.check_training_data(images, labels)
        self.sampler_ = BatchSampler(len(images), self.config.batch_size, self.config.seed)
        start = self._begin_fit(images, labels, out_dir, resume)
        x_all = self._pad(to_model_tensor(images, self.device_))  # (N, C, H', W') in [-1, 1]
        y_all = torch.as_tensor(labels, device=self.device_)
        sched, cb, c = self.noise_scheduler_, CallbackList(callbacks), self.config
        self.fitted_ = False
        budget = TrainingBudget(self.resolved_config(c).max_steps, c.max_minutes)

        def step_fn(step: int) -> dict[str, float]:
            self.unet_.train()
            idx = torch.as_tensor(self.sampler_.next(), device=self.device_)
            x0, y = x_all[idx], y_all[idx]
            b, dev, g = len(idx), self.device_, self.rng_
            drop = torch.rand(b, generator=g, device=dev) < c.cond_dropout  # CFG label dropout
            y = torch.where(drop, torch.full_like(y, self.null_label), y)
            noise = torch.randn(x0.shape, generator=g, device=dev)
            t = torch.randint(0, c.timesteps, (b,), generator=g, device=dev)
            x_t = sched.add_noise(x0, noise, t)  # q(x_t | x_0), Ho et al. eq. 4
            loss = F.mse_loss(self.unet_(x_t, t, class_labels=y).sample, noise)  # L_simple, eq. 14
            self.optimizer_.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.unet_.parameters(), c.grad_clip)
            self.optimizer_.step()
            self.ema_.update_parameters(self.unet_)
            return {"eps_mse": loss.item()}

        def grid_fn(step: int) -> None:
            lab = grid_labels(self.num_classes_, c.grid_per_class)
            imgs = self._denoise(lab, seed=0, sampler="ddim", steps=c.grid_steps, progress=False)
            cb.on_grid(step, class_rows_grid(imgs, lab, self.num_classes_, c.grid_per_class), "samples")

        return self._train(start, budget, step_fn, cb, grid_fn)

    @torch.no_grad()
    def sample(self, labels: np.ndarray, *, seed: int | None = None, sampler: str | None = None,
               steps: int | None = None, guidance: float | None = None, progress: bool | None = None) -> np.ndarray:
        """Generate one image per requested label with the EMA UNet → ``(N, H, W, C)`` uint8.

        Args:
            labels: class index per image.
            seed: noise seed (default: config seed); same seed ⇒ same images.
            sampler: "ddim", "ddpm", "dpm-solver" or "unipc" (default: config).
            steps: sampler steps (default: config ``sample_steps``); "ddpm" always takes all ``timesteps``.
            guidance: classifier-free guidance scale w (default: config).
            progress: show a tqdm bar (default: config).
        """
        self.check_is_fitted()
        return self._denoise(self.check_labels(labels), seed=seed, sampler=sampler, steps=steps, guidance=guidance,
                             progress=progress)

    def _scheduler(self, sampler: str | None, steps: int | None):
        """The sampler's diffusers scheduler and its step count; a one-line ConfigError for a bad choice."""
        from synthmed.errors import ConfigError

        c = self.config
        sampler = sampler or c.sampler
        if sampler not in SAMPLERS:
            raise ConfigError(f"ddpm sampler must be one of {', '.join(SAMPLERS)}; got '{sampler}'")
        n_steps = c.timesteps if sampler == "ddpm" else (steps or c.sample_steps)
        if n_steps > c.timesteps:
            raise ConfigError(f"{sampler} steps ({n_steps}) cannot exceed the {c.timesteps} training timesteps; "
                              "lower sample_steps")
        return build_scheduler(c, sampler), sampler, n_steps

    @torch.no_grad()
    def _denoise(self, labels: np.ndarray, *, seed: int | None, sampler: str | None, steps: int | None = None,
                 guidance: float | None = None, progress: bool | None = None) -> np.ndarray:
        from tqdm.auto import tqdm

        c = self.config
        scheduler, sampler, n_steps = self._scheduler(sampler, steps)
        w = c.guidance if guidance is None else float(guidance)
        unet = self.ema_.module.eval()
        g = torch.Generator(device=self.device_).manual_seed(c.seed if seed is None else seed)
        # only DDPM's ancestral steps draw noise (DDIM at eta = 0 draws none; UniPC's step takes no generator)
        step_kw = {"generator": g} if sampler == "ddpm" else {}
        h, wd, ch = self.image_shape_
        side = padded_size(h, len(c.block_out_channels))
        n_chunks = -(-len(labels) // c.sample_batch_size)
        top, chunks = (side - h) // 2, np.array_split(labels, n_chunks) if n_chunks else []
        scheduler.set_timesteps(n_steps, device=self.device_)
        bar = tqdm(total=len(scheduler.timesteps) * len(chunks), desc=f"{sampler}-{n_steps}", leave=False,
                   disable=not (c.progress if progress is None else progress))
        out = []
        for chunk in chunks:
            y = torch.as_tensor(chunk, device=self.device_)
            x = torch.randn((len(chunk), ch, side, side), generator=g, device=self.device_)
            scheduler.set_timesteps(n_steps, device=self.device_)  # multistep solvers keep per-chain history
            for t in scheduler.timesteps:  # the sampling loop (DDPM ancestral, DDIM eq. 12 at eta=0, or a solver)
                eps = guided_eps(unet, x, t, y, self.null_label, w)
                x = scheduler.step(eps, t, x, **step_kw).prev_sample
                bar.update(1)
            out.append(to_uint8_images(x[..., top : top + h, top : top + wd]))
        bar.close()
        return np.concatenate(out) if out else np.zeros((0, h, wd, ch), np.uint8)
