"""Run a study: expand → execute stages through an executor (cached by content hash, resumable) →
collect the tidy results table → manifest → HTML report."""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthmed.config import dump_yaml
from synthmed.study.config import StudyConfig
from synthmed.study.executor import Executor, LocalExecutor, default_threads
from synthmed.study.expand import expand_study
from synthmed.runs import (
    STAGES_DIR,
    collect_results,
    is_stage_done,
    read_stage_record,
    write_manifest,
    write_results,
    write_stage_record,
)
from synthmed.runs.layout import CONFIG_FILE
from synthmed.study.graph import Stage, topological_order
from synthmed.study.stages import STAGE_FUNCTIONS, StageContext
from synthmed.utils.io import clean_stale_tmp, write_text_atomic
from synthmed.utils.runtime import configure_torch_cpu, git_commit, package_versions


def default_run_dir(cfg: StudyConfig, root: str | Path = "runs") -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{cfg.name}-{stamp}"


def execute_stage(stage: Stage, stages_dir: Path, ctx: StageContext) -> dict[str, Any]:
    """Run one stage unless it is already done; return its record. Idempotent and safe to retry:
    outputs are written atomically and ``stage.json`` last, so a killed stage is simply redone
    (generators resume from their last checkpoint)."""
    folder = stage.folder(stages_dir)
    if is_stage_done(folder):
        return read_stage_record(folder)
    folder.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(folder)
    inputs = {name: dep.folder(stages_dir) for name, dep in stage.inputs.items()}
    for name, path in inputs.items():
        if not is_stage_done(path):
            raise RuntimeError(f"stage '{stage.name}' started before its input '{name}' finished")
    configure_torch_cpu()
    if ctx.threads:  # on a machine shared with other jobs, 1 thread avoids OpenMP oversubscription
        import torch

        torch.set_num_threads(ctx.threads)
    t0 = time.perf_counter()
    summary = STAGE_FUNCTIONS[stage.kind](stage, folder, inputs, ctx)
    record = {
        "kind": stage.kind,
        "name": stage.name,
        "key": stage.key,
        "config": stage.config,
        "inputs": {k: v.name for k, v in inputs.items()},
        "labels": stage.labels,
        "summary": summary,
        "wall_s": time.perf_counter() - t0,
        "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_stage_record(folder, record)  # last: its presence means "done"
    return record


@dataclass(frozen=True)
class StageRunner:
    """``run_stage`` for executors: a picklable callable (unlike a lambda) that also tells a distributed
    executor where stage folders live, so it can keep per-stage facts such as attempt counts there."""

    stages_dir: Path
    ctx: StageContext

    def __call__(self, stage: Stage) -> dict[str, Any]:
        return execute_stage(stage, self.stages_dir, self.ctx)


class _Progress:
    """Overall bar (stages done / total, ETA); each stage shows its own bar below it."""

    def __init__(self, stages: list[Stage], stages_dir: Path, enabled: bool):
        self.enabled = enabled
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            done = sum(s.is_done(stages_dir) for s in stages)
            self.bar = tqdm(total=len(stages), initial=done, desc="study", unit="stage", position=0,
                            dynamic_ncols=True)

    def __call__(self, stage: Stage, record: dict) -> None:
        if self.bar is not None and record.get("_fresh", True):
            self.bar.set_postfix_str(stage.name[:40], refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _manifest(cfg: StudyConfig, executor, stages: list[Stage], records: dict[str, dict], cached: set[str],
              wall_s: float) -> dict[str, Any]:
    """The run's provenance: config, versions, data checksums and one entry per stage."""
    return {
        "study": cfg.name,
        "config": cfg.model_dump(mode="json"),
        "seeds": cfg.seeds,
        "executor": getattr(executor, "name", type(executor).__name__),
        "package_versions": package_versions(),
        "git_commit": git_commit(),
        "data_checksums": sorted({r["summary"]["dataset_checksum"] for r in records.values() if r["kind"] == "split"}),
        "stages": [
            {"name": s.name, "kind": s.kind, "folder": f"{STAGES_DIR}/{s.folder_name}", "labels": s.labels,
             "cached": s.key in cached, "wall_s": records[s.key]["wall_s"], "summary": records[s.key]["summary"],
             "config": s.config, "attempts": records[s.key].get("attempts", 0 if s.key in cached else 1)}
            for s in stages
        ],
        "stages_run": len(stages) - len(cached),
        "stages_cached": len(cached),
        "wall_s": wall_s,
        "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def run_study(cfg: StudyConfig, out_dir: str | Path | None = None, *, executor: Executor | None = None,
              data_dir: str | None = None, progress: bool = True, report: bool = True,
              threads: int | None = None) -> dict[str, Any]:
    """Run (or resume) a study into ``out_dir``; return the manifest.

    Re-running with the same ``out_dir`` does no work for finished stages; changing a setting
    recomputes only the stages whose key it changes. ``threads`` sets torch's CPU threads per stage
    (not part of any stage key: it changes float summation order, not what a stage computes).
    """
    out = Path(out_dir) if out_dir is not None else default_run_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    stages_dir = out / STAGES_DIR
    stages = topological_order(expand_study(cfg))
    executor = executor or LocalExecutor()
    workers = getattr(executor, "workers", 1)
    if threads is None and workers > 1:
        threads = default_threads(workers)
    # stages side by side would interleave their own bars: then only the overall bar shows
    ctx = StageContext(data_dir=data_dir, progress=progress and workers == 1, threads=threads)
    write_text_atomic(out / CONFIG_FILE, dump_yaml(cfg))
    cached = {s.key for s in stages if s.is_done(stages_dir)}
    bar = _Progress(stages, stages_dir, progress)
    t0 = time.perf_counter()

    def on_done(stage: Stage, record: dict) -> None:
        if stage.key not in cached:
            bar(stage, record)

    try:
        records = executor.run(stages, StageRunner(stages_dir, ctx), on_done=on_done)
    finally:
        bar.close()
    # a cached record keeps the labels of the study that ran it: the rows take this study's (a renamed generator)
    results = collect_results(({**records[s.key], "labels": s.labels} for s in stages if s.key in records),
                              f"{cfg.dataset.name}_{cfg.dataset.size}")
    write_results(out, results)
    manifest = _manifest(cfg, executor, stages, records, cached, time.perf_counter() - t0)
    write_manifest(out, manifest)
    if report:
        from synthmed.report import write_report

        write_report(out)
    return manifest

