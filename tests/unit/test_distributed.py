"""Data-parallel training plugs into the shared loop through its hooks (synthmed.distributed), checked on
simulated ranks in one process on real PneumoniaMNIST images (the 2-process run: tests/integration/test_ddp.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthmed.distributed import DataParallelHooks, DistContext, fit_data_parallel
from synthmed.errors import ConfigError
from synthmed.generators import make_generator
from synthmed.loop import BatchSampler, LoopState


def _real(pneumonia_50shot, n=32):
    train = pneumonia_50shot["train"]
    return train.images[:n], train.labels[:n]


def _scale(p, weight):  # this rank's weighted gradient, as all_reduce would contribute it
    p.grad.mul_(weight)


@pytest.mark.parametrize("family", ["cvae", "cgan"])
def test_a_simulated_rank_leaves_the_generator_as_a_plain_fit_does(pneumonia_50shot, tmp_path, family):
    images, labels = _real(pneumonia_50shot)
    cfg = {"tiny": True, "device": "cpu", "batch_size": 8, "max_steps": 2, "checkpoint_every": 1}
    plain = make_generator(family, cfg).fit(images, labels, out_dir=tmp_path / "plain")
    for r in (0, 1):
        gen = make_generator(family, cfg)
        fit_data_parallel(gen, images, labels, ctx=DistContext(rank=r, world_size=2), reducer=_scale,
                          out_dir=tmp_path / f"rank{r}")
        assert set(vars(gen)) == set(vars(plain))  # nothing patched onto the instance
        assert gen.loop_hooks_ is None and gen.fitted_ and gen.steps_done_ == 2
        for obj in gen._stateful().values():
            if isinstance(obj, BatchSampler):  # unsharded again: whole batches
                assert len(obj.next()) == obj.batch_size == 8
            if isinstance(obj, torch.nn.Module):  # no gradient hook left behind
                assert all(not getattr(p, "_post_accumulate_grad_hooks", None) for p in obj.parameters())
    assert (tmp_path / "rank0" / "checkpoint.pt").exists()
    assert not (tmp_path / "rank1").exists()  # only rank 0 writes checkpoints


def test_hooks_shard_reseed_and_refuse_a_batch_smaller_than_the_world():
    sampler, noise = BatchSampler(20, 6, seed=0), torch.Generator().manual_seed(5)
    reference = BatchSampler(20, 6, seed=0)
    hooks = DataParallelHooks(DistContext(rank=1, world_size=3), reducer=None)
    hooks.on_loop_begin(LoopState({"sampler": sampler}, noise, seed=5, start_step=0))
    assert np.array_equal(sampler.next(), reference.next()[1::3]) and hooks.shards.weight == pytest.approx(1 / 3)
    assert not torch.equal(torch.randn(4, generator=noise), torch.randn(4, generator=torch.Generator().manual_seed(5)))
    assert not hooks.writes_checkpoints
    hooks.on_loop_end()
    assert len(sampler.next()) == 6
    with pytest.raises(ConfigError, match="batch of 2 images cannot be split over 3 processes"):
        hooks.on_loop_begin(LoopState({"sampler": BatchSampler(9, 2, seed=0)}))
