"""Run a study's stages as Ray tasks: one task per stage, dependencies from the study graph.

Ray does the scheduling (resources, ordering, parallelism, retries); this module only maps the study
graph onto it. Each stage becomes a remote task whose arguments include its upstream stages' result
refs, so Ray starts it only after they finish, and independent stages run side by side as CPUs/GPUs
allow. A task whose worker process dies (killed, OOM, node lost) is retried by Ray up to
``max_retries`` times; stages are idempotent (atomic outputs, ``stage.json`` last, generators resume
from their checkpoint), so a retry never corrupts or duplicates an artefact. Every attempt bumps
``attempts.json`` in the stage folder, and the count goes into the record (and so the manifest).
An exception raised by stage code is not retried: the study fails with that stage's own error.

The run folder must be on storage that every Ray node mounts at the same path (see docs/scaling.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthmed.errors import ConfigError, MissingDependencyError, SynthmedError
from synthmed.study.graph import Stage
from synthmed.utils.io import write_json_atomic

ATTEMPTS_FILE = "attempts.json"


class StageFailedError(SynthmedError):
    """A stage could not finish on the Ray cluster (its worker kept dying)."""


# -- helpers -----------------------------------------------------------------------------------
def _import_ray():
    try:
        import ray
    except ModuleNotFoundError:
        raise MissingDependencyError(
            "the 'ray' executor needs Ray; install it with pip install 'synthmed[ray]' or use --executor local"
        ) from None
    return ray


def ray_options(resources: dict[str, float]) -> dict[str, Any]:
    """Map a stage's resource request ({"cpus", "gpus", "memory" in bytes}) onto ``ray.remote`` options."""
    unknown = sorted(set(resources) - {"cpus", "gpus", "memory"})
    if unknown:
        raise ConfigError(f"stage resources {unknown} are not understood; use cpus, gpus and memory (bytes)")
    opts: dict[str, Any] = {"num_cpus": float(resources.get("cpus", 1)), "num_gpus": float(resources.get("gpus", 0))}
    if resources.get("memory"):
        opts["memory"] = int(resources["memory"])
    return opts


def bump_attempts(folder: Path) -> int:
    """Count one more attempt at the stage in ``folder``; return the new count (1 on the first try)."""
    path = folder / ATTEMPTS_FILE
    n = json.loads(path.read_text())["attempts"] + 1 if path.exists() else 1
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"attempts": n, "pid": os.getpid(), "node": os.uname().nodename})
    return n


def run_stage_task(run_stage: Callable[[Stage], dict], stage: Stage, num_threads: int, *upstream: dict) -> dict:
    """The body of every Ray task: size torch's thread pool to the task's CPU share, count the
    attempt, run the (idempotent) stage. ``upstream`` records are unused: passing their refs is how
    Ray learns the order."""
    import torch

    torch.set_num_threads(max(1, num_threads))  # N tasks on N cores must not each spawn N threads
    stages_dir = getattr(run_stage, "stages_dir", None)
    attempts = None
    if stages_dir is not None and not stage.is_done(stages_dir):
        attempts = bump_attempts(stage.folder(stages_dir))
    record = run_stage(stage)
    return {**record, "attempts": attempts} if attempts is not None else {**record, "attempts": 0}


# -- the executor ------------------------------------------------------------------------------
class RayExecutor:
    """Executes stages as Ray tasks on a local Ray instance or an existing cluster.

    Args:
        address: a Ray cluster to join ("auto", "ray://host:10001" or "host:6379"); None starts a
            local instance sized to this machine (localhost only, no dashboard).
        max_retries: times Ray reruns a stage whose worker process died (exceptions are not retried).
        num_cpus: CPUs of the local instance (default: every core); ignored when joining a cluster.
        object_store_memory: bytes for the local object store; records are tiny and artefacts go
            through the run folder, so a small store suffices.
    """

    name = "ray"

    def __init__(self, address: str | None = None, *, max_retries: int = 2, num_cpus: int | None = None,
                 object_store_memory: int = 200 * 2**20):
        self.address = address
        self.max_retries = max_retries  # bounded: a stage that kills its worker every time must fail the study
        self.num_cpus = num_cpus
        self.object_store_memory = object_store_memory

    def _connect(self, ray) -> bool:
        """Start or join Ray; return True when this call started it (and so must shut it down)."""
        if ray.is_initialized():
            return False
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home
        if self.address is not None:
            ray.init(address=self.address, log_to_driver=False)
        else:
            ray.init(num_cpus=self.num_cpus or os.cpu_count(), include_dashboard=False, log_to_driver=False,
                     object_store_memory=self.object_store_memory, _node_ip_address="127.0.0.1")
        return True

    def _check_feasible(self, ray, stages: list[Stage]) -> None:
        total = ray.cluster_resources()
        for s in stages:
            o = ray_options(s.resources)
            for key, have in (("num_cpus", total.get("CPU", 0)), ("num_gpus", total.get("GPU", 0))):
                if o[key] > have:
                    raise ConfigError(f"stage '{s.name}' asks for {o[key]:g} {key[4:].upper()}s but the Ray "
                                      f"cluster has {have:g}; lower its resources or add nodes")

    def run(self, stages: list[Stage], run_stage, *, on_done=None) -> dict[str, dict]:
        """Submit every stage at once (Ray orders them by their upstream refs); return {key: record}."""
        ray = _import_ray()
        started = self._connect(ray)
        try:
            self._check_feasible(ray, stages)
            task = ray.remote(run_stage_task)
            fn_ref = ray.put(run_stage)
            refs: dict[str, Any] = {}
            for s in stages:  # topological order: every upstream ref exists before it is needed
                o = ray_options(s.resources)
                ups = [refs[d.key] for d in s.inputs.values()]
                refs[s.key] = task.options(**o, max_retries=self.max_retries, retry_exceptions=False).remote(
                    fn_ref, s, int(o["num_cpus"]), *ups)
            # A Ray instance this call started is shut down below, which stops every task still running; one it
            # joined keeps running, so there the pending tasks are cancelled one by one instead.
            return self._collect(ray, stages, refs, on_done, cancel_on_error=not started)
        finally:
            if started:
                ray.shutdown()

    def _collect(self, ray, stages, refs, on_done, *, cancel_on_error: bool) -> dict[str, dict]:
        by_ref = {ref: s for s, ref in zip(stages, (refs[s.key] for s in stages))}
        pending, records = list(by_ref), {}
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                stage = by_ref[done[0]]
                records[stage.key] = self._get(ray, done[0], stage)
                if on_done is not None:
                    on_done(stage, records[stage.key])
        except BaseException:
            # Finished stages stay on disk; stop the rest. Not by ray.cancel on an instance about to be shut down:
            # a cancel that races a task's completion aborts the driver process in Ray's core worker ("Tried to
            # complete task that was not pending", ray-project/ray#54846; seen here twice in ~20 test runs, ending
            # pytest with exit 1 and no report). Shutting the instance down stops those tasks without that race.
            if cancel_on_error:
                for ref in pending:
                    ray.cancel(ref)
            raise
        return {s.key: records[s.key] for s in stages}

    def _get(self, ray, ref, stage: Stage) -> dict:
        from ray.exceptions import RayTaskError, WorkerCrashedError

        try:
            return ray.get(ref)
        except RayTaskError as e:  # the stage's own exception: re-raise it as itself
            if isinstance(e.cause, Exception):
                raise e.cause from None
            raise
        except WorkerCrashedError:
            raise StageFailedError(
                f"stage '{stage.name}' failed: its worker process died {self.max_retries + 1} times "
                f"(max_retries={self.max_retries}); finished stages are kept, so rerun the same command to "
                "resume") from None
