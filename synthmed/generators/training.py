"""Pieces every generator family's training loop shares: tensor conversion, budgets, EMA,
finite-loss guard, seeded batch order, checkpoint plumbing.

Kept here (not copied per family) so the GAN, VAE and diffusion loops read the same way.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthmed.errors import TrainingDivergedError
from synthmed.utils.checkpoint import load_checkpoint_file, save_checkpoint_file


# -- tensors -----------------------------------------------------------------------------------
def to_model_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(N, H, W, C) uint8 → (N, C, H, W) float32 in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


def to_uint8_images(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) float in [-1, 1] → (N, H, W, C) uint8 (clipped, rounded)."""
    x = ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def grid_labels(num_classes: int, per_class: int) -> np.ndarray:
    """Labels for a one-row-per-class grid: [0]*per_class + [1]*per_class + ..."""
    return np.repeat(np.arange(num_classes), per_class)


# -- budgets -----------------------------------------------------------------------------------
class TrainingBudget:
    """Stops training at ``max_steps`` optimiser steps or ``max_minutes`` wall time, whichever first.

    Families compare at equal compute only when the budget is explicit; the study records both the
    budget and the steps actually done.
    """

    def __init__(self, max_steps: int, max_minutes: float | None = None):
        self.max_steps = int(max_steps)
        self.max_minutes = max_minutes
        self._t0 = time.perf_counter()
        self.stopped_by: str | None = None

    def elapsed_s(self) -> float:
        return time.perf_counter() - self._t0

    def done(self, step: int) -> bool:
        if step >= self.max_steps:
            self.stopped_by = "max_steps"
            return True
        if self.max_minutes is not None and self.elapsed_s() >= 60.0 * self.max_minutes:
            self.stopped_by = "max_minutes"
            return True
        return False


def check_finite(scalars: dict[str, float], step: int, family: str, checkpoint: Path | None = None) -> None:
    """Divergence guard: raise a one-line error when any loss is NaN/Inf."""
    bad = [k for k, v in scalars.items() if v is not None and not math.isfinite(float(v))]
    if bad:
        where = f"; the last good checkpoint is kept at {checkpoint}" if checkpoint and checkpoint.exists() else ""
        raise TrainingDivergedError(
            f"{family} diverged at step {step}: {', '.join(bad)} became NaN/Inf{where}. "
            "Lower the learning rate or try a more stable family (e.g. wgan-gp)."
        )


# -- data order --------------------------------------------------------------------------------
class BatchSampler:
    """Endless seeded shuffled batches of indices (reshuffled each epoch; batches never span epochs).

    Its state (epoch, position, RNG) is saved in checkpoints so resume continues the same order.
    """

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n = n
        self.batch_size = min(batch_size, n)
        self.rng = np.random.default_rng(seed)
        self.epoch = 0
        self._perm = self.rng.permutation(n)
        self._pos = 0

    def next(self) -> np.ndarray:
        if self._pos + self.batch_size > self.n:
            self.epoch += 1
            self._perm = self.rng.permutation(self.n)
            self._pos = 0
        idx = self._perm[self._pos : self._pos + self.batch_size]
        self._pos += self.batch_size
        return idx

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "pos": self._pos, "perm": self._perm.copy(),
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self._pos, self._perm = state["epoch"], state["pos"], np.asarray(state["perm"])
        self.rng.bit_generator.state = state["rng"]


# -- EMA ---------------------------------------------------------------------------------------
def make_ema(model: torch.nn.Module, decay: float, warmup: bool = False) -> torch.optim.swa_utils.AveragedModel:
    """Exponential moving average of ``model``'s weights (torch's AveragedModel; buffers tracked too).

    With ``warmup`` the decay ramps up as min(decay, (1 + n) / (10 + n)) after n updates (the
    ``num_updates`` rule of TensorFlow's ExponentialMovingAverage), so in short runs the average is not
    dominated by the untrained initial weights.
    """
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    if not warmup:
        return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    @torch.no_grad()
    def ramped(ema_params, params, num_averaged):
        d = min(decay, (1.0 + float(num_averaged)) / (10.0 + float(num_averaged)))
        if torch.is_floating_point(ema_params[0]):  # AveragedModel groups tensors by dtype
            torch._foreach_lerp_(ema_params, params, 1.0 - d)  # ema = d * ema + (1 - d) * param
        else:  # integer buffers (BatchNorm's num_batches_tracked) follow the model
            torch._foreach_copy_(ema_params, params)

    return AveragedModel(model, multi_avg_fn=ramped, use_buffers=True)


# -- RNG state for exact resume ------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])


def save_checkpoint(path: Path, blob: dict[str, Any]) -> Path:
    """Atomic checkpoint write (temp file + rename): a killed run never leaves half a checkpoint.
    Tensors + JSON (synthmed.utils.checkpoint), never a pickle."""
    return save_checkpoint_file(path, blob, kind="generator")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A generator checkpoint; anything else (a pickle, a truncated file) is refused with one line."""
    return load_checkpoint_file(path, kind="generator")


# -- the loop every family drives ----------------------------------------------------------------
def run_training_loop(*, family: str, start_step: int, budget: TrainingBudget, step_fn, callbacks,
                      grid_every: int = 0, grid_fn=None, checkpoint_every: int = 0, checkpoint_fn=None,
                      checkpoint_path: Path | None = None) -> int:
    """Call ``step_fn(step) -> scalars`` until ``budget`` is spent; emit events, grids and checkpoints.

    The loop owns the event order (on_train_begin → on_step/on_grid per step → on_train_end), the
    divergence guard and the checkpoint cadence, so every family reads the same way.

    Args:
        family: registry name, used in events and error messages.
        start_step: steps already done (non-zero after a resume).
        budget: stops the loop at ``max_steps`` or ``max_minutes``.
        step_fn: one optimiser step; returns ``{name: float}`` scalars.
        callbacks: a ``CallbackList``.
        grid_every: steps between ``grid_fn(step)`` calls (0 = never).
        checkpoint_every: steps between ``checkpoint_fn(step)`` calls (0 = only at the end).
        checkpoint_path: the checkpoint file named in the divergence error.

    Returns:
        The total number of steps done (including those before a resume).
    """
    step = start_step
    callbacks.on_train_begin(budget.max_steps, {"family": family, "start_step": start_step})
    while not budget.done(step):
        scalars = step_fn(step)
        step += 1
        check_finite(scalars, step, family, checkpoint_path)
        callbacks.on_step(step, scalars)
        if grid_fn is not None and grid_every and step % grid_every == 0:
            grid_fn(step)
        if checkpoint_fn is not None and checkpoint_every and step % checkpoint_every == 0:
            checkpoint_fn(step)
    if checkpoint_fn is not None and step > start_step:
        checkpoint_fn(step)
    callbacks.on_train_end({"family": family, "steps": step, "stopped_by": budget.stopped_by,
                            "seconds": budget.elapsed_s()})
    return step


# -- fit / checkpoint / save / load plumbing for torch families -----------------------------------
CHECKPOINT_NAME = "checkpoint.pt"
# Config keys that may change between a run and its resume (budgets and logging cadence).
RESUMABLE_KEYS = ("device", "max_steps", "max_minutes", "grid_every", "checkpoint_every")


class TorchGeneratorMixin:
    """Shared plumbing for a ``ConditionalGenerator`` built from torch modules.

    A family implements ``_build(num_classes, image_shape)`` (creates its ``*_`` nets, optimiser
    and ``sampler_``/``rng_``) and ``_stateful()`` (name → object with ``state_dict``). The mixin
    then gives exact resume, atomic checkpoints and ``save``/``load`` that rebuild from the file alone.
    """

    def _stateful(self) -> dict[str, Any]:
        raise NotImplementedError

    def _build(self, num_classes: int, image_shape: tuple[int, int, int]) -> None:
        raise NotImplementedError

    def _blob(self, step: int) -> dict[str, Any]:
        return {
            "family": self.name, "config": self.config.model_dump(), "step": int(step),
            "meta": {"num_classes": self.num_classes_, "image_shape": tuple(self.image_shape_)},
            "state": {k: v.state_dict() for k, v in self._stateful().items()},
            "noise_rng": self.rng_.get_state(), "rng": rng_state(),
        }

    def _restore(self, blob: dict[str, Any], global_rng: bool = True) -> int:
        for k, v in self._stateful().items():
            v.load_state_dict(blob["state"][k])
        self.rng_.set_state(blob["noise_rng"])
        if global_rng:  # resume only; load() must not reseed the caller's global RNG
            set_rng_state(blob["rng"])
        self.steps_done_ = int(blob["step"])
        return self.steps_done_

    def _begin_fit(self, images: np.ndarray, labels: np.ndarray, out_dir, resume: bool) -> int:
        """Validate, build everything fresh (a second ``fit`` starts over) and resume when asked.

        Returns the step to start from (0, or the step stored in ``out_dir/checkpoint.pt``).
        """
        from synthmed.errors import ConfigError
        from synthmed.utils.runtime import configure_torch_cpu, resolve_device

        images, labels = self.check_training_data(images, labels)
        configure_torch_cpu()
        self.device_ = resolve_device(self.config.device)
        torch.manual_seed(self.config.seed)  # weight init
        self._build(int(labels.max()) + 1, tuple(int(s) for s in images.shape[1:]))
        self.steps_done_ = 0
        self.checkpoint_path_ = Path(out_dir) / CHECKPOINT_NAME if out_dir is not None else None
        if not (resume and self.checkpoint_path_ is not None and self.checkpoint_path_.exists()):
            return 0
        blob = load_checkpoint(self.checkpoint_path_)
        mine, theirs = self.config.model_dump(), dict(blob["config"])
        diff = sorted(k for k in mine if k not in RESUMABLE_KEYS and mine[k] != theirs.get(k))
        if blob.get("family") != self.name or diff or blob["meta"]["num_classes"] != self.num_classes_:
            raise ConfigError(
                f"cannot resume {self.name} from {self.checkpoint_path_}: it was trained as "
                f"{blob.get('family')} with different {', '.join(diff) or 'data'}; use a new out_dir or resume=False"
            )
        return self._restore(blob)

    def _write_checkpoint(self, step: int) -> None:
        self.steps_done_ = int(step)
        if self.checkpoint_path_ is not None:
            save_checkpoint(self.checkpoint_path_, self._blob(step))

    def save(self, path) -> None:
        """Write weights, EMA, optimiser, RNG state, config and meta to ``path`` atomically."""
        self.check_is_fitted()
        save_checkpoint(Path(path), self._blob(self.steps_done_))

    @classmethod
    def load(cls, path):
        """Rebuild a fitted generator from a file written by ``save`` (or a training checkpoint)."""
        from synthmed.errors import DataNotFoundError, SynthmedError
        from synthmed.utils.runtime import resolve_device

        path = Path(path)
        if not path.exists():
            raise DataNotFoundError(f"no {cls.name} checkpoint at {path}; train one with fit() first")
        blob = load_checkpoint(path)
        if blob.get("family") != cls.name:
            raise SynthmedError(f"{path} holds a '{blob.get('family')}' generator, not '{cls.name}'; "
                                "use synthmed.generators.load_generator(path)")
        gen = cls(config=blob["config"])
        gen.device_ = resolve_device(gen.config.device)
        gen._build(blob["meta"]["num_classes"], tuple(blob["meta"]["image_shape"]))
        gen.checkpoint_path_ = None
        gen._restore(blob, global_rng=False)
        gen.fitted_ = True
        return gen
