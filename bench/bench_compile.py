"""Does ``torch.compile`` pay on this CPU once its compile time is counted? (issue 13)

For the default study's three heaviest training loops (ResNet-18 classifier at batch 32, the cgan's G+D step at
batch 64, the ddpm UNet at batch 64; 28 px, 1 thread, as each study worker runs) the same training step runs
eager and with ``torch.compile`` (inductor, the default mode) on the model, the optimiser step eager:

- cold: a fresh inductor cache folder, so the first steps pay the whole compile;
- warm: a new process on the cache the cold run left (what a second stage of the same study would see).

Each row is one fresh process. Reported: the first 3 steps' seconds (where the compile falls), the median
seconds of a step after that, and the projected seconds of the default study's stage at its step count
(first 3 steps + median × the rest), so "pays" reads off one column. Inputs are random tensors of the stage's
shapes; the speed of a step does not depend on the pixels.

    python bench/bench_compile.py [--quick]

Run it alone: the load average is recorded beside each row.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from _results import header, replace_section  # noqa: E402

# unit -> (description, steps timed, steps timed with --quick, the default study's steps for this stage)
UNITS = {
    "classify": ("classifier ResNet-18 (batch 32, AdamW)", 60, 6, 300),
    "cgan": ("generator cgan (D + G step, batch 64)", 60, 6, 1000),
    "ddpm": ("generator ddpm UNet (batch 64, AdamW)", 20, 5, 750),
}
FIRST = 3  # steps counted as the compile's (inductor compiles forward and backward on the first call)


def _classify_step(compiled: bool):
    import torch
    import torch.nn.functional as F

    from synthmed.classify.models import build_classifier

    net = build_classifier("resnet18", 2, 1, 28)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    model = torch.compile(net) if compiled else net
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (32, 1, 28, 28), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 2, (32,), generator=g)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def _cgan_step(compiled: bool):
    import torch
    import torch.nn.functional as F

    from synthmed.generators.gan_nets import DCGANDiscriminator, DCGANGenerator

    g_net, d_net = DCGANGenerator(nz=100, num_classes=2, image_size=28, channels=1, base_channels=64), \
        DCGANDiscriminator(2, 28, 1, 64, norm="batch", conditioning="projection")
    opt_g = torch.optim.Adam(g_net.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d_net.parameters(), lr=2e-4, betas=(0.5, 0.999))
    G, D = (torch.compile(g_net), torch.compile(d_net)) if compiled else (g_net, d_net)
    gen = torch.Generator().manual_seed(0)
    real = torch.rand(64, 1, 28, 28, generator=gen) * 2 - 1
    y = torch.randint(0, 2, (64,), generator=gen)

    def step():
        z = torch.randn(64, 100, generator=gen)
        with torch.no_grad():
            fake = G(z, y)
        r, _ = D(real, y)
        f, _ = D(fake, y)
        loss_d = F.softplus(-r).mean() + F.softplus(f).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        f, _ = D(G(torch.randn(64, 100, generator=gen), y), y)
        loss_g = F.softplus(-f).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    return step


def _ddpm_step(compiled: bool):
    import torch
    import torch.nn.functional as F

    from synthmed.generators import get_generator_class
    from synthmed.generators.diffusion import build_unet

    cfg = get_generator_class("ddpm").make_config({})
    unet = build_unet(cfg, 1, 28, 2)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr)
    model = torch.compile(unet) if compiled else unet
    gen = torch.Generator().manual_seed(0)
    size = unet.config.sample_size
    x = torch.randn(64, 1, size, size, generator=gen)
    y = torch.randint(0, 3, (64,), generator=gen)

    def step():
        t = torch.randint(0, cfg.timesteps, (64,), generator=gen)
        loss = F.mse_loss(model(x, t, class_labels=y).sample, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


STEPS = {"classify": _classify_step, "cgan": _cgan_step, "ddpm": _ddpm_step}


def run_unit(name: str, compiled: bool, quick: bool) -> dict:
    """Seconds of each step of the unit in this process (model building outside the clock)."""
    import torch

    torch.set_num_threads(1)
    step = STEPS[name](compiled)
    n = UNITS[name][2 if quick else 1]
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return {"first": sum(times[:FIRST]), "median": statistics.median(times[FIRST:])}


def _spawn(name: str, mode: str, cache: str, quick: bool) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TORCHINDUCTOR_CACHE_DIR=cache)
    cmd = [sys.executable, __file__, "--unit", name, "--mode", mode] + (["--quick"] if quick else [])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"unit {name} ({mode}) failed (exit {out.returncode}): {out.stderr.strip()[-400:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r["load"] = os.getloadavg()[0]
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--unit", choices=sorted(UNITS))
    ap.add_argument("--mode", choices=["eager", "compiled"], default="eager")
    ap.add_argument("--quick", action="store_true", help="a few steps per unit (a smoke check of the script)")
    ap.add_argument("--only", nargs="*", choices=sorted(UNITS), help="measure these units only")
    args = ap.parse_args()
    if args.unit:
        print(json.dumps(run_unit(args.unit, args.mode == "compiled", args.quick)))
        return
    import torch

    rows = []
    for name in args.only or UNITS:
        with tempfile.TemporaryDirectory(prefix="inductor-") as cache:
            for label, mode in (("eager", "eager"), ("compiled, cold cache", "compiled"),
                                ("compiled, warm cache", "compiled")):
                r = _spawn(name, mode, cache, args.quick)
                rows.append((name, label, r))
                print(name, label, json.dumps(r), flush=True)
    lines = [header("python bench/bench_compile.py" + (" --quick" if args.quick else "")),
             f"- torch {torch.__version__}, inductor (default mode), 1 thread per process, 28 px; each row one fresh "
             f"process; cold = an empty inductor cache folder, warm = a new process on the cache the cold run left.",
             f"- stage s (projected) = first {FIRST} steps + median step × the rest of the default study's steps for "
             "that stage; eager's row is the baseline of each unit.", "",
             "| unit | mode | first 3 steps s | median step s | default steps | stage s (projected) | vs eager | 1-min load |",
             "|---|---|---|---|---|---|---|---|"]
    base = {}
    for name, label, r in rows:
        desc, _, _, stage_steps = UNITS[name]
        stage = r["first"] + r["median"] * (stage_steps - FIRST)
        base.setdefault(name, stage)
        lines.append(f"| {desc} | {label} | {r['first']:.2f} | {r['median']:.4f} | {stage_steps} | {stage:.0f} | "
                     f"{stage / base[name]:.2f}× | {r['load']:.2f} |")
    replace_section("compile", "## torch.compile per training loop (issue 13; bench/bench_compile.py)\n\n"
                    + "\n".join(lines))


if __name__ == "__main__":
    main()
