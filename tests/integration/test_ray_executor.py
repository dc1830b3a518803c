"""The smoke study on a local 2-CPU Ray instance: same results as the local executor, and a worker
killed in the middle of a stage is retried without leaving a corrupt artefact."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the Ray executor needs the extra: pip install 'synthmed[ray]'")

from synthmed.study import load_study_config, make_executor, run_study  # noqa: E402
from synthmed.study.ray_executor import ATTEMPTS_FILE, StageFailedError  # noqa: E402

pytestmark = pytest.mark.integration


class _KillFirstGenerator(threading.Thread):
    """Watches the run folder; SIGKILLs the Ray worker of the first generator stage once it is underway."""

    def __init__(self, stages_dir: Path):
        super().__init__(daemon=True)
        self.stages_dir, self.killed, self.stop = stages_dir, None, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and self.killed is None:
            for f in self.stages_dir.glob(f"generator-*/{ATTEMPTS_FILE}"):
                try:
                    info = json.loads(f.read_text())
                except (OSError, ValueError):
                    continue
                if info["attempts"] == 1 and not (f.parent / "stage.json").exists():
                    t0 = time.monotonic()  # wait until it writes its first outputs (logs), at most 0.5 s
                    while len(list(f.parent.iterdir())) < 2 and time.monotonic() - t0 < 0.5:
                        time.sleep(0.01)
                    if (f.parent / "stage.json").exists():  # too late: the stage finished meanwhile
                        continue
                    os.kill(info["pid"], signal.SIGKILL)
                    self.killed = f.parent.name
                    return
            time.sleep(0.02)


@pytest.fixture(scope="module")
def ray_run(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("ray") / "run"
    killer = _KillFirstGenerator(out / "stages")
    killer.start()
    cfg = load_study_config(profile="smoke")
    try:
        manifest = run_study(cfg, out, executor=make_executor("ray", num_cpus=2), data_dir=str(data_dir),
                             progress=False, report=False)
    finally:
        killer.stop.set()
    return out, manifest, killer.killed


@pytest.fixture(scope="module")
def local_one_thread_run(tmp_path_factory, data_dir):
    """The smoke study on the local executor with torch's CPU kernels on 1 thread, as in each Ray task
    (1 CPU each): CPU reductions depend on the thread count, so equal threads are what make equal bits."""
    import torch
    from threadpoolctl import threadpool_limits  # BLAS/OpenMP pools: Ray sets OMP_NUM_THREADS=1 in workers

    out, threads = tmp_path_factory.mktemp("local1") / "run", torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            run_study(load_study_config(profile="smoke"), out, data_dir=str(data_dir), progress=False,
                      report=False)
    finally:
        torch.set_num_threads(threads)
    return out


def test_ray_gives_the_local_executors_results(ray_run, local_one_thread_run):
    out, manifest, _ = ray_run
    local = json.loads((local_one_thread_run / "results.json").read_text())
    remote = json.loads((out / "results.json").read_text())
    key = lambda r: (r["generator"], r["condition"], r["seed"], r["metric"])  # noqa: E731
    assert sorted(map(key, remote)) == sorted(map(key, local))
    want = {key(r): r["value"] for r in local}
    for r in remote:
        assert r["value"] == want[key(r)], key(r)  # bit for bit
    assert manifest["executor"] == "ray" and manifest["stages_run"] == len(manifest["stages"])


def test_killed_worker_is_retried_and_recorded(ray_run):
    out, manifest, killed = ray_run
    assert killed is not None, "the watcher never saw a generator stage start"
    by_folder = {Path(s["folder"]).name: s for s in manifest["stages"]}
    assert by_folder[killed]["attempts"] == 2
    assert all(s["attempts"] == 1 for name, s in by_folder.items() if name != killed)
    stages = out / "stages"
    assert not list(stages.rglob("*.tmp"))  # no half-written file survived the kill
    assert all((stages / name / "stage.json").exists() for name in by_folder)
    from synthmed.generators import load_generator

    gen = load_generator(stages / killed / "generator.pt")  # the retried stage's artefact loads
    assert gen.fitted_


def test_stage_error_fails_the_study_with_its_own_message(tmp_path, monkeypatch):
    """An exception in stage code (on a worker) is not retried: the study fails with that error. The stages
    still pending are stopped by shutting down the instance the study started, not by ray.cancel, whose race
    with a finishing task aborts the whole driver process (ray-project/ray#54846)."""
    import ray

    from synthmed.errors import DataNotFoundError

    cancelled = []
    monkeypatch.setattr(ray, "cancel", lambda ref, **kw: cancelled.append(ref))
    empty = tmp_path / "no-data"
    empty.mkdir()
    with pytest.raises(DataNotFoundError, match="pneumoniamnist") as err:
        run_study(load_study_config(profile="smoke"), tmp_path / "run", data_dir=str(empty), progress=False,
                  executor=make_executor("ray", num_cpus=2, max_retries=1), report=False)
    assert not isinstance(err.value, StageFailedError)
    split = next((tmp_path / "run" / "stages").glob("split-*"))
    assert json.loads((split / ATTEMPTS_FILE).read_text())["attempts"] == 1  # not retried
    assert cancelled == [] and not ray.is_initialized()
