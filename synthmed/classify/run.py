"""``run_classify``: dataset → few-shot split → baseline classifier → test metrics, all written to one folder.

The Python API behind ``synthmed classify``. Outputs in ``out_dir``:
``split.json`` (manifest), ``classifier.pt``, ``history.json``, ``metrics.json``,
``confusion_matrix.png`` and ``train/`` (per-step CSV + TensorBoard logs).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from synthmed.callbacks import Callback, standard_callbacks
from synthmed.classify.config import ClassifierConfig
from synthmed.classify.train import train_classifier
from synthmed.config import validate
from synthmed.metrics.classification import (
    KEY_CLASS_NAMES,
    KEY_CONFUSION,
    evaluate_classifier,
    plot_confusion_matrix,
    write_metrics,
)
from synthmed.utils.runtime import git_commit, package_versions

SPLIT_FILE = "split.json"
CONFUSION_FILE = "confusion_matrix.png"
KEY_RUN = "run"


def run_classify(data_name: str, *, shots: int = 50, model: str = "resnet18", seed: int = 0,
                 out_dir: str | Path, data_dir: str | Path | None = None, size: int = 28,
                 protocol: str | None = None,
                 callbacks: list[Callback] | Callback | None = None, progress: bool = True,
                 **overrides: Any) -> dict[str, Any]:
    """Train and test the few-shot baseline classifier on one dataset; write every output to ``out_dir``.

    Args:
        data_name: dataset id known to ``synthmed.data.load_dataset`` (e.g. "pneumoniamnist").
        shots: training images per class (k of the k-shot split).
        model: classifier name from ``list_classifiers()``.
        seed: seeds the split and the classifier (init, data order, augmentation).
        out_dir: folder for the outputs (created).
        data_dir: folder holding the dataset files (default: ``$SYNTHMED_DATA_DIR``).
        size: image side in pixels (28 or 64 for MedMNIST).
        protocol: split protocol ("official" or "fraction"); None = the data layer's default
            ("official" when the dataset ships a split, as MedMNIST does).
        callbacks: training callbacks; default: progress bar + CSV + TensorBoard under ``out_dir/train``.
        progress: show the progress bar (default callbacks only).
        **overrides: any other ``ClassifierConfig`` field (stem, max_steps, augment, lr, ...).

    Returns:
        The test metrics (see ``classification_metrics``) plus ``"run"``: dataset, checksum, split
        sizes, resolved config, steps done, best step, classifier checksum, wall time, versions.
    """
    from synthmed.data import load_dataset, make_split  # the data layer is heavy; load it only here

    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = validate(ClassifierConfig, {"model": model, "seed": seed, **overrides}, source="classify options")
    data = load_dataset(data_name, size=size, data_dir=data_dir)
    split = make_split(data, shots=shots, seed=seed, protocol=protocol)
    split.to_json(out / SPLIT_FILE)
    parts = split.apply(data)
    if callbacks is None:
        callbacks = standard_callbacks(out / "train", desc=f"classify {model}", progress=progress)
    clf = train_classifier(parts["train"], parts["val"], config, out_dir=out, callbacks=callbacks)
    metrics = evaluate_classifier(clf, parts["test"])
    metrics[KEY_RUN] = {
        "dataset": data_name,
        "dataset_checksum": data.checksum,
        "size": size,
        "shots": shots,
        "protocol": split.protocol,
        "split_hash": split.hash,
        "seed": seed,
        "n_train": len(parts["train"]),
        "n_val": len(parts["val"]),
        "n_test": len(parts["test"]),
        "config": config.model_dump(mode="json"),
        "steps_done": clf.steps_done,
        "best_step": clf.best_step,
        "stopped_by": clf.stopped_by,
        "classifier_checksum": clf.checksum,
        "wall_s": round(time.perf_counter() - t0, 2),
        "versions": package_versions(),
        "git_commit": git_commit(),
    }
    plot_confusion_matrix(metrics[KEY_CONFUSION], metrics[KEY_CLASS_NAMES], out / CONFUSION_FILE,
                          title=f"{data_name} {shots}-shot, {model}, seed {seed}")
    write_metrics(metrics, out)
    return metrics
