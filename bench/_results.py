"""Shared by every benchmark script: the machine line and atomic section updates of bench/RESULTS.md.

Each script owns one section delimited by ``<!-- BEGIN name -->`` / ``<!-- END name -->``; updating it
re-reads the file right before writing, so scripts run by different people do not erase each other.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def cpu_model() -> str:
    """The CPU's model name as lscpu prints it."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration, subprocess.SubprocessError):
        return platform.processor() or "unknown"


def machine() -> str:
    return f"{os.cpu_count()}-core {cpu_model()}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def header(command: str) -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"- machine: {machine()}\n- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC}\n"
            f"- command: `{command}`\n- load average (1/5/15 min) at the end: {load}\n")


def replace_section(name: str, body: str, path: Path = RESULTS) -> None:
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
