"""Executors run a study's stages. Stage code never knows which executor runs it.

The interface is one method: ``run(stages, run_stage)`` where ``stages`` is a topologically ordered
list and ``run_stage(stage)`` does one stage (idempotent: a finished stage returns its record at once).
The local executor runs them in order in-process; a distributed executor (e.g. Ray) can submit each
stage as a task once its inputs are done, using ``stage.resources`` — without changing stage code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from synthmed.errors import unknown_name
from synthmed.study.graph import Stage

RunStage = Callable[[Stage], dict[str, Any]]


class Executor(Protocol):
    name: str

    def run(self, stages: list[Stage], run_stage: RunStage, *, on_done: Callable[[Stage, dict], None] | None = None) -> dict[str, dict]:
        """Run every stage (inputs first); return {stage.key: record}."""
        ...


class LocalExecutor:
    """Runs stages one after another in this process (the default)."""

    name = "local"

    def run(self, stages, run_stage, *, on_done=None):
        records: dict[str, dict] = {}
        for stage in stages:
            records[stage.key] = run_stage(stage)
            if on_done is not None:
                on_done(stage, records[stage.key])
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
