"""Stage ``classify``: train the classifier on one condition's training set (or its phases, in order); test it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from synthmed.callbacks import standard_callbacks
from synthmed.classify import ClassifierConfig
from synthmed.config import StageConfig
from synthmed.data.types import LabeledImages
from synthmed.conditions.base import ConditionSet, split_steps
from synthmed.runs.layout import CLASSIFIER_FILE, CONFUSION_FILE, METRICS_FILE
from synthmed.study.stages.base import StageContext, load_samples, load_split_sets, stage_config
from synthmed.utils.io import write_json_atomic
from synthmed.utils.runtime import seed_everything


class Config(StageConfig):
    condition: str  # a registered condition
    options: dict[str, Any] = {}  # the condition's own options (validated by the condition)
    classifier: ClassifierConfig  # resolved; seed and augmentation are set per run
    seed: int
    fair_budget: dict[str, Any] | None = None  # the ceiling's own budget rule (study ``ceiling``): max_steps, balanced


BASELINE_INPUT = "baseline"  # input: the baseline condition's classify stage of the same seed (when a condition asks)


def fair_steps(classifier: ClassifierConfig, n_real: int, n_pool: int, cap: int) -> int:
    """Steps that give the pool as many epochs as ``classifier.max_steps`` give the k-shot set, capped."""
    return max(1, min(cap, -(-classifier.max_steps * n_pool // max(n_real, 1))))


def fit_into(folder: Path, train: LabeledImages, val: LabeledImages | None, config: ClassifierConfig, *, desc: str,
             progress: bool = True, tensorboard: bool = True, init_state: dict | None = None, save: bool = True):
    """Train on ``train`` (early stopping on ``val``; from ``init_state`` when given) with the standard
    callbacks writing into ``folder``; ``save``: also write ``classifier.pt`` and ``history.json`` there
    (else ``history.json`` only). Returns ``(classifier, wall seconds)``."""
    from synthmed.classify import train_classifier
    from synthmed.classify.train import HISTORY_FILE

    seed_everything(config.seed)
    t0 = time.perf_counter()
    clf = train_classifier(train, val, config, out_dir=folder if save else None, init_state=init_state,
                           callbacks=standard_callbacks(folder, desc=desc, progress=progress, tensorboard=tensorboard))
    if not save:
        write_json_atomic(Path(folder) / HISTORY_FILE, clf.history)
    return clf, time.perf_counter() - t0


def classify_into(folder: Path, train: LabeledImages, val: LabeledImages | None, test: LabeledImages,
                  config: ClassifierConfig, *, desc: str, progress: bool = True, tensorboard: bool = True,
                  title: str | None = None, run_facts: dict[str, Any] | None = None, init_state: dict | None = None):
    """Train on ``train`` (early stopping on ``val``; from ``init_state`` when given), test on ``test``; write
    ``classifier.pt``, ``history.json``, ``metrics.json`` (plus ``run_facts`` under "run") and the confusion
    matrix. Returns ``(classifier, metrics, wall seconds)``."""
    from synthmed.metrics.classification import evaluate_classifier, plot_confusion_matrix

    clf, wall = fit_into(folder, train, val, config, desc=desc, progress=progress, tensorboard=tensorboard,
                         init_state=init_state)
    metrics = evaluate_classifier(clf, test)
    if run_facts is not None:
        metrics["run"] = {**run_facts, "steps_done": clf.steps_done, "best_step": clf.best_step,
                          "stopped_by": clf.stopped_by, "classifier_checksum": clf.checksum, "wall_s": round(wall, 2)}
    write_json_atomic(Path(folder) / METRICS_FILE, metrics)
    plot_confusion_matrix(metrics["confusion_matrix"], list(train.class_names), Path(folder) / CONFUSION_FILE,
                          title=title)
    return clf, metrics, wall


def classify_in_phases(folder: Path, cond: ConditionSet, budget: int, val: LabeledImages | None, test: LabeledImages,
                       config: ClassifierConfig, *, desc: str, progress: bool = True, tensorboard: bool = True):
    """Train a multi-phase condition inside one step budget: ``budget`` steps split by the phases' shares
    (summing to ``budget``); each phase continues from the weights the previous phase ended with (its
    best-validation weights: model selection on the same real val set as every condition) and gets a fresh
    optimiser (the config's, AdamW by default) with its own cosine schedule over its steps — a warm restart,
    the usual fine-tuning recipe, so no extra learning-rate knob. Earlier phases write their history into
    ``phase-<i>-<name>/``; the last phase is the stage's classifier. Returns ``(classifier, metrics, wall,
    phase records)``."""
    steps = split_steps(budget, [p.share for p in cond.phases])
    state, records, wall = None, [], 0.0
    for i, (phase, n) in enumerate(zip(cond.phases, steps), start=1):
        pcfg = config.model_copy(update={"max_steps": n, "epochs": None})
        pdesc = f"{desc} [{phase.name}]"
        if i < len(steps):
            sub = Path(folder) / f"phase-{i}-{phase.name}"
            sub.mkdir(parents=True, exist_ok=True)
            clf, w = fit_into(sub, phase.train, val, pcfg, desc=pdesc, progress=progress, tensorboard=tensorboard,
                              init_state=state, save=False)
        else:
            clf, metrics, w = classify_into(folder, phase.train, val, test, pcfg, desc=pdesc, progress=progress,
                                            tensorboard=tensorboard, init_state=state)
        state, wall = clf.net.state_dict(), wall + w
        records.append({"phase": phase.name, "share": phase.share, "n_train": len(phase.train), "max_steps": n,
                        "steps_done": clf.steps_done, "best_step": clf.best_step, "stopped_by": clf.stopped_by})
    return clf, metrics, wall, records


def _baseline_classifier(inputs: dict[str, Path], device: str):
    from synthmed.classify import TrainedClassifier

    if BASELINE_INPUT not in inputs:
        return None
    return TrainedClassifier.load(inputs[BASELINE_INPUT] / CLASSIFIER_FILE, device=device)


def run(stage, folder: Path, inputs: dict[str, Path], ctx: StageContext) -> dict[str, Any]:
    from synthmed.conditions import build_condition

    cfg = stage_config(Config, stage)
    sets, _ = load_split_sets(inputs["split"], ctx)
    real = sets["train"]
    synthetic = load_samples(inputs["samples"], real.class_names) if "samples" in inputs else None
    cond = build_condition(cfg.condition, real=real, train_pool=sets["train_pool"], synthetic=synthetic,
                           seed=cfg.seed, options=cfg.options,
                           baseline_classifier=_baseline_classifier(inputs, cfg.classifier.device))
    update: dict[str, Any] = {"augment": cond.augment, "seed": cfg.seed}
    if cfg.fair_budget:  # the ceiling trains to its own budget (epochs like real's, balanced, capped)
        update.update(max_steps=fair_steps(cfg.classifier, len(sets["train"]), len(cond.train),
                                           cfg.fair_budget["max_steps"]),
                      balanced_sampling=cfg.fair_budget["balanced_sampling"], epochs=None)
    ccfg = cfg.classifier.model_copy(update=update)
    extra: dict[str, Any] = {}
    if cond.phases:  # the same total budget as the baseline's run on the k-shot images
        budget = ccfg.total_steps(len(real))
        clf, metrics, wall, extra["phases"] = classify_in_phases(
            folder, cond, budget, sets["val"], sets["test"], ccfg, desc=stage.name, progress=ctx.progress,
            tensorboard=ctx.tensorboard)
        ccfg = ccfg.model_copy(update={"max_steps": budget, "epochs": None})
        steps_done = sum(p["steps_done"] for p in extra["phases"])  # every phase's steps count towards the budget
    else:
        clf, metrics, wall = classify_into(folder, cond.train, sets["val"], sets["test"], ccfg, desc=stage.name,
                                           progress=ctx.progress, tensorboard=ctx.tensorboard)
        steps_done = clf.steps_done
    if cond.facts:
        extra["condition_facts"] = cond.facts
        if "note" in cond.facts:
            extra["note"] = cond.facts["note"]
    return {"wall_s": wall, "n_train": len(cond.train), "n_real": cond.n_real, "n_extra": cond.n_extra,
            "augment": cond.augment, "steps_done": steps_done, "max_steps": ccfg.max_steps,
            "balanced_sampling": ccfg.balanced_sampling, "stopped_by": clf.stopped_by, **extra,
            "metrics": {k: v for k, v in metrics.items() if k != "confusion_matrix"}}
