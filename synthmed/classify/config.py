"""``ClassifierConfig``: every knob of the baseline classifier, with the reason for each default."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from synthmed.config import StageConfig
from synthmed.errors import unknown_name


class ClassifierConfig(StageConfig):
    """Closed config of one classifier training (unknown keys fail and name the closest key).

    The compute budget is explicit: ``max_steps`` optimiser steps, or ``epochs`` passes over the
    training set when given (``epochs`` then replaces ``max_steps``). Early stopping may end sooner;
    the steps actually done are recorded on the trained classifier.
    """

    model: str = "resnet18"  # the MedMNIST v2 reference backbone (its tables cite ResNet-18 at 28 px)
    # Measured on this 2-core CPU at 28 px, batch 32, load 1.0 (bench/medmnist_full.py measures it again):
    # "standard" trains 362 img/s, "cifar" 91 img/s. A study runs ~12 classifier trainings inside 30 min
    # next to generator training: 12 x 300 steps x 32 img = 115k images is ~5 min with "standard" but
    # ~21 min with "cifar", which would leave the generators no time. "cifar" is the accuracy option.
    stem: Literal["standard", "cifar"] = "standard"
    optimizer: Literal["adamw", "sgd"] = "adamw"  # AdamW needs no per-dataset lr search; SGD for recipes that want it
    lr: float = Field(1e-3, gt=0)  # MedMNIST v2's lr (Adam, 1e-3); for SGD use ~0.05
    weight_decay: float = Field(1e-2, ge=0)  # torch's AdamW default; with SGD (coupled L2) use ~5e-4
    momentum: float = Field(0.9, ge=0, lt=1)  # SGD only (Nesterov); the usual value
    schedule: Literal["cosine", "constant"] = "cosine"  # cosine to zero over the budget: no schedule to tune
    batch_size: int = Field(32, ge=2)  # small sets (100 images at 50-shot x 2 classes) still give 3 steps/epoch
    max_steps: int = Field(300, ge=1)  # ~96 epochs of a 100-image 50-shot set; ~30 s on this CPU ("standard")
    epochs: int | None = Field(None, ge=1)  # when set, the budget is epochs x ceil(N / batch_size) steps instead
    max_minutes: float | None = Field(None, gt=0)  # optional wall-clock cap (stops cleanly; breaks bit-exact repeats)
    augment: bool = False  # off: the plain baseline; on: the "classic augmentation" control (flips + small affine)
    balanced_sampling: bool = False  # k-shot splits are already balanced; turn on for imbalanced full sets
    patience: int | None = Field(5, ge=1)  # evaluations without a better val macro-F1 before stopping; None = never
    eval_every: int = Field(25, ge=1)  # steps between validation passes (524 val images cost ~0.2 s at 28 px)
    eval_batch_size: int = Field(256, ge=1)  # inference batch; memory only, results do not depend on it
    device: str = "auto"  # "auto" = CUDA when present, else CPU
    seed: int = 0  # seeds weight init, dropout, data order and augmentation: same seed => same weights on CPU

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        from synthmed.classify.models import list_classifiers

        if v not in list_classifiers():
            raise ValueError(str(unknown_name("classifier", v, list_classifiers())))
        return v

    def total_steps(self, n_train: int) -> int:
        """The step budget for a training set of ``n_train`` images."""
        if self.epochs is None:
            return self.max_steps
        per_epoch = max(1, n_train // min(self.batch_size, n_train))  # incomplete batches are dropped
        return self.epochs * per_epoch
