"""``TrainedClassifier``: a trained network plus the facts needed to use, save and reload it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthmed.classify.config import ClassifierConfig
from synthmed.classify.models import ImageClassifier, PenultimateFeatures, build_classifier
from synthmed.errors import DataFormatError, DataNotFoundError
from synthmed.utils.checkpoint import load_checkpoint_file, save_checkpoint_file
from synthmed.utils.io import sha256_array
from synthmed.utils.runtime import resolve_device

CHECKPOINT_FORMAT = "synthmed-classifier/1"


def check_images(images: np.ndarray, image_shape: tuple[int, int, int] | None = None, what: str = "images") -> None:
    """Raise a one-line ``DataFormatError`` unless ``images`` is uint8 ``(N, H, W, C)`` [of ``image_shape``]."""
    if not isinstance(images, np.ndarray):
        raise DataFormatError(f"{what} must be a numpy array (N, H, W, C) uint8; got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise DataFormatError(f"{what} must be uint8 in [0, 255]; got {images.dtype} (convert with .astype(np.uint8))")
    if images.ndim != 4:
        raise DataFormatError(f"{what} must be (N, H, W, C); got shape {images.shape}")
    if image_shape is not None and tuple(images.shape[1:]) != tuple(image_shape):
        raise DataFormatError(
            f"{what}: expected images of shape (H, W, C) = {tuple(image_shape)} but got {tuple(images.shape[1:])}; "
            "resize/convert them to the size and channels the classifier was trained on"
        )


def nhwc_to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(N, H, W, C) uint8 numpy → (N, C, H, W) uint8 tensor (a view until it moves device)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(device)


class TrainedClassifier:
    """A trained classifier: predictions, penultimate features, save/load.

    Attributes:
        net: the ``ImageClassifier`` (eval mode).
        config: the ``ClassifierConfig`` it was trained with.
        class_names: class name per output index.
        image_shape: ``(H, W, C)`` of the images it takes.
        history: one dict per validation pass (step, train_loss, val_macro_f1, val_auc, lr, ...).
        steps_done: optimiser steps actually run.
        best_step: step whose weights were kept (early stopping); equals ``steps_done`` without val.
        stopped_by: "max_steps", "early_stopping" or "max_minutes".
    """

    def __init__(self, net: ImageClassifier, config: ClassifierConfig, class_names, image_shape,
                 history: list[dict[str, Any]] | None = None, steps_done: int = 0, best_step: int | None = None,
                 stopped_by: str = "max_steps"):
        self.net = net.eval()
        self.config = config
        self.class_names = tuple(str(c) for c in class_names)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.history = list(history or [])
        self.steps_done = int(steps_done)
        self.best_step = int(best_step if best_step is not None else steps_done)
        self.stopped_by = stopped_by

    # -- facts ------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def feature_dim(self) -> int:
        """Width D of ``embed``'s output."""
        return self.net.feature_dim

    @property
    def checksum(self) -> str:
        """sha256 of the weights and buffers (names, shapes, dtypes, values); equal for equal weights."""
        state = self.net.state_dict()
        arrays = [np.frombuffer(k.encode(), dtype=np.uint8) for k in state]
        arrays += [v.detach().cpu().contiguous().numpy() for v in state.values()]
        return sha256_array(*arrays)

    # -- inference --------------------------------------------------------------------------------
    @torch.inference_mode()
    def _batched(self, images: np.ndarray, fn, batch_size: int) -> np.ndarray:
        check_images(images, self.image_shape)
        if batch_size < 1:
            raise DataFormatError(f"batch_size must be ≥ 1; got {batch_size}")
        self.net.eval()
        out = [fn(nhwc_to_tensor(images[i : i + batch_size], self.device)).float().cpu()
               for i in range(0, len(images), batch_size)]
        if not out:
            return np.zeros((0, 0), dtype=np.float32)
        return torch.cat(out).numpy()

    def predict_proba(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities ``(N, K)`` float32 for uint8 ``(N, H, W, C)`` images."""
        p = self._batched(images, lambda x: torch.softmax(self.net(x), dim=1), batch_size)
        return p.reshape(len(images), self.num_classes)

    def predict(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Predicted class index ``(N,)`` int64 (argmax of ``predict_proba``)."""
        return self.predict_proba(images, batch_size).argmax(axis=1).astype(np.int64)

    def embed(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Penultimate features ``(N, feature_dim)`` float32 (the ``domain`` feature extractor)."""
        f = self._batched(images, self.net.features, batch_size)
        return f.reshape(len(images), self.feature_dim)

    def feature_module(self) -> PenultimateFeatures:
        """A module for torchmetrics' custom feature extractors: uint8 (N, C, H, W) → (N, D) float,
        with an int ``num_features``. It shares this classifier's weights and is in eval mode."""
        return PenultimateFeatures(self.net).eval()

    # -- persistence ------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything ``load`` needs: weights + config + class names + image shape + training record."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.model_dump(mode="json"),
            "class_names": list(self.class_names),
            "image_shape": list(self.image_shape),
            "state_dict": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            "history": self.history,
            "steps_done": self.steps_done,
            "best_step": self.best_step,
            "stopped_by": self.stopped_by,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the classifier to ``path`` (e.g. ``classifier.pt``) atomically."""
        return save_checkpoint_file(path, self.state(), kind="classifier")  # tensors + JSON, never a pickle

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto") -> "TrainedClassifier":
        """Rebuild a classifier saved by ``save``; nothing else is needed."""
        path = Path(path)
        if not path.exists():
            raise DataNotFoundError(f"classifier checkpoint {path} does not exist; train one with train_classifier()")
        blob = load_checkpoint_file(path, kind="classifier")  # refuses pickles and truncated files, one line
        if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
            raise DataFormatError(f"{path} is not a synthmed classifier checkpoint (expected format {CHECKPOINT_FORMAT})")
        config = ClassifierConfig.model_validate(blob["config"])
        h, w, c = blob["image_shape"]
        net = build_classifier(config.model, len(blob["class_names"]), c, h, config.stem)
        net.load_state_dict(blob["state_dict"])
        net.to(resolve_device(device))
        return cls(net, config, blob["class_names"], (h, w, c), history=blob["history"],
                   steps_done=blob["steps_done"], best_step=blob["best_step"], stopped_by=blob["stopped_by"])

    def __repr__(self) -> str:
        return (f"TrainedClassifier(model={self.config.model!r}, stem={self.config.stem!r}, classes={list(self.class_names)}, "
                f"image_shape={self.image_shape}, steps_done={self.steps_done}, best_step={self.best_step})")
