"""Benchmark: our `domain` FID pipeline vs torchmetrics' stock FrechetInceptionDistance.

Both get the same custom feature module (the penultimate layer of a ResNet-18 domain classifier)
and the same real PneumoniaMNIST images (600 train vs 600 test by default). We time
images → features → FID for each (features/s over both sets, median of --repeats alternating runs),
check the two FID values agree within 1e-3, and time the rest of our metric set (KID, PR, IS)
computed from the same features ("features once, metrics many").

Usage:
    .venv/bin/python bench/bench_fidelity.py [--n 600] [--batch-size 100] [--repeats 3] [--train-steps 150]
        [--random-init] [--no-write]

Writes/updates the ``fidelity`` section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synthmed.metrics.features import domain_extractor, extract_features  # noqa: E402
from synthmed.metrics import fidelity as F  # noqa: E402
from synthmed.metrics import memorization as M  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/_results.py: shared section writer
from _results import replace_section as _replace_section  # noqa: E402

SECTION = "fidelity"


def load_pneumonia(data_dir: Path):
    from synthmed.data.types import LabeledImages

    with np.load(data_dir / "pneumoniamnist.npz") as z:
        arrays = {k: z[k] for k in z.files}

    def make(split):
        return LabeledImages(images=np.ascontiguousarray(arrays[f"{split}_images"][..., None]),
                             labels=arrays[f"{split}_labels"].reshape(-1).astype(np.int64),
                             class_names=("normal", "pneumonia"), name="pneumoniamnist")

    return make("train"), make("val"), make("test")


def domain_classifier(train, steps: int, random_init: bool):
    """A ResNet-18 domain classifier: trained on the full train split for `steps`, or random init."""
    from synthmed.classify.config import ClassifierConfig
    from synthmed.classify.models import build_classifier
    from synthmed.classify.train import train_classifier
    from synthmed.classify.trained import TrainedClassifier

    config = ClassifierConfig(max_steps=steps, patience=None, seed=0)
    if random_init:
        torch.manual_seed(0)
        net = build_classifier("resnet18", train.num_classes, train.channels, train.image_size, config.stem)
        return TrainedClassifier(net, config, train.class_names, train.images.shape[1:]), 0.0
    cache = ROOT / "bench" / "out" / f"domain_resnet18_{steps}steps.pt"  # bench/out/ is git-ignored
    if cache.exists():
        return TrainedClassifier.load(cache, device="cpu"), None
    t0 = time.perf_counter()
    clf = train_classifier(train, None, config)
    seconds = time.perf_counter() - t0
    clf.save(cache)
    return clf, seconds


def ours(ext, real, fake, batch_size):
    t0 = time.perf_counter()
    fr = extract_features(ext, real, batch_size, device="cpu")
    ff = extract_features(ext, fake, batch_size, device="cpu")
    fid = F.features_to_fid(fr, ff)
    return time.perf_counter() - t0, fid, (fr, ff)


def torchmetrics_fid(module, real, fake, batch_size):
    from torchmetrics.image.fid import FrechetInceptionDistance

    t0 = time.perf_counter()
    metric = FrechetInceptionDistance(feature=module)
    for imgs, is_real in ((real, True), (fake, False)):
        for s in range(0, len(imgs), batch_size):
            metric.update(torch.from_numpy(imgs[s : s + batch_size]).permute(0, 3, 1, 2), real=is_real)
    fid = float(metric.compute())
    return time.perf_counter() - t0, fid


def machine() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "?")
    except (OSError, subprocess.SubprocessError):
        model = platform.processor() or "?"
    return f"{os.cpu_count()}-core CPU, {model}; torch {torch.__version__}, {torch.get_num_threads()} threads"


def update_results(text: str, path: Path) -> None:
    _replace_section(SECTION, text, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=600, help="real train images and test images (each)")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--train-steps", type=int, default=150, help="domain classifier steps on the full train split")
    ap.add_argument("--random-init", action="store_true", help="skip training; random-init ResNet-18")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    data_dir = Path(os.environ.get("SYNTHMED_DATA_DIR", ROOT.parent / "shared" / "data"))
    train, val, test = load_pneumonia(data_dir)
    rng = np.random.default_rng(0)
    real = train.images[rng.choice(len(train), args.n, replace=False)]
    fake = test.images[rng.choice(len(test), min(args.n, len(test)), replace=False)]

    clf, train_s = domain_classifier(train, args.train_steps, args.random_init)
    ext = domain_extractor(clf)
    ours(ext, real[:50], fake[:50], args.batch_size)  # warm-up (allocator, first-call overheads)
    torchmetrics_fid(clf.feature_module(), real[:50], fake[:50], args.batch_size)

    t_ours, t_tm, fids = [], [], []
    for _ in range(args.repeats):  # alternate so background load hits both alike
        t, fid_ours, feats = ours(ext, real, fake, args.batch_size)
        t_ours.append(t)
        t2, fid_tm = torchmetrics_fid(clf.feature_module(), real, fake, args.batch_size)
        t_tm.append(t2)
        fids.append((fid_ours, fid_tm))
    n_img = len(real) + len(fake)
    fps_ours, fps_tm = n_img / statistics.median(t_ours), n_img / statistics.median(t_tm)
    max_diff = max(abs(a - b) for a, b in fids)

    t0 = time.perf_counter()
    fr, ff = feats
    _, fake_logits = extract_features(ext, fake, args.batch_size, device="cpu", return_logits=True)
    full = F.fidelity_from_features(fr, ff, fake_logits=fake_logits, extractor=ext)
    t_full = time.perf_counter() - t0
    load1 = os.getloadavg()[0]

    # memorization in pixel space: the real test images against the full train split, threshold
    # calibrated on val; real test images are new, so their copy rate is the detector's false-positive rate
    t0 = time.perf_counter()
    report = M.copy_report(test.images, test.labels, train.images, heldout_images=val.images,
                           class_names=train.class_names, device="cpu")
    t_mem = time.perf_counter() - t0
    rep, n_exact = report.summary(), int((report.spaces["pixel"].nn_dist == 0).sum())

    cmd = "SYNTHMED_DATA_DIR=../shared/data .venv/bin/python bench/bench_fidelity.py " + " ".join(sys.argv[1:])
    feature_net = ("random-init ResNet-18 (synthmed.classify, standard stem)" if args.random_init else
                   f"ResNet-18 domain classifier (synthmed.classify, standard stem) trained {args.train_steps} steps "
                   f"x batch 32 on the full PneumoniaMNIST train split (4708 images), "
                   + ("reused from bench/out/" if train_s is None else f"trained in {train_s:.0f} s"))
    text = f"""## fidelity — `domain` FID pipeline vs torchmetrics FrechetInceptionDistance

- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {machine()}
- 1-minute load average at measurement: {load1:.2f} (machine shared with other engineers)
- command: `{cmd.strip()}`
- data: {len(real)} PneumoniaMNIST train images vs {len(fake)} test images (28 px, grey), batch {args.batch_size}
- feature module (same for both): {feature_net}; D = {ext.num_features}

| pipeline | images → features → FID, median of {args.repeats} | features/s | FID |
|---|---|---|---|
| synthmed (`extract_features` + `features_to_fid`) | {statistics.median(t_ours):.2f} s | {fps_ours:.0f} | {fids[-1][0]:.6f} |
| torchmetrics `FrechetInceptionDistance(feature=module)` | {statistics.median(t_tm):.2f} s | {fps_tm:.0f} | {fids[-1][1]:.6f} |

- throughput ratio synthmed / torchmetrics: **{fps_ours / fps_tm:.2f}x** (target ≥ 1.0x)
- max |FID_synthmed − FID_torchmetrics| over repeats: **{max_diff:.2e}** (target ≤ 1e-3)
- all runs (s): synthmed {[round(t, 2) for t in t_ours]}, torchmetrics {[round(t, 2) for t in t_tm]}
- the rest of the metric set from the same features (fake logits pass + KID {F.KID_SUBSETS} subsets of
  {full[F.KEY_KID_SUBSET_SIZE]} + PR k=3 + IS): {t_full:.2f} s → KID {full[F.KEY_KID_MEAN]:.3g} ± {full[F.KEY_KID_STD]:.2g},
  precision {full[F.KEY_PRECISION]:.3f}, recall {full[F.KEY_RECALL]:.3f}, IS {full[F.KEY_IS_MEAN]:.3f}
  (real test vs real train images: what a perfect generator would score at this n)
- memorization, pixel space: {rep[M.KEY_N_SYNTHETIC]} real test images vs all {rep[M.KEY_N_TRAIN]} train images,
  threshold calibrated on the {len(val)} val images: {t_mem:.2f} s; threshold {rep["pixel"][M.KEY_THRESHOLD]:.3f}
  (L2 on [0, 1] pixels); flagged {rep[M.KEY_COPY_COUNT]} = {100 * rep[M.KEY_COPY_FRACTION]:.1f} % (ratio test
  {100 * rep["pixel"][M.KEY_RATIO_COPY_FRACTION]:.1f} %, threshold {100 * rep["pixel"][M.KEY_THRESHOLD_COPY_FRACTION]:.1f} %):
  of these, {n_exact} are exact duplicates of a train image (dataset leaks, rightly flagged); the rest is the
  detector's false-positive rate on genuinely new real images
"""
    print(text)
    if not args.no_write:
        update_results(text, ROOT / "bench" / "RESULTS.md")


if __name__ == "__main__":
    main()
