"""Benchmark the cvae and ddpm families on PneumoniaMNIST 28 px, 50 images/class (seed 0).

Modes (each prints JSON and writes bench/out/<mode>.json; --write updates bench/RESULTS.md):
    python bench/bench_diffusion.py throughput   # our loop vs a plain diffusers loop, samplers, stock pipelines, cvae
    python bench/bench_diffusion.py full ddpm [max_minutes|none] [n_samples]  # default training + samples + grids
    python bench/bench_diffusion.py full cvae
    python bench/bench_diffusion.py sweep        # guidance scale sweep on the bench/out/ddpm checkpoint
    python bench/bench_diffusion.py write        # render bench/out/*.json into bench/RESULTS.md

Only public tools: time.perf_counter, resource.getrusage (peak RSS), os.getloadavg, torch, diffusers.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
SECTION = "bench_diffusion"


# -- helpers -----------------------------------------------------------------------------------
def load_split(shots: int = 50, seed: int = 0):
    """The 50-shot PneumoniaMNIST train split used by tests/conftest.py, plus the official test set."""
    data_dir = Path(os.environ.get("SYNTHMED_DATA_DIR", REPO.parent / "shared" / "data"))
    with np.load(data_dir / "pneumoniamnist.npz") as z:
        imgs, labels = z["train_images"][..., None], z["train_labels"].reshape(-1).astype(np.int64)
        test = (z["test_images"][..., None], z["test_labels"].reshape(-1).astype(np.int64))
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(np.flatnonzero(labels == k), shots, replace=False) for k in (0, 1)])
    return imgs[idx], labels[idx], test, (imgs, labels)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine() -> dict:
    model = next((ln.split(":", 1)[1].strip() for ln in subprocess.run(
        ["lscpu"], capture_output=True, text=True).stdout.splitlines() if ln.startswith("Model name")), "?")
    return {"cpu": model, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_1min": round(os.getloadavg()[0], 2), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "python": platform.python_version(), "torch": torch.__version__}


def timed(fn, repeat: int = 1) -> float:
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def dump(name: str, result: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


# -- throughput --------------------------------------------------------------------------------
def reference_step_times(gen, x0: torch.Tensor, y: torch.Tensor, steps: int) -> list[float]:
    """A plain diffusers training loop on the same UNet/batch/optimiser: the overhead baseline (s per step)."""
    unet, opt, sched = gen.unet_, gen.optimizer_, gen.noise_scheduler_
    g, times = torch.Generator().manual_seed(1), []
    for _ in range(steps):
        t0 = time.perf_counter()
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, 1000, (len(x0),), generator=g)
        loss = torch.nn.functional.mse_loss(unet(sched.add_noise(x0, noise, t), t, class_labels=y).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return times


def our_step_times(images, labels, steps: int) -> tuple[list[float], object]:
    """Per-step wall times of our full ``fit`` loop, read from on_step events (setup excluded)."""
    from synthmed.callbacks import Callback
    from synthmed.generators import make_generator

    class StepTimer(Callback):
        def __init__(self):
            self.t = []

        def on_step(self, step, scalars):
            self.t.append(time.perf_counter())

    timer = StepTimer()
    gen = make_generator("ddpm", max_steps=steps + 1, grid_every=0, progress=False)
    gen.fit(images, labels, callbacks=timer)
    return list(np.diff(timer.t)), gen


def stock_pipeline_images_per_s(gen, kind: str, n: int, steps: int) -> float:
    """diffusers' stock DDIMPipeline/DDPMPipeline. They pass no class labels, so the UNet is wrapped to
    add the label (class 1) to every call; the extra cost is one tensor fill per step."""
    from diffusers import DDIMPipeline, DDPMPipeline

    from synthmed.generators.diffusion import build_scheduler

    class Labelled(torch.nn.Module):  # thin wrapper: same UNet, conditional on one class
        def __init__(self, unet):
            super().__init__()
            self.unet, self.config, self.dtype, self.device = unet, unet.config, unet.dtype, unet.device

        def forward(self, x, t):
            return self.unet(x, t, class_labels=torch.ones(len(x), dtype=torch.long))

    pipe_cls = DDIMPipeline if kind == "ddim" else DDPMPipeline
    pipe = pipe_cls(unet=Labelled(gen.ema_.module.eval()), scheduler=build_scheduler(gen.config, kind))
    pipe.set_progress_bar_config(disable=True)
    kwargs = {"num_inference_steps": steps, "output_type": "np", "generator": torch.Generator().manual_seed(0)}
    if kind == "ddim":
        kwargs["eta"] = 0.0
    return n / timed(lambda: pipe(batch_size=n, **kwargs))


def throughput() -> dict:
    from synthmed.generators import make_generator
    from synthmed.generators.training import to_model_tensor

    images, labels, _, _ = load_split()
    make_generator("ddpm", max_steps=1, grid_every=0, progress=False).fit(images, labels)  # warm-up
    res = {"machine": machine()}
    # ours: the full fit() loop (sampler, label dropout, EMA, clipping, callbacks, divergence guard);
    # rounds interleave ours and the reference so load drift on the shared CPU hits both; medians per step
    n_steps, ours, ref = 8, [], []
    for _ in range(2):
        times, gen = our_step_times(images, labels, n_steps)
        ours += times
        b = gen.config.batch_size
        x0, y = to_model_tensor(images[:b]), torch.as_tensor(labels[:b])
        ref += reference_step_times(gen, x0, y, n_steps)
    t_ours, t_ref = float(np.median(ours)), float(np.median(ref))
    res["ddpm_train"] = {"batch": b, "ours_steps_per_s": 1 / t_ours, "ref_steps_per_s": 1 / t_ref,
                         "ours_img_per_s": b / t_ours, "overhead_ratio": t_ref / t_ours,
                         "params_M": sum(p.numel() for p in gen.unet_.parameters()) / 1e6,
                         "timing": f"median of {len(ours)} steps each, 2 interleaved rounds"}
    # samplers (w=1, conditional; our loop) vs stock pipelines at equal steps; best of 2 interleaved runs
    n_ddim, n_ddpm = 8, 4
    lab = np.ones(n_ddim, np.int64)
    ddim, stock_ddim, ddpm, stock_ddpm = [], [], [], []
    for _ in range(2):
        ddim.append(n_ddim / timed(lambda: gen.sample(lab, seed=0, sampler="ddim", steps=50, progress=False)))
        stock_ddim.append(stock_pipeline_images_per_s(gen, "ddim", n_ddim, 50))
        ddpm.append(n_ddpm / timed(lambda: gen.sample(lab[:n_ddpm], seed=0, sampler="ddpm", progress=False)))
        stock_ddpm.append(stock_pipeline_images_per_s(gen, "ddpm", n_ddpm, 1000))
    ddim, stock_ddim, ddpm, stock_ddpm = max(ddim), max(stock_ddim), max(ddpm), max(stock_ddpm)
    res["ddpm_sample"] = {"ddim50_img_per_s": ddim, "ddpm1000_img_per_s": ddpm, "ddim_vs_ddpm": ddim / ddpm,
                          "stock_ddim50_img_per_s": stock_ddim, "ours_vs_stock_ddim": ddim / stock_ddim,
                          "stock_ddpm1000_img_per_s": stock_ddpm, "ours_vs_stock_ddpm": ddpm / stock_ddpm,
                          "ddim_batch": n_ddim, "ddpm_batch": n_ddpm,
                          "note": "DDIM batch 8, DDPM batch 4: DDIM/DDPM ratio is in images/s",
                          "guided_w2_ddim50_img_per_s": n_ddim / timed(lambda: gen.sample(
                              lab, seed=0, steps=50, guidance=2.0, progress=False))}
    res["ddpm_peak_rss_mb"] = peak_rss_mb()
    # cvae
    vae = make_generator("cvae", max_steps=1, grid_every=0).fit(images, labels)
    vae = make_generator("cvae", max_steps=100, grid_every=0)
    t_vae = timed(lambda: vae.fit(images, labels)) / 100
    t_vs = timed(lambda: vae.sample(np.repeat([0, 1], 600), seed=0))
    res["cvae"] = {"train_steps_per_s": 1 / t_vae, "train_img_per_s": vae.config.batch_size / t_vae,
                   "sample_img_per_s": 1200 / t_vs}
    res["peak_rss_mb_after_cvae"] = peak_rss_mb()
    return res


# -- full default runs -------------------------------------------------------------------------
def full(family: str, max_minutes: float | None, n_samples: int = 1200) -> dict:
    from synthmed.callbacks import CallbackList, History, standard_callbacks
    from synthmed.generators import make_generator
    from synthmed.imaging import class_rows_grid, save_png

    images, labels, _, _ = load_split()
    out = OUT / family
    hist = History()
    gen = make_generator(family, max_minutes=max_minutes)
    cbs = CallbackList([*standard_callbacks(out, desc=family, progress=False, tensorboard=False).callbacks, hist])
    res = {"machine": machine(), "config": gen.config.model_dump(mode="json")}
    t0 = time.perf_counter()
    gen.fit(images, labels, callbacks=cbs, out_dir=out)
    res["train_s"] = time.perf_counter() - t0
    res["steps"] = gen.steps_done_
    keys = [k for k in hist.rows[-1] if k != "step"]
    res["final_losses_mean_last50"] = {k: float(np.mean([r[k] for r in hist.rows[-50:]])) for k in keys}
    res["first_losses_mean_first50"] = {k: float(np.mean([r[k] for r in hist.rows[:50]])) for k in keys}
    req = np.repeat(np.arange(2), n_samples // 2)  # default augmentation set: 1200 images, balanced
    t0 = time.perf_counter()
    samples = gen.sample(req, seed=0)
    res[f"sample_{len(req)}_s"] = time.perf_counter() - t0
    res["sample_img_per_s"] = len(req) / res[f"sample_{len(req)}_s"]
    res["sample_counts"] = np.bincount(req).tolist()
    save_png(out / "samples_first10_per_class.png",
             class_rows_grid(samples, req, 2, 10), scale=3)
    save_png(out / "real_10_per_class.png", class_rows_grid(images, labels, 2, 10), scale=3)
    np.savez_compressed(out / "samples.npz", images=samples, labels=req)
    res["peak_rss_mb"] = peak_rss_mb()
    return res


# -- guidance sweep ----------------------------------------------------------------------------
def fid_on_pca(real: np.ndarray, fake: np.ndarray, pca) -> float:
    """Fréchet distance between Gaussians fitted to PCA features (scipy sqrtm); a cheap FID stand-in
    with no downloaded weights, used only to rank guidance scales against each other."""
    from scipy import linalg

    a, b = pca.transform(real.reshape(len(real), -1) / 255.0), pca.transform(fake.reshape(len(fake), -1) / 255.0)
    mu1, mu2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def sweep(scales=(0.0, 1.0, 2.0, 3.0), per_class: int = 40, steps: int = 20) -> dict:
    """Rank w by (a) accuracy of a logistic-regression oracle trained on all 4708 real train images
    (does the sample look like its class?) and (b) per-class PCA-Fréchet distance to the real test set."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    from synthmed.generators import load_generator

    _, _, (test_x, test_y), (all_x, all_y) = load_split()
    flat = all_x.reshape(len(all_x), -1) / 255.0
    pca = PCA(32, random_state=0).fit(flat)
    oracle = LogisticRegression(max_iter=2000).fit(pca.transform(flat), all_y)
    gen = load_generator(OUT / "ddpm" / "checkpoint.pt")
    req = np.repeat([0, 1], per_class)
    res = {"machine": machine(), "per_class": per_class, "ddim_steps": steps,
           "oracle_acc_on_real_test": float(oracle.score(pca.transform(test_x.reshape(len(test_x), -1) / 255.0), test_y)),
           "scales": {}}
    for w in scales:
        t0 = time.perf_counter()
        fake = gen.sample(req, seed=1, steps=steps, guidance=w, progress=False)
        acc = float(oracle.score(pca.transform(fake.reshape(len(fake), -1) / 255.0), req))
        fd = [fid_on_pca(test_x[test_y == k], fake[req == k], pca) for k in (0, 1)]
        res["scales"][str(w)] = {"oracle_acc": acc, "pca_fd_per_class": fd, "pca_fd_mean": float(np.mean(fd)),
                                 "seconds": time.perf_counter() - t0}
    return res


# -- RESULTS.md --------------------------------------------------------------------------------
def summary_lines() -> list[str]:
    """The headline numbers as a markdown list (the raw JSON follows below it)."""
    def get(name):
        p = OUT / f"{name}.json"
        return json.loads(p.read_text()) if p.exists() else None

    lines, tp = [], get("diffusion_throughput")
    if tp:
        t, s, m = tp["ddpm_train"], tp["ddpm_sample"], tp["machine"]
        lines += [
            f"- machine: {m['cpu']}, {m['cores']} cores, torch threads {m['torch_threads']}, "
            f"1-min load average {m['load_1min']} at {m['date']} (shared CPU: absolute rates are low, ratios are side by side)",
            f"- ddpm training ({t['params_M']:.2f} M params, batch {t['batch']}): ours {t['ours_steps_per_s']:.3f} steps/s "
            f"vs plain diffusers loop {t['ref_steps_per_s']:.3f} steps/s -> overhead ratio {t['overhead_ratio']:.2f}x (target >= 0.95x)",
            f"- sampling (DDIM batch {s['ddim_batch']}, DDPM batch {s['ddpm_batch']}): DDIM-50 {s['ddim50_img_per_s']:.2f} img/s vs DDPM-1000 "
            f"{s['ddpm1000_img_per_s']:.3f} img/s -> {s['ddim_vs_ddpm']:.1f}x (target >= 15x); CFG w=2 DDIM-50 "
            f"{s['guided_w2_ddim50_img_per_s']:.2f} img/s",
            f"- vs stock diffusers pipelines (same EMA UNet wrapped to pass class 1): DDIMPipeline-50 "
            f"{s['stock_ddim50_img_per_s']:.2f} img/s -> ours {s['ours_vs_stock_ddim']:.2f}x; DDPMPipeline-1000 "
            f"{s['stock_ddpm1000_img_per_s']:.3f} img/s -> ours {s['ours_vs_stock_ddpm']:.2f}x (target >= 1.0x)",
            f"- cvae: {tp['cvae']['train_steps_per_s']:.2f} steps/s ({tp['cvae']['train_img_per_s']:.0f} img/s) training, "
            f"{tp['cvae']['sample_img_per_s']:.0f} img/s sampling; peak RSS {tp['ddpm_peak_rss_mb']:.0f} MB after ddpm, "
            f"{tp['peak_rss_mb_after_cvae']:.0f} MB after cvae",
        ]
    for fam in ("cvae", "ddpm"):
        f = get(f"full_{fam}")
        if f:
            n = next(k for k in f if k.startswith("sample_") and k.endswith("_s"))
            lines.append(f"- full default {fam} on the real 50-shot split: {f['steps']} steps in {f['train_s']:.0f} s "
                         f"(load {f['machine']['load_1min']}), final losses (mean of last 50 steps) "
                         f"{ {k: round(v, 4) for k, v in f['final_losses_mean_last50'].items()} }, "
                         f"{n.split('_')[1]} samples in {f[n]:.1f} s, peak RSS {f['peak_rss_mb']:.0f} MB")
    sw = get("ddpm_guidance_sweep")
    if sw:
        lines.append(f"- guidance sweep ({sw['per_class']}/class, DDIM-{sw['ddim_steps']}, bench/out/ddpm checkpoint; oracle "
                     f"= PCA-32 + logistic regression on all real train images, {sw['oracle_acc_on_real_test']:.3f} on real test): "
                     + "; ".join(f"w={w}: oracle acc {v['oracle_acc']:.3f}, PCA-Fréchet {v['pca_fd_mean']:.2f}, {v['seconds']:.0f} s"
                                 for w, v in sw["scales"].items()))
    return lines


def write_results() -> None:
    parts = [f"<!-- BEGIN {SECTION} -->", "## ddpm + cvae (bench/bench_diffusion.py)", "", *summary_lines(), ""]
    for name in ("diffusion_throughput", "full_cvae", "full_ddpm", "ddpm_guidance_sweep"):
        p = OUT / f"{name}.json"
        if p.exists():
            parts += [f"### {name}", "", "```json", p.read_text().strip(), "```", ""]
    parts.append(f"<!-- END {SECTION} -->")
    block = "\n".join(parts)
    path = REPO / "bench" / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    begin, end = f"<!-- BEGIN {SECTION} -->", f"<!-- END {SECTION} -->"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    from synthmed.utils.io import write_text_atomic

    write_text_atomic(path, text)


def main(argv: list[str]) -> None:
    from synthmed.utils.runtime import configure_torch_cpu

    configure_torch_cpu()
    mode = argv[0] if argv else "throughput"
    if mode == "throughput":
        dump("diffusion_throughput", {"command": "python bench/bench_diffusion.py throughput", **throughput()})
    elif mode == "full":
        mins = float(argv[2]) if len(argv) > 2 and argv[2] != "none" else None
        n = int(argv[3]) if len(argv) > 3 else 1200
        dump(f"full_{argv[1]}", {"command": " ".join(["python bench/bench_diffusion.py", *argv]),
                                 **full(argv[1], mins, n)})
    elif mode == "sweep":
        dump("ddpm_guidance_sweep", {"command": "python bench/bench_diffusion.py sweep", **sweep()})
    elif mode == "write":
        write_results()
    else:
        raise SystemExit(f"unknown mode {mode!r}; use throughput, full cvae|ddpm [max_minutes], sweep or write")


if __name__ == "__main__":
    main(sys.argv[1:])
