"""TensorBoard logs of a stage that is restarted after a kill: one curve, no stale event file."""

from __future__ import annotations

import pytest

from synthmed.callbacks import TensorBoardLogger

pytest.importorskip("tensorboard")


def _scalar_steps(log_dir, tag="loss"):
    """Steps of ``tag`` as TensorBoard shows them (its EventAccumulator, which honours purge_step)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def _attempt(log_dir, start, stop, *, killed=False):
    tb = TensorBoardLogger(log_dir)
    tb.on_train_begin(stop, {"start_step": start})
    for step in range(start + 1, stop + 1):
        tb.on_step(step, {"loss": 1.0 / step})
    if killed:  # the process dies: no on_train_end, but what was written reaches the disk
        tb._writer.flush()
    else:
        tb.on_train_end({})


def test_a_fresh_restart_removes_the_killed_attempts_event_file(tmp_path):
    log_dir = tmp_path / "tensorboard"
    _attempt(log_dir, 0, 7, killed=True)
    assert len(list(log_dir.glob("events.out.tfevents.*"))) == 1
    _attempt(log_dir, 0, 5)  # the stage restarts from scratch (no checkpoint)
    assert len(list(log_dir.glob("events.out.tfevents.*"))) == 1
    assert _scalar_steps(log_dir) == [1, 2, 3, 4, 5]


def test_a_resumed_attempt_keeps_history_before_the_checkpoint_once(tmp_path):
    log_dir = tmp_path / "tensorboard"
    _attempt(log_dir, 0, 7, killed=True)  # checkpoint at step 4, killed at step 7
    _attempt(log_dir, 4, 9)
    assert _scalar_steps(log_dir) == list(range(1, 10))  # steps 5..7 of the killed attempt are purged
