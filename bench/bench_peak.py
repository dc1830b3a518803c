"""The machine limit as a benchmark: this CPU's fp32 matmul peak, and each training loop's achieved
GFLOP/s as a share of it, at 28 and 64 px.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (matmuls and convolutions, forward
and backward); time is wall clock. Each loop runs twice, for ``K1`` and ``K2`` steps, and only the
difference is used, so set-up (model building, data conversion, the first slow steps) cancels out.

    SYNTHMED_DATA_DIR=../shared/data python bench/bench_peak.py [--threads 1] [--quick]

Run it alone: the load average is printed beside every figure and a figure taken under load is noise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(__file__))
from _results import header, replace_section  # noqa: E402

GENERATOR_FAMILIES = ("cgan", "wgan-gp", "cvae", "ddpm")


def matmul_peak(threads: int, n: int = 2048, repeats: int = 10) -> float:
    """Median fp32 GFLOP/s of an n×n matmul at ``threads`` torch threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def _counted(fn) -> tuple[float, float | None]:
    """(seconds, FLOPs) of one call; FLOPs from a second, counted call (counting slows the run).

    FLOPs are None where FlopCounterMode cannot follow the loop: its module tracker refuses the
    double backward of WGAN-GP's gradient penalty ("A leaf node was passed to _will_engine_execute_node").
    """
    t0 = time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    counter = FlopCounterMode(display=False)
    try:
        with counter:
            fn()
    except RuntimeError:
        return wall, None
    return wall, float(counter.get_total_flops())


def loop_rate(make_run, k1: int, k2: int) -> dict:
    """Achieved GFLOP/s of the steps between k1 and k2 (set-up cancels in the difference)."""
    w1, f1 = _counted(lambda: make_run(k1))
    w2, f2 = _counted(lambda: make_run(k2))
    dt = max(w2 - w1, 1e-9)
    if f1 is None or f2 is None:
        return {"s_per_step": dt / (k2 - k1), "gflop_per_step": None, "gflops": None}
    df = f2 - f1
    return {"s_per_step": dt / (k2 - k1), "gflop_per_step": df / (k2 - k1) / 1e9, "gflops": df / dt / 1e9}


# (dataset, px): the default study's data, then the skin set at 28 and 64 px for a like-for-like growth
# (PneumoniaMNIST has no 64 px array file here; the skin set ships both sizes)
DATASETS = (("pneumoniamnist", 28), ("ham10000", 28), ("ham10000", 64))


def data(name: str, size: int):
    from synthmed.data import load_dataset, make_split

    d = load_dataset(name, size=size)
    return make_split(d, shots=20, seed=0).apply(d)


def generator_run(family: str, train):
    from synthmed.generators import make_generator

    def run(steps: int):
        make_generator(family, max_steps=steps, seed=0).fit(train.images, train.labels)

    return run


def classifier_run(sets, batch: int):
    from synthmed.classify import ClassifierConfig, train_classifier

    def run(steps: int):
        cfg = ClassifierConfig(max_steps=steps, batch_size=batch, patience=None, eval_every=10_000, seed=0)
        train_classifier(sets["train"], sets["val"], cfg)

    return run


def sampling_run(sets):
    from synthmed.generators import make_generator

    gen = make_generator("ddpm", max_steps=2, seed=0).fit(sets["train"].images, sets["train"].labels)
    labels = np.zeros(64, dtype=np.int64)

    def run(steps: int):  # "steps" = sampler steps here
        gen.sample(labels, seed=0, steps=steps)

    return run


def _num(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="fewer steps (a smoke check of the script)")
    args = ap.parse_args()
    k1, k2 = (2, 4) if args.quick else (5, 15)
    peak = {t: matmul_peak(t) for t in (1, 2)}
    torch.set_num_threads(args.threads)
    rows = []
    for name_ds, size in DATASETS:
        sets = data(name_ds, size)
        n = len(sets["train"])  # the classifier's batch is min(batch_size, images): 40 on the 20-shot 2-class split
        loops = {f"classifier resnet18 b{min(b, n)}": classifier_run(sets, b) for b in (32, 128)}
        loops.update({f"generator {f}": generator_run(f, sets["train"]) for f in GENERATOR_FAMILIES})
        loops["ddpm sampling (64 images, per DDIM step)"] = sampling_run(sets)
        for name, run in loops.items():
            r = loop_rate(run, k1, k2)
            load = os.getloadavg()[0]
            rows.append((f"{name_ds} {size}", name, r, load))
            print(f"{name_ds} {size}px {name}: {_num(r['gflops'])} GFLOP/s ({r['s_per_step'] * 1e3:.0f} ms/step), "
                  f"load {load:.2f}", flush=True)
    share = peak[args.threads]
    lines = [header(f"python bench/bench_peak.py --threads {args.threads}{' --quick' if args.quick else ''}"),
             f"- fp32 matmul peak (2048², median of 10): {peak[1]:.0f} GFLOP/s at 1 thread, {peak[2]:.0f} at 2 threads",
             f"- loops ran at {args.threads} thread(s); share = achieved / peak at that thread count",
             f"- steps {k1}→{k2}, difference only (set-up cancels); FLOPs counted by FlopCounterMode", "",
             "| data, px | loop | GFLOP/step | ms/step | GFLOP/s | share of peak | 1-min load |", "|---|---|---|---|---|---|---|"]
    for size, name, r, load in rows:
        pct = "n/a (not countable)" if r["gflops"] is None else f"{r['gflops'] / share:.1%}"
        lines.append(f"| {size} | {name} | {_num(r['gflop_per_step'], 3)} | {r['s_per_step'] * 1e3:.0f} "
                     f"| {_num(r['gflops'])} | {pct} | {load:.2f} |")
    per_step = {(d, n): r["s_per_step"] for d, n, r, _ in rows}
    lines += ["", "Growth 28 → 64 px (skin set, same loop, same step count; a stage's cost is its step budget × this):", "",
              "| loop | s/step 28 px | s/step 64 px | × |", "|---|---|---|---|"]
    for name in dict.fromkeys(n for _, n, _, _ in rows):
        a, b = per_step.get(("ham10000 28", name)), per_step.get(("ham10000 64", name))
        if a and b:
            lines.append(f"| {name} | {a:.3f} | {b:.3f} | {b / a:.1f}× |")
    replace_section("bench_peak", "## Machine limit: matmul peak and each loop's share (bench/bench_peak.py)\n\n"
                    + "\n".join(lines))


if __name__ == "__main__":
    main()
