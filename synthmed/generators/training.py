"""What every torch generator family shares on top of the training loop (``synthmed.loop``):
tensor conversion, grid labels, and the fit/checkpoint/resume/save/load plumbing of
:class:`TorchGeneratorMixin`.

Kept here (not copied per family) so the GAN, VAE and diffusion families read the same way.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from synthmed.loop import (
    LoopHooks, LoopState, TrainingBudget, load_checkpoint, rng_state, run_training_loop, save_checkpoint, set_rng_state,
)


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


# -- fit / checkpoint / save / load plumbing for torch families -----------------------------------
CHECKPOINT_NAME = "checkpoint.pt"
# Config keys that may change between a run and its resume (budgets and logging cadence).
RESUMABLE_KEYS = ("device", "max_steps", "max_minutes", "grid_every", "checkpoint_every")


class TorchGeneratorMixin:
    """Shared plumbing for a ``ConditionalGenerator`` built from torch modules.

    A family implements ``_build(num_classes, image_shape)`` (creates its ``*_`` nets, optimiser
    and ``sampler_``/``rng_``) and names what a checkpoint holds in ``state_attrs`` (or overrides
    ``_stateful()``: name → object with ``state_dict``), then ends ``fit`` with :meth:`_train`. The
    mixin gives exact resume, atomic checkpoints and ``save``/``load`` that rebuild from the file alone.

    Extension point: ``with gen.loop_hooks(hooks): gen.fit(...)`` plugs a :class:`synthmed.loop.LoopHooks`
    into the training loop (data-parallel training does; see ``synthmed.distributed``).
    """

    state_attrs: ClassVar[dict[str, str]] = {}  # checkpoint key → attribute; unset attributes are skipped
    loop_hooks_: LoopHooks | None = None

    def _stateful(self) -> dict[str, Any]:
        return {k: getattr(self, a) for k, a in self.state_attrs.items() if getattr(self, a, None) is not None}

    @contextmanager
    def loop_hooks(self, hooks: LoopHooks):
        """Run the ``fit`` calls inside this block with ``hooks`` in their training loop."""
        self.loop_hooks_ = hooks
        try:
            yield self
        finally:
            vars(self).pop("loop_hooks_", None)  # back to the class default (None)

    def _train(self, start: int, budget: TrainingBudget, step_fn, callbacks, grid_fn, *, grid_every: int | None = None,
               checkpoint_fn=None):
        """Drive the shared loop from step ``start``; record ``steps_done_``/``stopped_by_``; set ``fitted_``."""
        c = self.config
        write = (checkpoint_fn or self._write_checkpoint) if self.checkpoint_path_ is not None else None
        self.steps_done_ = run_training_loop(
            family=self.name, start_step=start, budget=budget, step_fn=step_fn, callbacks=callbacks,
            grid_every=c.grid_every if grid_every is None else grid_every, grid_fn=grid_fn,
            checkpoint_every=c.checkpoint_every, checkpoint_fn=write, checkpoint_path=self.checkpoint_path_,
            hooks=self.loop_hooks_, state=LoopState(self._stateful(), self.rng_, c.seed, start))
        self.stopped_by_ = budget.stopped_by  # "max_steps" or "max_minutes", recorded by the study
        self.fitted_ = True
        return self

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
