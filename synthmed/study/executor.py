"""Executors run a study's stages. Stage code never knows which executor runs it.

The interface is one method: ``run(stages, run_stage)`` where ``stages`` is a topologically ordered
list and ``run_stage(stage)`` does one stage (idempotent: a finished stage returns its record at once).
The local executor runs them in order in-process; a distributed executor (e.g. Ray) can submit each
stage as a task once its inputs are done, using ``stage.resources`` — without changing stage code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from synthmed.errors import ConfigError, unknown_name
from synthmed.study.graph import Stage

RunStage = Callable[[Stage], dict[str, Any]]


class Executor(Protocol):
    name: str

    def run(self, stages: list[Stage], run_stage: RunStage, *, on_done: Callable[[Stage, dict], None] | None = None) -> dict[str, dict]:
        """Run every stage (inputs first); return {stage.key: record}."""
        ...


def default_workers(device: str = "auto") -> int:
    """Stages side by side by default: 2 one-thread workers on a CPU with 2+ cores (measured alone on a 2-core CPU,
    two one-thread stages did 1.13-1.46x the work per second of one two-thread stage for every stage kind of the
    default study: bench/RESULTS.md ``threads-workers``); 1 on a GPU."""
    import os

    import torch

    if device != "cpu" and torch.cuda.is_available():
        return 1
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def default_threads(workers: int) -> int:
    """torch threads per stage: the cores shared out over the workers."""
    import os

    return max(1, (os.cpu_count() or 1) // workers)


# Which ready stage a worker takes first: the earliest seed first (each k-shot draw completes before the next
# starts, so a study stopped early still holds whole draws, and `seeds: [...]` over the same folder reports
# them), and within a seed long kinds first, so none is left alone at the end of the draw.
_KIND_PRIORITY = {"split": 0, "samples_file": 1, "generator": 2, "extractor": 3, "reference": 4, "samples": 5,
                  "classify": 6, "fidelity": 7}


def _die_with_parent(parent_pid: int) -> None:
    """Pool initializer: a worker dies with the ``synthmed run`` that started it. Without this, a run ended by
    SIGTERM or ``kill -9`` left its workers running their stages as orphans, which a resumed run could meet
    writing the same stage folder. Linux's parent-death signal does it (the stdlib pool has no such option); a
    killed worker leaves no ``stage.json``, so the resumed run redoes its stage."""
    import os
    import sys

    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1  # <linux/prctl.h>
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL))
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)


def _priority(stage: Stage) -> tuple:
    seed = stage.labels.get("seed")
    return (seed if isinstance(seed, int) else 0, _KIND_PRIORITY.get(stage.kind, 9))


class LocalExecutor:
    """Runs stages on this machine: in order in this process (``workers=1``, the default), or side by side in
    ``workers`` processes, each stage as soon as its inputs are done. Stage results do not depend on the
    worker count: a stage's numbers depend only on its config, inputs and thread count."""

    name = "local"

    def __init__(self, workers: int | None = 1):
        workers = default_workers() if workers is None else workers
        if workers < 1:
            raise ConfigError(f"workers must be at least 1, got {workers}")
        self.workers = workers

    def run(self, stages, run_stage, *, on_done=None):
        if self.workers == 1:
            return self._run_in_order(stages, run_stage, on_done)
        return self._run_in_pool(stages, run_stage, on_done)

    @staticmethod
    def _run_in_order(stages, run_stage, on_done):
        records: dict[str, dict] = {}
        for stage in stages:
            records[stage.key] = run_stage(stage)
            if on_done is not None:
                on_done(stage, records[stage.key])
        return records

    def _run_in_pool(self, stages, run_stage, on_done):
        """A small dependency-driven scheduler over a process pool (the stdlib's ``concurrent.futures`` has no
        task graph; Ray has one, but is an optional extra that costs seconds to start on a laptop)."""
        import multiprocessing as mp
        import os
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        records: dict[str, dict] = {}
        waiting = list(stages)
        running: dict = {}
        # spawn, not fork: a forked child inherits the parent's OpenMP thread pool and torch state
        with ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"), initializer=_die_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            try:
                while waiting or running:
                    ready = sorted((s for s in waiting if all(d.key in records for d in s.inputs.values())),
                                   key=_priority)
                    for stage in ready[: self.workers - len(running)]:
                        waiting.remove(stage)
                        running[pool.submit(run_stage, stage)] = stage
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for fut in done:
                        stage = running.pop(fut)
                        records[stage.key] = fut.result()  # a stage's own error ends the study with that error
                        if on_done is not None:
                            on_done(stage, records[stage.key])
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return records


def _ray_executor(**options: Any) -> Executor:
    """Lazy factory: Ray (an optional extra) is imported only when the "ray" executor is chosen."""
    from synthmed.study.ray_executor import RayExecutor

    return RayExecutor(**options)


EXECUTORS: dict[str, Callable[..., Executor]] = {"local": LocalExecutor, "ray": _ray_executor}


def make_executor(name: str, **options: Any) -> Executor:
    if name not in EXECUTORS:
        raise unknown_name("executor", name, EXECUTORS)
    return EXECUTORS[name](**options)
