"""Conditional VAE (``cvae``): conv encoder/decoder, both conditioned on a class embedding.

References:
    Kingma & Welling 2014, "Auto-Encoding Variational Bayes" (reparameterisation, Gaussian KL).
    Sohn et al. 2015, "Learning Structured Output Representation using Deep Conditional
    Generative Models" (the conditional VAE: q(z|x,y), p(x|z,y), prior N(0, I)).
    Higgins et al. 2017 (β-VAE), Bowman et al. 2016 (KL warm-up).

Torch has no ready-made VAE; the two small conv nets below are the whole model.
Layout: helpers → nets → loss → the family class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from synthmed.callbacks import CallbackList
from synthmed.errors import ConfigError
from synthmed.generators.base import ConditionalGenerator, GeneratorConfig, register_generator
from synthmed.generators.training import TorchGeneratorMixin, grid_labels, to_model_tensor, to_uint8_images
from synthmed.imaging import class_rows_grid, make_grid
from synthmed.loop import BatchSampler, TrainingBudget

SUPPORTED_SIZES = (28, 32, 64)


# -- helpers -----------------------------------------------------------------------------------
def num_downsamplings(size: int) -> int:
    """Stride-2 stages from ``size`` down to a 7- or 8-pixel map: 28→7 and 32→8 take 2, 64→8 takes 3."""
    if size not in SUPPORTED_SIZES:
        raise ConfigError(f"cvae supports image sizes {SUPPORTED_SIZES}; got {size}. Resize the dataset "
                          "(e.g. load it at size 28 or 64)")
    return 2 if size <= 32 else 3


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) per sample, summed over latent dims (Kingma & Welling 2014, App. B):
    −½ Σ (1 + log σ² − μ² − σ²).  Shapes: (B, D) → (B,)."""
    return -0.5 * torch.sum(1.0 + logvar - mu.pow(2) - logvar.exp(), dim=1)


def reconstruction_loss(logits: torch.Tensor, target01: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-sample reconstruction loss summed over pixels: (B, C, H, W) → (B,).

    ``bce`` treats pixels in [0, 1] as Bernoulli means (logits in); ``mse`` compares sigmoid(logits).
    """
    if kind == "bce":
        per_pixel = F.binary_cross_entropy_with_logits(logits, target01, reduction="none")
    else:
        per_pixel = (torch.sigmoid(logits) - target01).pow(2)
    return per_pixel.flatten(1).sum(1)


# -- nets --------------------------------------------------------------------------------------
class Encoder(nn.Module):
    """q(z | x, y): strided convs → flatten ⊕ class embedding → (μ, log σ²)."""

    def __init__(self, channels: int, size: int, width: int, latent_dim: int, num_classes: int, embed_dim: int):
        super().__init__()
        layers, c_in = [], channels
        for i in range(num_downsamplings(size)):
            c_out = width * 2**i
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        self.embed = nn.Embedding(num_classes, embed_dim)
        feat = c_in * (size // 2 ** num_downsamplings(size)) ** 2
        self.head = nn.Linear(feat + embed_dim, 2 * latent_dim)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.cat([self.convs(x).flatten(1), self.embed(y)], dim=1)  # (B, feat + E)
        mu, logvar = self.head(h).chunk(2, dim=1)  # (B, D) each
        return mu, logvar


class Decoder(nn.Module):
    """p(x | z, y): [z ⊕ class embedding] → linear → transposed convs → pixel logits."""

    def __init__(self, channels: int, size: int, width: int, latent_dim: int, num_classes: int, embed_dim: int):
        super().__init__()
        n = num_downsamplings(size)
        self.base, self.c0 = size // 2**n, width * 2 ** (n - 1)
        self.embed = nn.Embedding(num_classes, embed_dim)
        self.fc = nn.Linear(latent_dim + embed_dim, self.c0 * self.base**2)
        layers, c_in = [], self.c0
        for i in reversed(range(n - 1)):
            c_out = width * 2**i
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU()]
            c_in = c_out
        layers.append(nn.ConvTranspose2d(c_in, channels, 4, 2, 1))  # last upsampling → logits
        self.deconvs = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc(torch.cat([z, self.embed(y)], dim=1)))
        return self.deconvs(h.view(-1, self.c0, self.base, self.base))  # (B, C, H, W) logits


# -- config ------------------------------------------------------------------------------------
class CVAEConfig(GeneratorConfig):
    latent_dim: int = Field(32, ge=1)  # issue 4 default; enough for 28-64 px single-organ images
    width: int = Field(32, ge=4)  # channels of the first conv; doubles per downsampling
    embed_dim: int = Field(16, ge=1)  # class embedding size fed to encoder and decoder
    recon_loss: Literal["bce", "mse"] = "bce"  # BCE suits [0, 1] intensities; MSE gives smoother images
    beta: float = Field(1.0, ge=0.0)  # KL weight; 1 = the plain ELBO (β-VAE when ≠ 1)
    kl_warmup_steps: int = Field(200, ge=0)  # β ramps linearly 0→beta over these steps (avoids early collapse)
    lr: float = Field(1e-3, gt=0)  # Adam; stable for this small net at batch 64
    batch_size: int = Field(64, ge=1)  # a 50-shot split of 2 classes is 100 images: ~2 batches/epoch
    grid_per_class: int = Field(8, ge=1)  # images per class row in progression grids
    sample_batch_size: int = Field(256, ge=1)  # decoder batch at sampling


# -- the family --------------------------------------------------------------------------------
@register_generator("cvae")
class CVAE(TorchGeneratorMixin, ConditionalGenerator):
    """Conditional VAE: fit on uint8 NHWC images + labels, sample from the prior for requested labels.

    Fitted attributes: ``encoder_``, ``decoder_``, ``optimizer_``, ``sampler_`` (data order),
    ``rng_`` (noise), ``num_classes_``, ``image_shape_``, ``steps_done_``, ``fitted_``.
    """

    Config = CVAEConfig
    default_max_steps = 1500  # ≈2 min on the 2-core CPU at 28 px (bench/RESULTS.md, cvae section)
    state_attrs = {"encoder": "encoder_", "decoder": "decoder_", "optimizer": "optimizer_", "sampler": "sampler_"}

    @classmethod
    def tiny_config(cls) -> dict:
        return {"width": 8, "latent_dim": 4, "embed_dim": 4, "max_steps": 3, "batch_size": 16,
                "grid_every": 2, "grid_per_class": 2, "kl_warmup_steps": 2}

    def _build(self, num_classes: int, image_shape: tuple[int, int, int]) -> None:
        c = self.config
        size, channels = image_shape[0], image_shape[2]
        args = (channels, size, c.width, c.latent_dim, num_classes, c.embed_dim)
        self.num_classes_, self.image_shape_ = num_classes, image_shape
        self.encoder_ = Encoder(*args).to(self.device_)
        self.decoder_ = Decoder(*args).to(self.device_)
        params = [*self.encoder_.parameters(), *self.decoder_.parameters()]
        self.optimizer_ = torch.optim.Adam(params, lr=c.lr)
        self.rng_ = torch.Generator(device=self.device_).manual_seed(c.seed)

    def beta_at(self, step: int) -> float:
        """β after linear warm-up: ``beta * min(1, step / kl_warmup_steps)``."""
        w = self.config.kl_warmup_steps
        return self.config.beta * (min(1.0, step / w) if w else 1.0)

    def fit(self, images: np.ndarray, labels: np.ndarray, *, callbacks=None, out_dir: Path | None = None,
            resume: bool = False) -> "CVAE":
        """Train on ``(N, H, W, C)`` uint8 images with ``(N,)`` int labels; returns self.

        Args:
            images: training images, sizes 28, 32 or 64, grey or RGB.
            labels: class index per image.
            callbacks: receives recon/kl/loss/beta per step and "reconstructions"/"samples" grids.
            out_dir: where ``checkpoint.pt`` is written every ``checkpoint_every`` steps and at the end.
            resume: continue from ``out_dir/checkpoint.pt`` when it exists.
        """
        images, labels = self.check_training_data(images, labels)
        num_downsamplings(images.shape[1])  # validate the size before building
        self.sampler_ = BatchSampler(len(images), self.config.batch_size, self.config.seed)
        start = self._begin_fit(images, labels, out_dir, resume)
        x01 = to_model_tensor(images, self.device_).add_(1).mul_(0.5)  # (N, C, H, W) in [0, 1]
        y_all = torch.as_tensor(labels, device=self.device_)
        cb = CallbackList(callbacks)
        self.fitted_ = False
        budget = TrainingBudget(self.resolved_config(self.config).max_steps, self.config.max_minutes)

        def step_fn(step: int) -> dict[str, float]:
            self.encoder_.train(), self.decoder_.train()
            idx = torch.as_tensor(self.sampler_.next(), device=self.device_)
            x, y = x01[idx], y_all[idx]
            mu, logvar = self.encoder_(x * 2 - 1, y)  # encoder sees [-1, 1]
            eps = torch.randn(mu.shape, generator=self.rng_, device=self.device_)
            z = mu + eps * (0.5 * logvar).exp()  # reparameterisation trick
            recon = reconstruction_loss(self.decoder_(z, y), x, self.config.recon_loss).mean()
            kl = kl_divergence(mu, logvar).mean()
            beta = self.beta_at(step + 1)
            loss = recon + beta * kl
            self.optimizer_.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer_.step()
            return {"recon": recon.item(), "kl": kl.item(), "loss": loss.item(), "beta": beta}

        def grid_fn(step: int) -> None:
            cb.on_grid(step, self._reconstruction_grid(images, labels), "reconstructions")
            per = self.config.grid_per_class
            lab = grid_labels(self.num_classes_, per)
            cb.on_grid(step, class_rows_grid(self._decode(lab, 0), lab, self.num_classes_, per), "samples")

        return self._train(start, budget, step_fn, cb, grid_fn)

    @torch.no_grad()
    def _reconstruction_grid(self, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Per class: a row of real images above a row of their reconstructions (posterior means)."""
        per, rows = self.config.grid_per_class, []
        self.encoder_.eval(), self.decoder_.eval()
        for k in range(self.num_classes_):
            real = images[np.flatnonzero(labels == k)[:per]]
            if len(real) == 0:
                continue
            y = torch.full((len(real),), k, device=self.device_)
            mu, _ = self.encoder_(to_model_tensor(real, self.device_), y)
            rec = to_uint8_images(torch.sigmoid(self.decoder_(mu, y)) * 2 - 1)
            rows += [real, rec]
        tiles = np.concatenate([np.pad(r, ((0, per - len(r)), (0, 0), (0, 0), (0, 0)), constant_values=255)
                                for r in rows])
        return make_grid(tiles, nrow=per)

    @torch.no_grad()
    def sample(self, labels: np.ndarray, *, seed: int | None = None) -> np.ndarray:
        """Decode z ~ N(0, I) for each requested label → ``(N, H, W, C)`` uint8; same seed ⇒ same images."""
        self.check_is_fitted()
        return self._decode(self.check_labels(labels), seed)

    @torch.no_grad()
    def _decode(self, labels: np.ndarray, seed: int | None) -> np.ndarray:
        g = torch.Generator(device=self.device_).manual_seed(self.config.seed if seed is None else seed)
        self.decoder_.eval()
        out = []
        for chunk in np.array_split(labels, max(1, -(-len(labels) // self.config.sample_batch_size))):
            y = torch.as_tensor(chunk, device=self.device_)
            z = torch.randn((len(chunk), self.config.latent_dim), generator=g, device=self.device_)
            out.append(to_uint8_images(torch.sigmoid(self.decoder_(z, y)) * 2 - 1))
        h, w, c = self.image_shape_
        return np.concatenate(out) if out else np.zeros((0, h, w, c), np.uint8)
