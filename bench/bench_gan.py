"""Benchmark the GAN families on the real 50-shot PneumoniaMNIST split (28 px, 100 images) on this CPU.

For each variant (cgan, acgan, lsgan, wgan, wgan-gp, cgan per-class) it trains once in its own subprocess
(so peak RSS is per variant) and measures training steps/s at batch 64, the wall time of the run, sampling
images/s (1000 images, EMA generator) and peak RSS; it writes the run's CSV log and grid PNGs under
bench/out/<section>/<variant>/ and updates its section of bench/RESULTS.md.

    .venv/bin/python bench/bench_gan.py --full          # the default number of steps per variant
    .venv/bin/python bench/bench_gan.py --steps 50      # a short run (numbers are per-step rates)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
OUT = ROOT / "bench" / "out"
VARIANTS = {  # label -> (family, config overrides)
    "cgan": ("cgan", {}), "acgan": ("acgan", {}), "lsgan": ("lsgan", {}), "wgan": ("wgan", {}),
    "wgan-gp": ("wgan-gp", {}), "cgan per-class": ("cgan", {"per_class": True}),
}


def fifty_shot(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 50-per-class train split used by the tests (seed 0 draw from the official train set)."""
    with np.load(data_dir / "pneumoniamnist.npz") as z:
        images, labels = z["train_images"][..., None], z["train_labels"].reshape(-1).astype(np.int64)
    rng = np.random.default_rng(0)
    idx = np.concatenate([rng.choice(np.flatnonzero(labels == k), 50, replace=False) for k in (0, 1)])
    return np.ascontiguousarray(images[idx]), labels[idx]


def loss_trend(csv_path: Path) -> dict[str, list[float]]:
    """Mean of each scalar over the first and the last 10 % of steps."""
    with open(csv_path) as fh:
        rows = list(csv.DictReader(fh))
    k = max(1, len(rows) // 10)
    keys = [c for c in rows[0] if c != "step"]
    return {c: [float(np.mean([float(r[c]) for r in part])) for part in (rows[:k], rows[-k:])] for c in keys}


def run_variant(label: str, steps: int | None, section: str) -> dict:
    """Train + sample one variant in this process; return its measurements."""
    import torch

    from synthmed.callbacks import standard_callbacks
    from synthmed.generators import make_generator

    family, overrides = VARIANTS[label]
    images, labels = fifty_shot(Path(os.environ.get("SYNTHMED_DATA_DIR", ROOT.parent / "shared" / "data")))
    out = OUT / section / label.replace(" ", "-")
    if (out / "metrics.csv").exists():
        (out / "metrics.csv").unlink()
    gen = make_generator(family, max_steps=steps, grid_every=100, **overrides)
    cbs = standard_callbacks(out, progress=False, tensorboard=False)
    t0 = time.perf_counter()
    gen.fit(images, labels, callbacks=cbs)
    train_s = time.perf_counter() - t0
    n = 1000
    sample_labels = np.repeat(np.arange(2), n // 2)
    gen.sample(sample_labels[:64], seed=1)  # warm-up
    t0 = time.perf_counter()
    gen.sample(sample_labels, seed=0)
    sample_s = time.perf_counter() - t0
    return {
        "variant": label, "steps": gen.steps_done_, "d_steps": gen.d_steps_done_, "train_s": train_s,
        "steps_per_s": gen.steps_done_ / train_s, "sample_img_per_s": n / sample_s,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(), "trend": loss_trend(out / "metrics.csv"),
    }


def write_section(results: list[dict], command: str, loads: list[float], section: str, note: str) -> None:
    cpu = next((ln.split(":", 1)[1].strip() for ln in subprocess.run(
        ["lscpu"], capture_output=True, text=True).stdout.splitlines() if ln.startswith("Model name")), "?")
    import torch

    gpu = f", GPU {torch.cuda.get_device_name(0)} (used: device=auto)" if torch.cuda.is_available() else ", no GPU"
    lines = [
        f"<!-- BEGIN {section} -->",
        f"## GAN families ({section}): train + sample on PneumoniaMNIST 28 px, 50 images/class (100 images)",
        "",
        f"- Machine: {os.cpu_count()}-core CPU, {cpu}{gpu}; 1-min load average "
        f"{min(loads):.2f}–{max(loads):.2f} during the runs (measured before each variant)",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; Python {platform.python_version()}",
        f"- Command: `{command}`",
        "- A step = one generator update (the WGAN critics make 5 updates per step); batch 64 "
        "(50 in per-class mode: each class has 50 images). Each variant runs in its own process; "
        "sampling = 1000 images with the EMA generator.",
        *([f"- {note}"] if note else []),
        "",
        "| variant | G steps | D steps | train wall s | G steps/s | sample img/s | peak RSS MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['variant']} | {r['steps']} | {r['d_steps']} | {r['train_s']:.1f} | "
                     f"{r['steps_per_s']:.2f} | {r['sample_img_per_s']:.0f} | {r['peak_rss_mib']:.0f} |")
    lines += ["", "Loss trends (mean over the first → last 10 % of steps):", ""]
    for r in results:
        trend = ", ".join(f"{k} {a:.3g}→{b:.3g}" for k, (a, b) in r["trend"].items())
        lines.append(f"- {r['variant']}: {trend}")
    lines.append(f"<!-- END {section} -->")
    block = "\n".join(lines)
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"<!-- BEGIN {section} -->.*?<!-- END {section} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    sys.path.insert(0, str(ROOT))
    from synthmed.utils.io import write_text_atomic

    write_text_atomic(RESULTS, text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="train each variant for its default max_steps")
    ap.add_argument("--steps", type=int, default=50, help="steps per variant without --full")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    ap.add_argument("--section", default="gan", help="name of this run's section in bench/RESULTS.md")
    ap.add_argument("--note", default="", help="a line added to the section (e.g. how to read the numbers)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    steps = None if args.full else args.steps
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.child:  # one variant, results as JSON on stdout's last line
        print(json.dumps(run_variant(args.child, steps, args.section)))
        return
    results, loads = [], []
    command = ".venv/bin/python bench/bench_gan.py " + " ".join(f"'{a}'" if " " in a else a for a in sys.argv[1:])
    for label in args.variants.split(","):
        loads.append(os.getloadavg()[0])
        cmd = [sys.executable, __file__, "--child", label, "--section", args.section, "--threads", str(args.threads)] + (["--full"] if args.full else ["--steps", str(steps)])
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            sys.exit(f"{label} failed:\n{proc.stderr[-3000:]}")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps({k: v for k, v in results[-1].items() if k != "trend"}), flush=True)
        write_section(results, command, loads, args.section, args.note)  # after each variant, so a cut-off run keeps what it measured


if __name__ == "__main__":
    main()
