"""Threads × workers, per stage kind: is one stage at 2 threads or two stages side by side at 1 thread
each the better use of a 2-core CPU?

For each stage kind of the default study (classifier training, each generator family's training, DDPM
sampling) the same unit of work runs (a) once, in one process at 2 torch threads, and (b) twice, in two
1-thread processes started together. The figure is the throughput ratio (b)/(a): work done per wall
second by two 1-thread workers over one 2-thread worker. Above 1, workers win (the study's default:
2 workers × 1 thread); below 1, threads win.

    SYNTHMED_DATA_DIR=../shared/data python bench/bench_threads.py [--quick]

Each unit runs in a fresh process (``--unit NAME --threads T`` prints its seconds), so set-up (imports,
model building, data loading) is timed outside the unit. Run it alone: the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _results import header, replace_section  # noqa: E402

# unit name -> (stage kind, steps at full size, steps with --quick); each takes ~15-40 s at 1 thread here
UNITS = {
    "classify": ("classifier training (ResNet-18, batch 32, with validation)", 150, 10),
    "cgan": ("generator cgan (G+D steps, batch 64)", 400, 10),
    "cvae": ("generator cvae (batch 64)", 600, 10),
    "ddpm": ("generator ddpm (UNet, batch 64)", 60, 3),
    "ddpm-sample": ("samples ddpm (DDIM-50, 256 images per unit)", 256, 16),
}


def run_unit(name: str, threads: int, quick: bool) -> float:
    """Seconds of the unit's work alone (set-up excluded), in this process at ``threads`` threads."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from synthmed.data import load_dataset, make_split

    d = load_dataset("pneumoniamnist", size=28)
    sets = make_split(d, shots=50, seed=0).apply(d)
    n = UNITS[name][2 if quick else 1]
    if name == "classify":
        from synthmed.classify import ClassifierConfig, train_classifier

        cfg = ClassifierConfig(max_steps=n, patience=None, eval_every=25, seed=0)
        t0 = time.perf_counter()
        train_classifier(sets["train"], sets["val"], cfg)
        return time.perf_counter() - t0
    from synthmed.generators import make_generator

    if name == "ddpm-sample":
        gen = make_generator("ddpm", max_steps=1, seed=0).fit(sets["train"].images, sets["train"].labels)
        labels = np.arange(n, dtype=np.int64) % 2
        t0 = time.perf_counter()
        gen.sample(labels, seed=0)
        return time.perf_counter() - t0
    gen = make_generator(name, max_steps=n, seed=0)
    t0 = time.perf_counter()
    gen.fit(sets["train"].images, sets["train"].labels)
    return time.perf_counter() - t0


def _spawn(name: str, threads: int, quick: bool) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, __file__, "--unit", name, "--threads", str(threads)] + (["--quick"] if quick else [])
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)


def _seconds(p: subprocess.Popen) -> float:
    out, _ = p.communicate()
    if p.returncode != 0:
        raise SystemExit(f"unit failed (exit {p.returncode}): {p.args}")
    return float(out.strip().splitlines()[-1])


def measure(name: str, quick: bool) -> dict:
    """(a) one unit at 2 threads; (b) two units side by side at 1 thread each; (c) one unit at 1 thread alone."""
    one_at_2 = _seconds(_spawn(name, 2, quick))
    pair = [_spawn(name, 1, quick) for _ in range(2)]
    side = [_seconds(p) for p in pair]
    one_at_1 = _seconds(_spawn(name, 1, quick))
    # throughput: units per second. (b) finishes 2 units in max(side) seconds of wall.
    return {"t2": one_at_2, "t1_pair": side, "t1_alone": one_at_1,
            "ratio_workers_over_threads": (2 / max(side)) / (1 / one_at_2),
            "thread_speedup": one_at_1 / one_at_2, "pair_slowdown": max(side) / one_at_1,
            "load": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--unit", choices=sorted(UNITS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="tiny units (a smoke check of the script)")
    ap.add_argument("--only", nargs="*", choices=sorted(UNITS), help="measure these kinds only")
    args = ap.parse_args()
    if args.unit:
        print(f"{run_unit(args.unit, args.threads, args.quick):.4f}")
        return
    rows = {}
    for name in args.only or UNITS:
        rows[name] = measure(name, args.quick)
        print(name, json.dumps(rows[name]), flush=True)
    lines = [header("python bench/bench_threads.py" + (" --quick" if args.quick else "")),
             "- (a) one unit in one process at 2 threads; (b) two units in two 1-thread processes started together;"
             " (c) one unit at 1 thread alone. Set-up (imports, data, model building) is outside the timed unit.",
             "- workers/threads = throughput of (b) over (a): above 1, two 1-thread workers do more work per"
             " second than one 2-thread worker.", "",
             "| stage kind | unit | (a) 1×2 threads s | (b) 2×1 thread s (each) | (c) 1×1 thread s | 2-thread speed-up (c/a)"
             " | side-by-side slow-down (b/c) | workers/threads | 1-min load |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        desc, n_full, n_quick = UNITS[name]
        n = n_quick if args.quick else n_full
        lines.append(f"| {desc} | {n} {'images' if name == 'ddpm-sample' else 'steps'} | {r['t2']:.1f} | "
                     f"{r['t1_pair'][0]:.1f} / {r['t1_pair'][1]:.1f} | {r['t1_alone']:.1f} | {r['thread_speedup']:.2f}× | "
                     f"{r['pair_slowdown']:.2f}× | **{r['ratio_workers_over_threads']:.2f}** | {r['load']:.2f} |")
    replace_section("threads-workers", "## Threads × workers per stage kind (issue 13; bench/bench_threads.py)\n\n"
                    + "\n".join(lines))


if __name__ == "__main__":
    main()
