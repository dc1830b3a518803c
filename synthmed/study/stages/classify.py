"""Stage ``classify``: train the classifier on one condition's training set; test it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from synthmed.callbacks import standard_callbacks
from synthmed.classify import ClassifierConfig
from synthmed.config import StageConfig
from synthmed.data.types import LabeledImages
from synthmed.runs.layout import CONFUSION_FILE, METRICS_FILE
from synthmed.study.stages.base import StageContext, load_samples, load_split_sets, stage_config
from synthmed.utils.io import write_json_atomic
from synthmed.utils.runtime import seed_everything


class Config(StageConfig):
    condition: str  # a registered condition
    options: dict[str, Any] = {}  # the condition's own options (validated by the condition)
    classifier: ClassifierConfig  # resolved; seed and augmentation are set per run
    seed: int
    fair_budget: dict[str, Any] | None = None  # the ceiling's own budget rule (study ``ceiling``): max_steps, balanced


def fair_steps(classifier: ClassifierConfig, n_real: int, n_pool: int, cap: int) -> int:
    """Steps that give the pool as many epochs as ``classifier.max_steps`` give the k-shot set, capped."""
    return max(1, min(cap, -(-classifier.max_steps * n_pool // max(n_real, 1))))


def classify_into(folder: Path, train: LabeledImages, val: LabeledImages | None, test: LabeledImages,
                  config: ClassifierConfig, *, desc: str, progress: bool = True, tensorboard: bool = True,
                  title: str | None = None, run_facts: dict[str, Any] | None = None):
    """Train on ``train`` (early stopping on ``val``), test on ``test``; write ``classifier.pt``,
    ``history.json``, ``metrics.json`` (plus ``run_facts`` under "run") and the confusion matrix.
    Returns ``(classifier, metrics, wall seconds)``."""
    from synthmed.classify import train_classifier
    from synthmed.metrics.classification import evaluate_classifier, plot_confusion_matrix

    seed_everything(config.seed)
    t0 = time.perf_counter()
    clf = train_classifier(train, val, config, out_dir=folder,
                           callbacks=standard_callbacks(folder, desc=desc, progress=progress, tensorboard=tensorboard))
    wall = time.perf_counter() - t0
    metrics = evaluate_classifier(clf, test)
    if run_facts is not None:
        metrics["run"] = {**run_facts, "steps_done": clf.steps_done, "best_step": clf.best_step,
                          "stopped_by": clf.stopped_by, "classifier_checksum": clf.checksum, "wall_s": round(wall, 2)}
    write_json_atomic(Path(folder) / METRICS_FILE, metrics)
    plot_confusion_matrix(metrics["confusion_matrix"], list(train.class_names), Path(folder) / CONFUSION_FILE,
                          title=title)
    return clf, metrics, wall


def run(stage, folder: Path, inputs: dict[str, Path], ctx: StageContext) -> dict[str, Any]:
    from synthmed.conditions import build_condition

    cfg = stage_config(Config, stage)
    sets, _ = load_split_sets(inputs["split"], ctx)
    real = sets["train"]
    synthetic = load_samples(inputs["samples"], real.class_names) if "samples" in inputs else None
    cond = build_condition(cfg.condition, real=real, train_pool=sets["train_pool"], synthetic=synthetic,
                           seed=cfg.seed, options=cfg.options)
    update: dict[str, Any] = {"augment": cond.augment, "seed": cfg.seed}
    if cfg.fair_budget:  # the ceiling trains to its own budget (epochs like real's, balanced, capped)
        update.update(max_steps=fair_steps(cfg.classifier, len(sets["train"]), len(cond.train),
                                           cfg.fair_budget["max_steps"]),
                      balanced_sampling=cfg.fair_budget["balanced_sampling"], epochs=None)
    ccfg = cfg.classifier.model_copy(update=update)
    clf, metrics, wall = classify_into(folder, cond.train, sets["val"], sets["test"], ccfg, desc=stage.name,
                                       progress=ctx.progress, tensorboard=ctx.tensorboard)
    return {"wall_s": wall, "n_train": len(cond.train), "n_real": cond.n_real, "n_extra": cond.n_extra,
            "augment": cond.augment, "steps_done": clf.steps_done, "max_steps": ccfg.max_steps,
            "balanced_sampling": ccfg.balanced_sampling, "stopped_by": clf.stopped_by,
            "metrics": {k: v for k, v in metrics.items() if k != "confusion_matrix"}}
