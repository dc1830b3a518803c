"""Benchmark: requests/s and p50/p95 latency of ``POST /api/generate`` (n=16) on a live uvicorn server.

Two generators of one run folder — a conditional GAN (``cgan``) and a class-conditional DDPM
sampled with DDIM-50 — each at client concurrency 1, 4 and 16 (closed loop: each client sends its
next request when the last one returns). The models are trained for only 50 steps: this measures
serving speed (sampling + PNG encoding + HTTP), not sample quality.

The server runs in its own process (as ``synthmed serve`` would, with ``concurrency`` worker threads
and a queue long enough that no request of the benchmark gets 429); the client is httpx's async client.

Usage:
    .venv/bin/python bench/bench_serve.py [--run-dir bench/out/serve_runs] [--requests 24] [--ddpm-requests 12]
        [--concurrency 1,4,16] [--workers 2] [--no-write]

Trains the run once (cgan + ddpm, 50 steps each, smoke profile, condition "real", no fidelity) when
``<run-dir>/serve-bench/manifest.json`` is missing. Writes/updates the ``serve`` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import math
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/_results.py: shared section writer
from _results import replace_section as _replace_section  # noqa: E402
SECTION = "serve"
RUN_NAME = "serve-bench"
STUDY = {"name": RUN_NAME,
         "generators": [{"family": "cgan", "config": {"max_steps": 50}}, {"family": "ddpm", "config": {"max_steps": 50}}],
         "conditions": ["real"], "metrics": {"fidelity": False, "memorization": False}}
SERVER = """
import sys, uvicorn
from pathlib import Path
from synthmed.serve import create_app
uvicorn.run(create_app(Path(sys.argv[1]), concurrency=int(sys.argv[3]), queue=256), host="127.0.0.1",
            port=int(sys.argv[2]), log_level="warning")
"""


def ensure_run(runs_dir: Path, data_dir: str) -> Path:
    from synthmed.study import load_study_config, run_study

    run = runs_dir / RUN_NAME
    if not (run / "manifest.json").exists():
        t0 = time.perf_counter()
        run_study(load_study_config(STUDY, profile="smoke"), run, data_dir=data_dir, progress=False, report=False)
        print(f"trained the benchmark run in {time.perf_counter() - t0:.0f} s", flush=True)
    return run


def machine() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in subprocess.run(
        ["lscpu"], capture_output=True, text=True).stdout.splitlines() if ln.startswith("Model name")), "?")
    return f"{os.cpu_count()}-core CPU, {cpu}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of a small sample."""
    s = sorted(values)
    return s[max(0, math.ceil(q / 100 * len(s)) - 1)]


async def closed_loop(url: str, body: dict, concurrency: int, total: int) -> dict:
    """``concurrency`` clients share ``total`` requests; returns rps, p50/p95 latency and status codes."""
    import httpx

    latencies: list[float] = []
    codes: list[int] = []
    todo = iter(range(total))

    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        r = await client.post("/api/generate", json=body)  # warm-up: loads the model into the cache
        r.raise_for_status()

        async def worker():
            for i in todo:
                t0 = time.perf_counter()
                r = await client.post("/api/generate", json={**body, "seed": i})
                latencies.append(time.perf_counter() - t0)
                codes.append(r.status_code)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {"rps": total / wall, "p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
            "codes": sorted(set(codes)), "n": total, "wall": wall}


def write_section(text: str) -> None:
    _replace_section(SECTION, text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", type=Path, default=ROOT / "bench" / "out" / "serve_runs")
    ap.add_argument("--data-dir", default=os.environ.get("SYNTHMED_DATA_DIR", str(ROOT.parent / "shared" / "data")))
    ap.add_argument("--requests", type=int, default=24, help="requests per concurrency level (GAN)")
    ap.add_argument("--ddpm-requests", type=int, default=12, help="requests per concurrency level (DDIM-50)")
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--workers", type=int, default=2, help="server worker threads (create_app concurrency)")
    ap.add_argument("--n", type=int, default=16, help="images per request")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    ensure_run(args.run_dir, args.data_dir)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(args.run_dir), str(port), str(args.workers)],
                              cwd=ROOT)
    try:
        import httpx

        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(url + "/api/health", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.3)
        cases = [("cgan (GAN)", {"generator": "cgan@0"}, args.requests),
                 ("ddpm, DDIM-50", {"generator": "ddpm@0", "steps": 50}, args.ddpm_requests)]
        rows, loads = [], []
        for label, extra, total in cases:
            for c in (int(v) for v in args.concurrency.split(",")):
                loads.append(os.getloadavg()[0])
                body = {"run": RUN_NAME, "class": "pneumonia", "n": args.n, "seed": 0, **extra}
                res = asyncio.run(closed_loop(url, body, c, max(total, c)))
                rows.append((label, c, res))
                print(f"{label:14s} c={c:2d}: {res['rps']:.2f} req/s  p50 {res['p50'] * 1000:.0f} ms  "
                      f"p95 {res['p95'] * 1000:.0f} ms  codes {res['codes']}  ({res['n']} requests, load {loads[-1]:.1f})",
                      flush=True)
    finally:
        server.terminate()
        server.wait(10)

    cmd = "bench/bench_serve.py " + " ".join(sys.argv[1:])
    lines = [
        "## serve — `POST /api/generate` (n = 16) on a live uvicorn server",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {machine()}; Python {platform.python_version()}",
        f"- 1-minute load average at each level: {min(loads):.1f}–{max(loads):.1f} (machine shared with other engineers;"
        " the numbers move with it)",
        f"- command: `.venv/bin/python {cmd.strip()}`",
        f"- server: `create_app(runs, concurrency={args.workers}, queue=256)` in its own process; client: httpx async,"
        " closed loop (each client sends its next request when the last returns); one warm-up request first",
        "- models trained 50 steps only (cgan default widths; ddpm default 0.64 M-param UNet, DDIM 50 steps, guidance 1):"
        " this is serving speed, not sample quality",
        "",
        "| generator | clients | requests | req/s | images/s | p50 ms | p95 ms | status codes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, c, r in rows:
        lines.append(f"| {label} | {c} | {r['n']} | {r['rps']:.2f} | {r['rps'] * args.n:.0f} | {r['p50'] * 1000:.0f} | "
                     f"{r['p95'] * 1000:.0f} | {', '.join(map(str, r['codes']))} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
