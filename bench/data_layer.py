"""Benchmark: time and peak memory of ``load_dataset`` + ``make_split`` on the real files.

Usage: ``SYNTHMED_DATA_DIR=../shared/data .venv/bin/python bench/data_layer.py``
Writes its own section of bench/RESULTS.md (between the data_layer markers).
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import resource
import sys
import time
from pathlib import Path

from synthmed.data import load_dataset, make_split
from synthmed.utils.io import write_text_atomic

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/_results.py: shared helpers
from _results import cpu_model  # noqa: E402

SECTION = "data_layer"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
CASES = [  # (dataset, size, shots, protocol)
    ("pneumoniamnist", 28, 50, "official"),
    ("ham10000", 28, 20, "fraction"),
    ("ham10000", 64, 20, "fraction"),
]
REPEATS = 3  # best of three: the CPU is shared, so the minimum is the least disturbed run


def best_of(fn, repeats: int = REPEATS) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    rows = []
    for name, size, shots, protocol in CASES:
        t_load, data = best_of(lambda: load_dataset(name, size=size))
        t_split, manifest = best_of(lambda: make_split(data, shots=shots, protocol=protocol, seed=0))
        rows.append(f"| {name} | {size} | {len(data)} | {protocol}, k={shots} | {t_load:.3f} | {t_split:.3f} | "
                    f"{sum(manifest.duplicates.shared_images.values())} |")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    body = "\n".join([
        f"<!-- BEGIN {SECTION} -->",
        "## Data layer: load + split on the real files",
        "",
        f"- Machine: {os.cpu_count()}-core CPU, {cpu_model()}; shared with other engineers, "
        f"1-min load average {os.getloadavg()[0]:.2f} at measurement",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Command: `SYNTHMED_DATA_DIR=../shared/data .venv/bin/python bench/data_layer.py` (Python {platform.python_version()})",
        f"- Times are the best of {REPEATS} runs, in seconds; peak RSS of the whole script {peak_mib:.0f} MiB.",
        "",
        "| dataset | px | images | split | load s | split s | distinct images shared across splits (before dedup) |",
        "|---|---|---|---|---|---|---|",
        *rows,
        f"<!-- END {SECTION} -->",
    ])
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"<!-- BEGIN {SECTION} -->.*?<!-- END {SECTION} -->", re.S)
    text = pattern.sub(lambda _: body, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + body + "\n"
    write_text_atomic(RESULTS, text)
    print(body)


if __name__ == "__main__":
    sys.exit(main())
