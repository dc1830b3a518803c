"""External check: ResNet-18 at 28 px on the full official PneumoniaMNIST train split (4,708 images),
tested on the official test set (624), next to the MedMNIST v2 published ResNet-18 (28) figures.

Also measures the training throughput of the two ResNet-18 stems at 28 px (the numbers behind the
default ``ClassifierConfig.stem``). Writes its section of bench/RESULTS.md.

    .venv/bin/python bench/medmnist_full.py [--stem standard] [--epochs 20] [--max-minutes 8.5] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from synthmed.classify import ClassifierConfig, build_classifier, train_classifier  # noqa: E402
from synthmed.data.types import LabeledImages  # noqa: E402
from synthmed.metrics.classification import evaluate_classifier  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/_results.py: shared section writer
from _results import cpu_model  # noqa: E402
from _results import replace_section as _replace_section  # noqa: E402

SECTION = "medmnist_full"
PUBLISHED = {"accuracy": 0.854, "roc_auc": 0.944}  # MedMNIST v2 (Yang et al. 2023), Table: PneumoniaMNIST, ResNet-18 (28)


def load_official(data_dir: Path) -> dict[str, LabeledImages]:
    """The official splits straight from pneumoniamnist.npz (no k-shot sampling, no dedup)."""
    with np.load(data_dir / "pneumoniamnist.npz") as z:
        return {
            s: LabeledImages(np.ascontiguousarray(z[f"{s}_images"][..., None]),
                             z[f"{s}_labels"].reshape(-1).astype(np.int64), ("normal", "pneumonia"),
                             name="pneumoniamnist")
            for s in ("train", "val", "test")
        }


def stem_throughput(stem: str, steps: int = 8, batch: int = 32) -> float:
    """Training images per second of ResNet-18 at 28 px grey (AdamW step included), after 2 warm-up steps."""
    torch.manual_seed(0)
    net = build_classifier("resnet18", 2, 1, 28, stem).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.randint(0, 256, (batch, 1, 28, 28), dtype=torch.uint8)
    y = torch.randint(0, 2, (batch,))

    def step():
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t0)


def write_section(text: str) -> None:
    _replace_section(SECTION, text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("SYNTHMED_DATA_DIR", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--stem", default="standard", choices=["standard", "cifar"])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--eval-every", type=int, default=36, help="steps between val passes (36 = one epoch at batch 128)")
    ap.add_argument("--patience", type=int, default=6)
    ap.add_argument("--max-minutes", type=float, default=8.5, help="wall-clock cap on training")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default: torch's choice); 1 is far faster on an oversubscribed CPU")
    ap.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    tput = {s: stem_throughput(s) for s in ("standard", "cifar")}
    sets = load_official(Path(args.data_dir))
    config = ClassifierConfig(model="resnet18", stem=args.stem, epochs=args.epochs, batch_size=args.batch_size,
                              lr=args.lr, eval_every=args.eval_every, patience=args.patience,
                              max_minutes=args.max_minutes, seed=args.seed)
    t0 = time.perf_counter()
    clf = train_classifier(sets["train"], sets["val"], config)
    train_s = time.perf_counter() - t0
    m = evaluate_classifier(clf, sets["test"])
    wall_s = time.perf_counter() - t_start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load_end = os.getloadavg()[0]
    best = next(r for r in clf.history if r["step"] == clf.best_step)
    cmd = "SYNTHMED_DATA_DIR=../shared/data .venv/bin/python bench/medmnist_full.py " + " ".join(sys.argv[1:])
    text = f"""## Baseline classifier: ResNet-18 (28 px) on full PneumoniaMNIST vs MedMNIST v2

- Machine: 2-core CPU, {cpu_model()}, torch {torch.__version__} ({torch.get_num_threads()} threads); shared with
  other engineers, 1-min load average {load_start:.2f} at start, {load_end:.2f} at end
- Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC
- Command: `{cmd.strip()}`
- Training: official train split (4,708), early stopping on official val (524) macro-F1, test on official test (624).
  ResNet-18, stem `{args.stem}`, AdamW lr {args.lr} cosine, batch {args.batch_size}, budget {args.epochs} epochs
  ({config.total_steps(len(sets['train']))} steps) capped at {args.max_minutes} min; no augmentation, no class balancing, seed {args.seed}.
- Steps done {clf.steps_done} (stopped by {clf.stopped_by}); kept step {clf.best_step} (val macro-F1 {best['val_macro_f1']:.3f}).

| | test ACC | test AUC | macro-F1 | balanced ACC |
|---|---|---|---|---|
| synthmed ResNet-18 (28), stem `{args.stem}` | {m['accuracy']:.3f} | {m['roc_auc']:.3f} | {m['macro_f1']:.3f} | {m['balanced_accuracy']:.3f} |
| MedMNIST v2 published ResNet-18 (28) | {PUBLISHED['accuracy']:.3f} | {PUBLISHED['roc_auc']:.3f} | – | – |
| difference (synthmed − published) | {m['accuracy'] - PUBLISHED['accuracy']:+.3f} | {m['roc_auc'] - PUBLISHED['roc_auc']:+.3f} | | |

- Confusion matrix (rows true normal/pneumonia, columns predicted): {m['confusion_matrix']}
- Wall time {wall_s:.0f} s (training {train_s:.0f} s); peak RSS {peak_mib:.0f} MiB (`resource.getrusage`).
- Stem throughput, ResNet-18 at 28 px grey, batch 32, AdamW training step, measured in the same run (load as above):
  `standard` {tput['standard']:.0f} img/s, `cifar` {tput['cifar']:.0f} img/s.
"""
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
