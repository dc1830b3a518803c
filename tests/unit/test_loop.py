"""The shared training loop (synthmed/loop.py): budget, NaN guard, event order, checkpoint cadence,
hooks, batch order, EMA and exact resume, with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from synthmed.callbacks import Callback, CallbackList, History
from synthmed.errors import TrainingDivergedError
from synthmed.loop import (
    BatchSampler, LoopHooks, LoopState, TrainingBudget, load_checkpoint, make_ema, rng_state, run_training_loop,
    save_checkpoint, set_rng_state,
)


def _loop(max_steps: int, start: int = 0, **kw):
    """Run the loop with a step_fn that records which steps it was called for; returns (steps, calls, history)."""
    calls, hist = [], History()
    budget = kw.pop("budget", None) or TrainingBudget(max_steps)

    def step_fn(step):
        calls.append(step)
        return {"loss": 1.0 / (step + 1)}

    done = run_training_loop(family="test", start_step=start, budget=budget, step_fn=step_fn,
                             callbacks=CallbackList(hist), **kw)
    return done, calls, hist, budget


def test_budget_stops_at_exactly_max_steps():
    done, calls, hist, budget = _loop(7)
    assert done == 7 and calls == list(range(7)) and budget.stopped_by == "max_steps"
    assert [r["step"] for r in hist.rows] == list(range(1, 8))
    assert hist.rows[2]["loss"] == pytest.approx(1 / 3)


def test_budget_after_a_resume_runs_only_the_remaining_steps():
    done, calls, _, _ = _loop(7, start=4)
    assert done == 7 and calls == [4, 5, 6]


def test_budget_stop_ends_after_that_step_with_its_reason():
    budget = TrainingBudget(10)

    def after(step, scalars):
        if step == 3:
            budget.stop("early_stopping")
        return {**scalars, "seen": step}

    done, calls, hist, _ = _loop(10, budget=budget, after_step=after)
    assert done == 3 and calls == [0, 1, 2] and budget.stopped_by == "early_stopping"
    assert hist.rows[-1] == {"step": 3, "loss": pytest.approx(1 / 3), "seen": 3}


def test_nan_guard_raises_with_the_step_and_the_kept_checkpoint(tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    ckpt.write_bytes(b"x")

    def step_fn(step):
        return {"loss_d": 0.5, "loss_g": math.nan if step == 2 else 0.5}

    with pytest.raises(TrainingDivergedError, match=r"test diverged at step 3: loss_g became NaN/Inf; the last good "
                                                    rf"checkpoint is kept at {ckpt}"):
        run_training_loop(family="test", start_step=0, budget=TrainingBudget(9), step_fn=step_fn,
                          callbacks=CallbackList(), checkpoint_path=ckpt)


class _Events(Callback):
    def __init__(self):
        self.log = []

    def on_train_begin(self, total_steps, info):
        self.log.append(("begin", total_steps, info["start_step"]))

    def on_train_end(self, info):
        self.log.append(("end", info["steps"], info["stopped_by"]))


class _Recorder(LoopHooks):
    def __init__(self, writes: bool):
        self.writes_checkpoints, self.log = writes, []

    def on_loop_begin(self, state):
        self.log.append(("begin", state.start_step, sorted(state.parts)))

    def on_loop_end(self):
        self.log.append(("end",))


@pytest.mark.parametrize("writes", [True, False])
def test_grids_checkpoints_events_and_hooks_in_order(writes):
    grids, ckpts, events, hooks = [], [], _Events(), _Recorder(writes)
    done = run_training_loop(family="test", start_step=1, budget=TrainingBudget(5), step_fn=lambda s: {"loss": 0.0},
                             callbacks=CallbackList(events), grid_every=3, grid_fn=grids.append, checkpoint_every=2,
                             checkpoint_fn=ckpts.append, hooks=hooks, state=LoopState({"net": None}, start_step=1))
    assert done == 5 and grids == [3]
    assert ckpts == ([2, 4, 5] if writes else [])  # every 2 steps and at the end; none when the hook says so
    assert events.log == [("begin", 5, 1), ("end", 5, "max_steps")]
    assert hooks.log == [("begin", 1, ["net"]), ("end",)]


def test_hooks_end_even_when_training_raises():
    hooks = _Recorder(True)
    with pytest.raises(TrainingDivergedError):
        run_training_loop(family="test", start_step=0, budget=TrainingBudget(3), step_fn=lambda s: {"loss": math.inf},
                          callbacks=CallbackList(), hooks=hooks)
    assert hooks.log[-1] == ("end",)


def test_batch_sampler_epochs_are_permutations_and_its_state_resumes_the_order():
    whole = BatchSampler(10, 3, seed=4)
    first = [whole.next() for _ in range(9)]
    for e in range(3):  # 3 batches of 3 per epoch of 10 (the incomplete tail is dropped)
        epoch = np.concatenate(first[3 * e : 3 * e + 3])
        assert len(set(epoch.tolist())) == 9 and epoch.max() < 10
    part = BatchSampler(10, 3, seed=4)
    [part.next() for _ in range(4)]
    later = BatchSampler(10, 3, seed=99)
    later.load_state_dict(part.state_dict())
    assert all(np.array_equal(later.next(), b) for b in first[4:])


def test_batch_sampler_shard_keeps_a_slice_and_the_global_state():
    full, sharded = BatchSampler(12, 4, seed=1), BatchSampler(12, 4, seed=1)
    sharded.set_shard(lambda idx: idx[1::2])
    for _ in range(5):
        assert np.array_equal(sharded.next(), full.next()[1::2])
    assert sharded.state_dict()["pos"] == full.state_dict()["pos"]
    assert np.array_equal(sharded.state_dict()["perm"], full.state_dict()["perm"])


def _linear(w: float) -> torch.nn.Linear:
    net = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(w)
    return net


@pytest.mark.parametrize("warmup", [False, True])
def test_ema_equals_the_hand_computed_average(warmup):
    net, decay = _linear(0.0), 0.9
    ema = make_ema(net, decay, warmup=warmup)
    for w in (1.0, 3.0, -2.0):
        with torch.no_grad():
            net.weight.fill_(w)
        ema.update_parameters(net)
    # first update copies; then ema = d·ema + (1-d)·w with d = 0.9, or min(0.9, (1+n)/(10+n)) after n updates
    d1, d2 = (2 / 11, 3 / 12) if warmup else (decay, decay)
    want = d2 * (d1 * 1.0 + (1 - d1) * 3.0) + (1 - d2) * -2.0
    assert ema.module.weight.item() == pytest.approx(want, rel=1e-6)
    assert want == pytest.approx(-0.8409091 if warmup else 0.88, rel=1e-6)


# -- exact resume through the loop's checkpoint pieces, on real images ---------------------------
def _train_linear(images, labels, max_steps: int, ckpt, resume: bool):
    """Logistic regression with dropout (global torch RNG) on seeded batches; checkpoints every step."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(images.shape[1], 2))
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    sampler = BatchSampler(len(images), 16, seed=3)
    parts = {"net": net, "opt": opt, "sampler": sampler}
    start = 0
    if resume:
        blob = load_checkpoint(ckpt, kind="generator")
        for k, v in parts.items():
            v.load_state_dict(blob["state"][k])
        set_rng_state(blob["rng"])  # dropout's global RNG continues where the checkpoint left it
        start = blob["step"]

    def step_fn(step):
        idx = sampler.next()
        loss = torch.nn.functional.cross_entropy(net(images[idx]), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    def checkpoint_fn(step):
        save_checkpoint(ckpt, {"step": step, "state": {k: v.state_dict() for k, v in parts.items()},
                               "rng": rng_state()}, kind="generator")

    run_training_loop(family="linear", start_step=start, budget=TrainingBudget(max_steps), step_fn=step_fn,
                      callbacks=CallbackList(), checkpoint_every=1, checkpoint_fn=checkpoint_fn)
    return net


def test_resume_from_a_checkpoint_gives_bit_identical_weights(pneumonia_50shot, tmp_path):
    train = pneumonia_50shot["train"]
    x = torch.from_numpy(train.images.reshape(len(train), -1).astype(np.float32) / 255.0)
    y = torch.from_numpy(train.labels.astype(np.int64))
    whole = _train_linear(x, y, 9, tmp_path / "whole.pt", resume=False)
    _train_linear(x, y, 4, tmp_path / "part.pt", resume=False)
    resumed = _train_linear(x, y, 9, tmp_path / "part.pt", resume=True)
    for (k, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    shortened = _train_linear(x, y, 4, tmp_path / "short.pt", resume=False)
    assert not torch.equal(shortened[1].weight, whole[1].weight)  # the resumed steps did train
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part.pt", "short.pt", "whole.pt"]  # no temp files left
