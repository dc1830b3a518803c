"""Scale-out benchmark: the smoke study's wall time on the Ray executor vs the local executor, and a
projection of the full study (7 families × 6 conditions × 5 seeds) on 1, 8 and 64 GPUs from
measured per-stage costs.

    .venv/bin/python bench/bench_scale.py                       # both runs + projection from the local run
    .venv/bin/python bench/bench_scale.py --manifest runs/X/manifest.json --skip-run   # projection only

Writes its section of bench/RESULTS.md and the projection table in docs/scaling.md.

Projection model: the full profile's real stage graph (``expand_study``) is list-scheduled on G
identical GPUs (one stage per GPU at a time; a ready stage goes to the first free GPU, longest
first — what Ray does with ``num_gpus=1`` tasks). A stage's GPU time is its measured CPU wall time
divided by the assumed speed-up of its kind (SPEEDUP), plus a fixed per-stage overhead (process,
CUDA context, reading inputs from shared storage). Kinds/families missing from the manifest take
the mean of the measured stages of that kind.
"""

from __future__ import annotations

import argparse
import datetime as dt
import heapq
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/_results.py: shared section writer
from _results import replace_section as _replace_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# GPU (one H100) speed-up over this 2-core CPU per stage kind. generator: 5x is what bench/RESULTS.md
# shows for the GAN families (gan-h100-full G steps/s vs the gan-cpu quiet-machine s/step: acgan 55.9 vs
# 11.6, lsgan 59.9 vs 11.5, wgan 20.7 vs 3.9, wgan-gp 13.7 vs 2.7 steps/s) - 28 px nets are launch-bound.
# The others are assumptions (no GPU in this session): ResNet-18 is a bigger net than the DCGAN (10x),
# sampling is batched inference (20x), fidelity mixes feature extraction with CPU statistics (5x).
SPEEDUP = {"split": 1.0, "extractor": 10.0, "generator": 5.0, "samples": 20.0, "classify": 10.0, "fidelity": 5.0}
OVERHEAD_S = 5.0  # per stage on a GPU worker: task start, CUDA context, loading inputs
GPUS = (1, 8, 64)
MARK = "bench_scale"


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return re.search(r"Model name:\s*(.+)", out).group(1).strip()
    except (OSError, AttributeError):
        return platform.processor() or "unknown"


def timed_study(executor: str, out: Path, data_dir: str, threads: int | None = None, cpus: int | None = None) -> dict:
    """One fresh smoke run; ``threads`` caps torch's CPU threads in this process (None = torch's default);
    ``cpus`` sizes the local Ray instance (None = every core)."""
    import torch

    from synthmed.study import load_study_config, make_executor, run_study

    cfg = load_study_config(profile="smoke")
    opts = {"num_cpus": cpus or os.cpu_count()} if executor == "ray" else {}
    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        manifest = run_study(cfg, out, executor=make_executor(executor, **opts), data_dir=data_dir,
                             progress=False, report=False)
    finally:
        torch.set_num_threads(before)
    wall = time.perf_counter() - t0  # includes starting and stopping Ray
    return {"wall_s": wall, "load_before": load0, "load_after": os.getloadavg()[0],
            "stage_s": sum(s["wall_s"] for s in manifest["stages"]), "manifest": str(out / "manifest.json")}


# -- projection --------------------------------------------------------------------------------
def stage_costs(manifest: dict) -> tuple[dict, dict]:
    """Mean measured CPU wall time per (kind, family) and per kind."""
    by_fam, by_kind = defaultdict(list), defaultdict(list)
    for s in manifest["stages"]:
        by_kind[s["kind"]].append(s["wall_s"])
        by_fam[(s["kind"], s["labels"].get("generator"))].append(s["wall_s"])
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    return {k: mean(v) for k, v in by_fam.items()}, {k: mean(v) for k, v in by_kind.items()}


def list_schedule(stages, duration: dict[str, float], workers: int) -> float:
    """Makespan of greedy list scheduling of the stage DAG on ``workers`` identical workers."""
    deps = {s.key: {d.key for d in s.inputs.values()} for s in stages}
    users = defaultdict(list)
    for s in stages:
        for d in deps[s.key]:
            users[d].append(s.key)
    ready = [(-duration[k], k) for k, d in deps.items() if not d]
    heapq.heapify(ready)
    running, free, now, left = [], workers, 0.0, {k: len(d) for k, d in deps.items()}
    while ready or running:
        while ready and free:
            neg, k = heapq.heappop(ready)
            heapq.heappush(running, (now - neg, k))
            free -= 1
        now, k = heapq.heappop(running)
        free += 1
        for u in users[k]:
            left[u] -= 1
            if not left[u]:
                heapq.heappush(ready, (-duration[u], u))
    return now


def project(manifest_path: Path) -> tuple[list[dict], dict]:
    from synthmed.study import expand_study, load_study_config
    from synthmed.study.graph import topological_order

    manifest = json.loads(manifest_path.read_text())
    fam, kind = stage_costs(manifest)
    stages = topological_order(expand_study(load_study_config(profile="full")))
    cpu = {s.key: fam.get((s.kind, s.labels.get("generator")), kind[s.kind]) for s in stages}
    gpu = {s.key: cpu[s.key] / SPEEDUP[s.kind] + OVERHEAD_S for s in stages}
    rows = [{"gpus": g, "wall_h": list_schedule(stages, gpu, g) / 3600} for g in GPUS]
    facts = {"stages": len(stages), "cpu_serial_h": sum(cpu.values()) / 3600,
             "gpu_serial_h": sum(gpu.values()) / 3600, "manifest": str(manifest_path),
             "critical_path_h": list_schedule(stages, gpu, len(stages)) / 3600,
             "measured": {f"{k}/{f or '-'}": round(v, 2) for (k, f), v in sorted(fam.items(), key=str)}}
    return rows, facts


def projection_md(rows: list[dict], facts: dict) -> str:
    lines = [f"Full study: {facts['stages']} stages; serial CPU time {facts['cpu_serial_h']:.2f} h "
             f"(costs from `{facts['manifest']}`); serial GPU time {facts['gpu_serial_h']:.2f} h; "
             f"critical path {facts['critical_path_h'] * 60:.1f} min.", "",
             "| GPUs | projected wall time | speed-up vs 1 GPU |", "|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['gpus']} | {r['wall_h'] * 60:.1f} min | {rows[0]['wall_h'] / r['wall_h']:.1f}× |")
    lines += ["", "Assumed GPU speed-up per stage kind: " + ", ".join(f"{k} {v:g}×" for k, v in SPEEDUP.items())
              + f"; plus {OVERHEAD_S:g} s per stage overhead.",
              "Measured mean CPU seconds per stage (kind/family): "
              + ", ".join(f"{k} {v}" for k, v in facts["measured"].items()) + "."]
    return "\n".join(lines)


def replace_section(path: Path, name: str, body: str) -> None:
    _replace_section(name, body, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, help="manifest.json whose stage costs drive the projection")
    ap.add_argument("--skip-run", action="store_true", help="projection only (needs --manifest)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved repetitions of the four smoke runs")
    ap.add_argument("--data-dir", default=os.environ.get("SYNTHMED_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    args = ap.parse_args()
    cmd = "bench/bench_scale.py " + " ".join(sys.argv[1:])
    parts = [f"## Scale-out (bench/bench_scale.py)\n\nMachine: {os.cpu_count()}-core CPU, {machine()}; "
             f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC. Command: `.venv/bin/python {cmd.strip()}`\n"]
    manifest = args.manifest
    if args.skip_run:  # keep the last measured executor timings; only the projection is recomputed
        old = (ROOT / "bench" / "RESULTS.md").read_text()
        m = re.search(rf"<!-- BEGIN {MARK} -->\n(.*?)Projection of the full study", old, re.S)
        parts = [m.group(1).rstrip() + "\n"] if m else parts
    else:
        import torch

        threads = torch.get_num_threads()
        variants = {  # name -> (executor, torch threads in this process, Ray CPUs)
            f"local ({threads} torch threads, default)": ("local", None, None),
            "local (1 torch thread)": ("local", 1, None),
            f"ray ({os.cpu_count()} CPUs, 1 thread per task)": ("ray", None, None),
            "ray (1 CPU: stages one at a time)": ("ray", None, 1),
        }
        runs: dict[str, list[dict]] = {k: [] for k in variants}
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds):  # interleaved, so a load swing hits every variant alike
                for i, (name, (ex, th, cpus)) in enumerate(variants.items()):
                    runs[name].append(timed_study(ex, Path(tmp) / f"{r}-{i}", args.data_dir, threads=th, cpus=cpus))
            keep = ROOT / "bench" / "out" / "scale_smoke_manifest.json"
            keep.parent.mkdir(exist_ok=True)
            best_local = min(runs[next(iter(variants))], key=lambda x: x["wall_s"])
            keep.write_text(Path(best_local["manifest"]).read_text())
            manifest = manifest or keep
        best = {k: min(x["wall_s"] for x in v) for k, v in runs.items()}
        names = list(variants)
        parts.append(f"Smoke study wall time, {args.rounds} interleaved rounds (fresh run folder each, no report; Ray "
                     "time includes starting and stopping a local Ray instance). The shared machine's load "
                     "swings make single runs vary several-fold, so compare the best of the rounds:\n\n"
                     "| variant | best wall s | every round: wall s (1-min load before) |\n|---|---:|---|")
        for name, v in runs.items():
            each = ", ".join(f"{x['wall_s']:.1f} ({x['load_before']:.1f})" for x in v)
            parts.append(f"| {name} | {best[name]:.1f} | {each} |")
        ratios = {"ray/local": best[names[2]] / best[names[0]], "ray/local-1-thread": best[names[2]] / best[names[1]],
                  "overhead (ray 1 CPU / local 1 thread)": best[names[3]] / best[names[1]]}
        parts.append("\nRatios of best wall times: " + ", ".join(f"{k} **{v:.2f}×**" for k, v in ratios.items())
                     + " (target ≤ 1.10×).\n")
        print(json.dumps({"runs": runs, "ratios": ratios}, indent=1))
    if manifest is None:
        sys.exit("--skip-run needs --manifest PATH")
    rows, facts = project(manifest)
    table = projection_md(rows, facts)
    print(table)
    how = f" (recomputed {dt.datetime.now(dt.timezone.utc):%H:%M} UTC: `.venv/bin/python {cmd.strip()}`)" \
        if args.skip_run else ""
    parts.append(f"Projection of the full study{how} (model and assumptions in docs/scaling.md):\n\n" + table)
    replace_section(ROOT / "bench" / "RESULTS.md", MARK, "\n".join(parts))
    replace_section(ROOT / "docs" / "scaling.md", "projection", table)


if __name__ == "__main__":
    main()
