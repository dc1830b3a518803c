"""Data-parallel training of one generator over several processes/GPUs (``synthmed train --devices N``).

Launcher: ``torchrun`` (``torch.distributed.run``), which ships with torch — Lightning Fabric would
add a dependency and want to own the training loop, while every family here already owns its loop.
Backend: gloo on CPU, NCCL on CUDA. One process per device; each holds a full replica.

How it plugs into a family without editing it: through the training loop's extension point
(:class:`DataParallelHooks`, a ``synthmed.loop.LoopHooks``, given to the family's loop with
``gen.loop_hooks(...)``; every torch family shares ``TorchGeneratorMixin``), and through
``BatchSampler.set_shard``. :func:`fit_data_parallel` wraps ``gen.fit`` this way:

* **Sharding** — every rank draws the same *global* batch from the family's seeded ``BatchSampler``
  and keeps its slice ``idx[rank::world]`` (DistributedSampler-style), so the data order, and the
  sampler state in checkpoints, do not depend on the world size.
* **Gradients** — a ``register_post_accumulate_grad_hook`` on every optimised parameter all-reduces
  its gradient during ``backward()``, weighted by the rank's share of the global batch: the sum over
  ranks is the full-batch mean gradient, before the family clips it or steps its optimiser.
  This is DistributedDataParallel's algorithm (autograd hooks, all-reduce, one replica per process)
  without the ``DistributedDataParallel`` module: DDP's reducer needs exactly one forward per
  backward and does not support ``torch.autograd.grad`` (DDP docs, "Limitations"), while the GAN
  step runs the discriminator twice per backward and WGAN-GP's penalty differentiates through
  ``autograd.grad``. Wrapping would also rename every ``state_dict`` key (``module.``), breaking
  checkpoints across world sizes. Cost: one collective per parameter tensor (no bucketing), which
  is fine for the sub-10 M-parameter nets trained here.
* **Seeding** — rank 0 keeps the family's noise stream (so it is the first shard of the
  single-process run); rank r > 0 reseeds the family's noise generator (``LoopState.noise_rng``)
  from (seed, rank, start step), so ranks draw different noise and a resume at any world size gets
  fresh, reproducible streams.
* **Rank 0 only** writes checkpoints and receives callbacks (scalars are the global-batch
  averages); every rank loads the checkpoint on resume. A checkpoint holds full (unsharded) weights
  and the global sampler state, so it resumes at any world size.
* **Mixed precision** — bf16 autocast on CUDA (no loss scaler needed), float32 on CPU. fp16 would
  need a GradScaler inside each family's step and is not offered.

Known limits: BatchNorm statistics are per rank (as DDP without SyncBatchNorm, which is CUDA-only);
progression grids are computed on every rank (only rank 0 logs them).
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from synthmed.callbacks import Callback, CallbackList
from synthmed.errors import ConfigError
from synthmed.generators.training import TorchGeneratorMixin
from synthmed.loop import BatchSampler, LoopHooks, LoopState

TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


# -- process group -----------------------------------------------------------------------------
@dataclass(frozen=True)
class DistContext:
    """Where this process sits: ``rank`` of ``world_size`` (``local_rank`` on its node)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None  # None = no process group (one process, or a simulated rank)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True inside a process started by ``torchrun`` (its rank variables are set)."""
    return all(k in os.environ for k in TORCHRUN_ENV)


def torchrun_command(devices: int, argv: list[str], module: str = "synthmed.cli") -> list[str]:
    """The command that reruns ``python -m module *argv`` as ``devices`` processes on this node.

    ``--standalone`` makes torchrun pick a free local port (no rendezvous server to set up).
    """
    if devices < 1:
        raise ConfigError(f"--devices must be ≥ 1; got {devices}")
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={devices}",
            "-m", module, *argv]


def init_distributed(device: str = "auto") -> DistContext:
    """Join the process group torchrun set up (gloo on CPU, NCCL on CUDA); one process → no group.

    On CUDA each process takes GPU ``local_rank``, so ``device="auto"``/"cuda" means its own GPU.
    """
    import torch.distributed as dist

    if not launched_by_torchrun():
        return DistContext()
    rank, world, local = (int(os.environ[k]) for k in TORCHRUN_ENV)
    cuda = torch.cuda.is_available() and device != "cpu"
    if cuda:
        torch.cuda.set_device(local)
    backend = "nccl" if cuda else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(rank=rank, world_size=world, local_rank=local, backend=backend)


def shutdown_distributed() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


# -- gradient and scalar reduction ---------------------------------------------------------------
GradReducer = Callable[[torch.nn.Parameter, float], None]  # (param whose .grad is ready, rank weight)


def all_reduce_grad(param: torch.nn.Parameter, weight: float) -> None:
    """``grad ← Σ_ranks weight_r · grad_r``: the full-batch mean gradient when weight_r = n_r / N."""
    import torch.distributed as dist

    param.grad.mul_(weight)
    dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)


class _ReducedScalars(Callback):
    """Every rank calls ``on_step``; scalars are averaged over ranks (weighted by batch share) and
    only rank 0 forwards events to the real callbacks."""

    def __init__(self, inner: CallbackList | None, shard: "_Shards", reduce: bool):
        self.inner, self.shard, self.reduce = inner, shard, reduce

    def on_train_begin(self, total_steps, info):
        if self.inner is not None:
            self.inner.on_train_begin(total_steps, info)

    def on_step(self, step, scalars):
        if self.reduce:
            import torch.distributed as dist

            keys = sorted(scalars)  # same keys on every rank: the same code ran on each
            t = torch.tensor([float(scalars[k]) * self.shard.weight for k in keys], dtype=torch.float64)
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
            scalars = dict(zip(keys, t.tolist()))
        if self.inner is not None:
            self.inner.on_step(step, scalars)

    def on_grid(self, step, grid, tag):
        if self.inner is not None:
            self.inner.on_grid(step, grid, tag)

    def on_train_end(self, info):
        if self.inner is not None:
            self.inner.on_train_end(info)


# -- sharding ----------------------------------------------------------------------------------
class _Shards:
    """Installed with ``BatchSampler.set_shard``: keeps this rank's slice of each global batch and
    remembers the slice's share of the batch (the weight of this rank's gradient)."""

    def __init__(self, rank: int, world: int):
        self.rank, self.world, self.weight = rank, world, 1.0 / world

    def attach(self, sampler: BatchSampler) -> None:
        if sampler.batch_size < self.world:
            raise ConfigError(f"batch of {sampler.batch_size} images cannot be split over {self.world} processes; "
                              "raise batch_size or lower --devices")
        sampler.set_shard(self)

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        mine = idx[self.rank :: self.world]  # idx is the global batch: identical on every rank
        self.weight = len(mine) / len(idx)
        return mine


def rank_seed(seed: int, rank: int, step: int) -> int:
    """A reproducible noise seed for ``rank`` > 0 resuming at ``step`` (rank 0 keeps the family's)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{rank}:{step}".encode()).digest()[:8], "little") >> 1


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """"auto" → bf16 on CUDA when supported, else float32; "bf16" requires CUDA; "32" is float32."""
    if precision not in ("auto", "bf16", "32"):
        raise ConfigError(f"precision must be 'auto', 'bf16' or '32'; got '{precision}'")
    cuda = device.type == "cuda"
    if precision == "bf16" and not cuda:
        raise ConfigError("bf16 mixed precision is for CUDA devices only; use precision='32' on CPU")
    if cuda and precision != "32" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


# -- the hooks the training loop calls ----------------------------------------------------------------
class DataParallelHooks(LoopHooks):
    """How one rank plugs into the training loop (``synthmed.loop.LoopHooks``), after the family has
    built (and maybe restored) its state: sync replicas, shard the batch samplers, hook gradients,
    reseed the noise of ranks > 0; only rank 0 writes checkpoints; the gradient hooks go at the end."""

    def __init__(self, ctx: DistContext, reducer: GradReducer | None):
        self.ctx, self.reducer, self.handles, self.samplers = ctx, reducer, [], []
        self.shards = _Shards(ctx.rank, ctx.world_size)
        self.writes_checkpoints = ctx.rank == 0

    def on_loop_begin(self, state: LoopState) -> None:
        modules = [m for m in state.parts.values() if isinstance(m, torch.nn.Module)]
        if self.ctx.backend is not None:  # replicas start identical, as DDP's constructor ensures
            import torch.distributed as dist

            for t in (t for m in modules for t in [*m.parameters(), *m.buffers()]):
                dist.broadcast(t.data, src=0)
        for s in state.parts.values():
            if isinstance(s, BatchSampler):
                self.shards.attach(s)
                self.samplers.append(s)
        if self.reducer is not None:
            optimised = {id(p): p for o in state.parts.values() if isinstance(o, torch.optim.Optimizer)
                         for g in o.param_groups for p in g["params"]}
            self.handles += [p.register_post_accumulate_grad_hook(self._reduce) for p in optimised.values()]
        if self.ctx.rank > 0:  # different noise per rank; rank 0 stays the single-process stream
            state.noise_rng.manual_seed(rank_seed(state.seed, self.ctx.rank, state.start_step))
            torch.manual_seed(rank_seed(state.seed + 1, self.ctx.rank, state.start_step))

    def _reduce(self, p: torch.nn.Parameter) -> None:
        self.reducer(p, self.shards.weight)

    def on_loop_end(self) -> None:  # the generator is left as a single-process fit leaves it
        for h in self.handles:
            h.remove()
        for s in self.samplers:
            s.set_shard(None)
        self.handles, self.samplers = [], []


def fit_data_parallel(gen, images: np.ndarray, labels: np.ndarray, *, ctx: DistContext | None = None,
                      callbacks=None, out_dir=None, resume: bool = False, precision: str = "auto",
                      reducer: GradReducer | None = None) -> Any:
    """``gen.fit(...)`` as one rank of a data-parallel job; returns ``gen`` (identical on every rank).

    Args:
        gen: an unfitted generator built on ``TorchGeneratorMixin`` (every torch family).
        images, labels: the full training set, identical on every rank (each rank trains on its
            shard of each global batch of ``batch_size`` images).
        ctx: this process's place (default: :func:`init_distributed` from torchrun's variables).
        callbacks: used on rank 0 only; they see global-batch averaged scalars.
        out_dir: checkpoint folder (rank 0 writes, every rank reads on ``resume``); on shared storage
            when ranks span nodes.
        resume: continue from ``out_dir/checkpoint.pt``, written at any world size.
        precision: "auto" (bf16 autocast on CUDA, float32 on CPU), "bf16" or "32".
        reducer: how a ready gradient is combined across ranks (default: :func:`all_reduce_grad`
            when a process group exists). Passing one with ``ctx.backend=None`` runs rank
            ``ctx.rank`` of ``ctx.world_size`` in this one process — used to check the maths.

    Only rank 0 should ``gen.save(...)`` afterwards (``ctx.is_main``).
    """
    from synthmed.utils.runtime import resolve_device

    ctx = ctx or init_distributed(gen.config.device)
    dtype = resolve_precision(precision, resolve_device(gen.config.device))
    amp = torch.autocast("cuda", dtype=dtype) if dtype is not None else nullcontext()
    if ctx.world_size == 1 and reducer is None:
        with amp:
            return gen.fit(images, labels, callbacks=callbacks, out_dir=out_dir, resume=resume)
    if not isinstance(gen, TorchGeneratorMixin):
        raise ConfigError(f"{gen.name} does not support data-parallel training (not a torch family)")
    if reducer is None and ctx.backend is not None:
        reducer = all_reduce_grad
    hooks = DataParallelHooks(ctx, reducer)
    logs = ctx.is_main or ctx.backend is None  # a simulated rank (no process group) logs for itself
    cbs = _ReducedScalars(CallbackList(callbacks) if logs else None, hooks.shards, ctx.backend is not None)
    with amp, gen.loop_hooks(hooks):
        gen.fit(images, labels, callbacks=cbs, out_dir=out_dir, resume=resume)
    return gen
