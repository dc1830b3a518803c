"""The baseline classifier's training, on the shared loop (``synthmed.loop``): explicit budget, cosine
schedule, early stopping on validation macro-F1 (best weights kept), optional class-balanced sampling
and augmentation.

Randomness is passed in: ``config.seed`` seeds weight init and dropout (inside a forked torch RNG,
so the caller's global RNG is untouched), the batch order and the augmentation parameters. The
same config and data give the same weights on CPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from synthmed.callbacks import Callback, CallbackList
from synthmed.classify.augment import augment_batch
from synthmed.classify.config import ClassifierConfig
from synthmed.classify.models import ImageClassifier, build_classifier
from synthmed.classify.trained import TrainedClassifier, check_images, nhwc_to_tensor
from synthmed.data.types import LabeledImages
from synthmed.errors import DataFormatError
from synthmed.loop import BatchSampler, TrainingBudget, adam, run_training_loop
from synthmed.metrics.classification import KEY_MACRO_F1, KEY_ROC_AUC, classification_metrics
from synthmed.utils.io import write_json_atomic
from synthmed.utils.runtime import configure_torch_cpu, resolve_device

CHECKPOINT_FILE = "classifier.pt"
HISTORY_FILE = "history.json"


# -- helpers ------------------------------------------------------------------------------------
def _check_sets(train: LabeledImages, val: LabeledImages | None) -> None:
    if not isinstance(train, LabeledImages):
        raise DataFormatError(f"train must be LabeledImages; got {type(train).__name__}")
    check_images(train.images, what="train images")
    if len(train) < 2:
        raise DataFormatError(f"train holds {len(train)} image(s); a classifier needs at least 2")
    if val is not None:
        if not isinstance(val, LabeledImages):
            raise DataFormatError(f"val must be LabeledImages or None; got {type(val).__name__}")
        check_images(val.images, tuple(train.images.shape[1:]), what="val images")
        if tuple(val.class_names) != tuple(train.class_names):
            raise DataFormatError(f"val classes {list(val.class_names)} differ from train classes {list(train.class_names)}")


def _batches(labels: np.ndarray, num_classes: int, config: ClassifierConfig) -> Iterator[np.ndarray]:
    """Endless seeded batches of training indices; class-balanced draws when asked."""
    n = len(labels)
    batch = min(config.batch_size, n)
    if not config.balanced_sampling:
        sampler = BatchSampler(n, batch, seed=config.seed)  # shuffled epochs, incomplete batches dropped
        while True:
            yield sampler.next()
    from torch.utils.data import WeightedRandomSampler

    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = torch.from_numpy(1.0 / counts[labels])  # every class drawn equally often in expectation
    g = torch.Generator().manual_seed(config.seed)
    while True:  # one "epoch" = n draws with replacement
        idx = torch.tensor(list(WeightedRandomSampler(weights, n, replacement=True, generator=g)))
        for i in range(0, n - batch + 1, batch):
            yield idx[i : i + batch].numpy()


def _make_optimizer(net: nn.Module, config: ClassifierConfig, total_steps: int):
    if config.optimizer == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True,
                              weight_decay=config.weight_decay)
    else:
        opt = adam(net.parameters(), decoupled=True, lr=config.lr, weight_decay=config.weight_decay)
    if config.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return opt, sched


@torch.inference_mode()
def _validate(net: ImageClassifier, val: LabeledImages, device: torch.device, batch_size: int) -> dict[str, Any]:
    net.eval()
    probs = [torch.softmax(net(nhwc_to_tensor(val.images[i : i + batch_size], device)), 1).cpu()
             for i in range(0, len(val), batch_size)]
    net.train()
    return classification_metrics(val.labels, torch.cat(probs).numpy(), val.class_names)


def _snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


# Overrides behind ``tiny: true`` (tests and the smoke profile): a few small steps, same network.
def tiny_classifier_config() -> dict[str, Any]:
    return {"batch_size": 16, "max_steps": 4, "eval_every": 2}


@dataclass
class _Best:
    """Model selection on validation macro-F1: the best weights so far and the patience count."""

    f1: float = -math.inf
    step: int = 0
    state: dict | None = None
    since: int = 0

    def update(self, f1: float, step: int, net: nn.Module) -> None:
        if f1 > self.f1:  # strict: a tie keeps the earlier (cheaper) weights
            self.f1, self.step, self.state, self.since = f1, step, _snapshot(net), 0
        else:
            self.since += 1


def _validation_row(net, val, device, config, step, losses, lr, t0) -> tuple[dict[str, Any], dict[str, float]]:
    """One validation pass: its history row and the scalars the callbacks see."""
    m = _validate(net, val, device, config.eval_batch_size)
    auc = m[KEY_ROC_AUC] if m[KEY_ROC_AUC] is not None else math.nan
    row = {"step": step, "train_loss": float(np.mean(losses)), "lr": lr, "val_accuracy": m["accuracy"],
           "val_macro_f1": m[KEY_MACRO_F1], "val_auc": m[KEY_ROC_AUC], "elapsed_s": time.perf_counter() - t0}
    return row, {"val_macro_f1": m[KEY_MACRO_F1], "val_auc": auc}


@dataclass
class _Run:
    """What the classifier's loop keeps between steps: validation history and the losses since the last pass."""

    best: _Best
    history: list[dict[str, Any]]
    losses: list[float]
    lr: float = math.nan
    t0: float = 0.0


def _step_fn(net, train: LabeledImages, config: ClassifierConfig, device, total: int, run: _Run):
    """One optimiser step on the next batch (augmented when asked); returns its loss and lr."""
    x_all = nhwc_to_tensor(train.images)  # (N, C, H, W) uint8 on CPU; batches move to the device
    y_all = torch.from_numpy(train.labels.astype(np.int64))
    opt, sched = _make_optimizer(net, config, total)
    aug_gen = torch.Generator().manual_seed(config.seed + 1)  # +1: a stream apart from the init seed
    batches = _batches(train.labels, train.num_classes, config)
    loss_fn = nn.CrossEntropyLoss()

    def step_fn(step: int) -> dict[str, float]:
        idx = next(batches)
        xb = x_all[idx].to(device, non_blocking=True)  # (B, C, H, W) uint8
        if config.augment:
            xb = augment_batch(xb, aug_gen)
        loss = loss_fn(net(xb), y_all[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        run.lr = opt.param_groups[0]["lr"]
        sched.step()
        run.losses.append(loss.item())
        return {"loss": run.losses[-1], "lr": run.lr}

    return step_fn


def _after_step(net, val: LabeledImages | None, config: ClassifierConfig, device, budget: TrainingBudget, run: _Run):
    """Validation every ``eval_every`` steps and at the last; early stopping on macro-F1 patience."""

    def after_step(step: int, scalars: dict[str, float]) -> dict[str, float]:
        scalars = {**scalars, "val_macro_f1": math.nan, "val_auc": math.nan}
        if val is None or not (step % config.eval_every == 0 or budget.done(step)):
            return scalars
        row, val_scalars = _validation_row(net, val, device, config, step, run.losses, run.lr, run.t0)
        run.history.append(row)
        scalars.update(val_scalars)
        run.losses = []
        run.best.update(row["val_macro_f1"], step, net)
        if config.patience is not None and run.best.since >= config.patience:
            budget.stop("early_stopping")
        return scalars

    return after_step


def _fit(net, train: LabeledImages, val: LabeledImages | None, config: ClassifierConfig, device, total: int,
         cbs: CallbackList, info: dict[str, Any]) -> tuple[int, str, _Best, list[dict[str, Any]]]:
    """The shared loop (synthmed.loop): budgeted steps, validation every ``eval_every``, early stopping;
    the best weights are loaded into ``net`` at the end. Returns (steps done, what stopped it, best, history)."""
    run = _Run(_Best(), [], [], t0=time.perf_counter())
    budget = TrainingBudget(total, config.max_minutes)
    step_fn = _step_fn(net, train, config, device, total, run)

    def end_info(step: int) -> dict[str, Any]:
        b = run.best
        return {"steps_done": step, "best_step": b.step if b.state is not None else step,
                "stopped_by": budget.stopped_by, "best_val_macro_f1": None if b.state is None else b.f1}

    step = run_training_loop(family=f"classifier {config.model}", start_step=0, budget=budget, step_fn=step_fn,
                             callbacks=cbs, after_step=_after_step(net, val, config, device, budget, run), info=info,
                             end_info=end_info)
    if val is None:
        run.history.append({"step": step, "train_loss": float(np.mean(run.losses)) if run.losses else math.nan,
                            "lr": run.lr, "elapsed_s": time.perf_counter() - run.t0})
    if run.best.state is not None:
        net.load_state_dict(run.best.state)
    return step, budget.stopped_by, run.best, run.history


# -- training -----------------------------------------------------------------------------------
def train_classifier(train: LabeledImages, val: LabeledImages | None = None, config: ClassifierConfig | None = None,
                     *, out_dir: str | Path | None = None,
                     callbacks: list[Callback] | Callback | None = None,
                     init_state: dict[str, torch.Tensor] | None = None) -> TrainedClassifier:
    """Train a classifier on ``train`` (from scratch or from ``init_state``); early-stop on ``val`` macro-F1 if given.

    Args:
        train: training images (uint8 NHWC) and labels.
        val: validation set for early stopping and model selection; None = train the full budget
            and keep the last weights.
        config: ``ClassifierConfig`` (defaults when None).
        out_dir: when given, ``classifier.pt`` and ``history.json`` are written there (atomically).
        callbacks: receive ``on_train_begin``, ``on_step`` (loss, lr, val_macro_f1, val_auc; the val
            values are NaN between validation passes) and ``on_train_end``.
        init_state: start from these weights (a ``state_dict`` of the same model, e.g. a previous phase's
            ``clf.net.state_dict()``) instead of a fresh init; the optimiser and schedule start fresh.

    Returns:
        The ``TrainedClassifier`` holding the best-validation weights (or the last, without val).
    """
    config = config or ClassifierConfig()
    _check_sets(train, val)
    configure_torch_cpu()
    device = resolve_device(config.device)
    cbs = CallbackList(callbacks)
    h, w, c = train.images.shape[1:]
    total = config.total_steps(len(train))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(config.seed)  # weight init + dropout
        net = build_classifier(config.model, train.num_classes, c, h, config.stem).to(device).train()
        if init_state is not None:
            net.load_state_dict(init_state)
        info = {"model": config.model, "stem": config.stem, "n_train": len(train)}
        step, stopped_by, best, history = _fit(net, train, val, config, device, total, cbs, info)
    clf = TrainedClassifier(net, config, train.class_names, (h, w, c), history=history, steps_done=step,
                            best_step=best.step if best.state is not None else step, stopped_by=stopped_by)
    if out_dir is not None:
        clf.save(Path(out_dir) / CHECKPOINT_FILE)
        write_json_atomic(Path(out_dir) / HISTORY_FILE, history)
    return clf
