"""Data-parallel training over 2 CPU processes (torchrun, gloo) on real PneumoniaMNIST images.

The test launches this very file under torchrun (see ``worker`` at the bottom), then checks, in this
process, that each rank's loss and weights after one step equal a single process replaying the same
global batch shard by shard (same noise per shard) and stepping on the combined gradient.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from synthmed.callbacks import History
from synthmed.distributed import DistContext, fit_data_parallel, init_distributed, shutdown_distributed
from synthmed.generators import load_generator, make_generator

pytestmark = pytest.mark.integration
WORLD = 2
FAMILIES = {"cgan": {"batch_size": 8}, "ddpm": {"batch_size": 16}}  # tiny configs; shards of 4 and 8 images


def few_real_images(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """32 real PneumoniaMNIST training images, 16 per class (seeded)."""
    from synthmed.data import load_dataset

    data = load_dataset("pneumoniamnist", data_dir=data_dir)
    rng = np.random.default_rng(0)
    idx = np.concatenate([rng.choice(np.flatnonzero(data.labels == k), 16, replace=False) for k in (0, 1)])
    return data.images[idx], data.labels[idx]


def tiny(family: str, **over):
    return make_generator(family, {"tiny": True, **FAMILIES[family], "device": "cpu", **over})


def params(gen) -> dict[str, torch.Tensor]:
    """Every trainable tensor of the generator (nets and EMA copies), by name."""
    out = {}
    for part, obj in gen._stateful().items():
        if isinstance(obj, torch.nn.Module):
            out.update({f"{part}.{k}": v.detach().clone() for k, v in obj.state_dict().items()})
    return out


# -- the single-process reference ----------------------------------------------------------------
class ReplayReducer:
    """Simulates the all-reduce for rank r in one process. Gradients are keyed by (optimiser steps
    so far, parameter name): events before ``upto`` get the combined gradient of all ranks, event
    ``upto`` is recorded (weighted by the rank's batch share) so the caller can combine it."""

    def __init__(self, gen, known: dict, upto: int):
        self.gen, self.known, self.upto, self.event, self.recorded, self.names = gen, known, upto, 0, {}, None

    def __call__(self, p: torch.nn.Parameter, weight: float) -> None:
        if self.names is None:  # first call: the family has built its nets and optimisers
            parts = self.gen._stateful()
            self.names = {id(t): f"{k}.{n}" for k, m in parts.items() if isinstance(m, torch.nn.Module)
                          for n, t in m.named_parameters()}
            for o in parts.values():
                if isinstance(o, torch.optim.Optimizer):
                    o.register_step_post_hook(lambda *_: setattr(self, "event", self.event + 1))
        key = (self.event, self.names[id(p)])
        if self.event < self.upto:
            p.grad.copy_(self.known[key])
        elif self.event == self.upto:
            self.recorded[key] = weight * p.grad.detach().clone()


def replay(family: str, images, labels, known: dict, upto: int, rank: int):
    gen, hist = tiny(family, max_steps=1), History()
    red = ReplayReducer(gen, known, upto)
    fit_data_parallel(gen, images, labels, ctx=DistContext(rank=rank, world_size=WORLD), reducer=red,
                      callbacks=hist)
    return gen, hist.rows[-1], red.recorded


def single_process_reference(family: str, images, labels):
    """Per rank: (weights, scalars) after one step of the replayed data-parallel step."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the torchrun workers (OMP_NUM_THREADS=1): same kernels, same sums
    try:
        return _replay_all(family, images, labels)
    finally:
        torch.set_num_threads(threads)


def _replay_all(family: str, images, labels):
    known: dict = {}
    for upto in range(16):  # one round per optimiser step in a training step (GAN: D then G)
        rec = [replay(family, images, labels, known, upto, r)[2] for r in range(WORLD)]
        if not rec[0]:
            break
        known.update({k: sum(r[k] for r in rec) for k in rec[0]})
    finals = [replay(family, images, labels, known, upto, r) for r in range(WORLD)]
    return [(params(g), s) for g, s, _ in finals]


# -- the tests ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def torchrun_out(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("ddp")
    images, labels = few_real_images(data_dir)
    # a checkpoint written by one process, for the 2-process run to resume from
    tiny("ddpm", max_steps=2, checkpoint_every=1).fit(images, labels, out_dir=out / "from1")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SYNTHMED_DATA_DIR": str(data_dir)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
           __file__, str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, images, labels


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_one_step_equals_single_process_on_the_global_batch(torchrun_out, family):
    out, images, labels = torchrun_out
    ranks = [torch.load(out / f"{family}-rank{r}.pt") for r in range(WORLD)]
    reference = single_process_reference(family, images, labels)
    for r, (got, (want_w, want_s)) in enumerate(zip(ranks, reference)):
        for name, w in want_w.items():
            torch.testing.assert_close(got["weights"][name], w, rtol=1e-5, atol=1e-6, msg=f"rank {r} {name}")
    for name in ranks[0]["weights"]:  # trainable weights agree across ranks (BN statistics are per rank)
        if "running" not in name and "num_batches" not in name:
            torch.testing.assert_close(ranks[0]["weights"][name], ranks[1]["weights"][name], rtol=0, atol=0)
    logged = ranks[0]["scalars"]  # rank 0 logs the global-batch mean
    for k, v in logged.items():
        if k != "step":
            assert v == pytest.approx(sum(s[k] for _, s in reference) / WORLD, rel=1e-5, abs=1e-7), k
    assert ranks[1]["scalars"] is None  # only rank 0 logs


def test_resume_across_world_sizes(torchrun_out):
    out, images, labels = torchrun_out
    two = load_generator(out / "from1" / "after.pt")  # 2 processes resumed a 1-process checkpoint
    assert two.steps_done_ == 3
    gen = tiny("ddpm", max_steps=3, checkpoint_every=1)  # 1 process resumes a 2-process checkpoint
    fit_data_parallel(gen, images, labels, out_dir=out / "from2", resume=True)
    assert gen.steps_done_ == 3 and gen.fitted_


# -- torchrun entry point ----------------------------------------------------------------------
def worker(out: Path) -> None:
    ctx = init_distributed("cpu")
    assert ctx.world_size == WORLD and ctx.backend == "gloo"
    images, labels = few_real_images(Path(os.environ["SYNTHMED_DATA_DIR"]))
    for family in FAMILIES:
        gen, hist = tiny(family, max_steps=1), History()
        fit_data_parallel(gen, images, labels, ctx=ctx, callbacks=hist)
        scalars = hist.rows[-1] if ctx.is_main else None
        torch.save({"weights": params(gen), "scalars": scalars}, out / f"{family}-rank{ctx.rank}.pt")
    gen = tiny("ddpm", max_steps=3, checkpoint_every=1)
    fit_data_parallel(gen, images, labels, ctx=ctx, out_dir=out / "from1", resume=True)
    if ctx.is_main:
        gen.save(out / "from1" / "after.pt")
    gen = tiny("ddpm", max_steps=2, checkpoint_every=1)
    fit_data_parallel(gen, images, labels, ctx=ctx, out_dir=out / "from2")
    shutdown_distributed()


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
