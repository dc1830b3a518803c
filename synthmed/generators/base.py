"""The interface every generator family implements, and the registry that names them.

A study names a family by string (``make_generator("wgan-gp", cfg)``) and never branches on it.

    class ConditionalGenerator:
        name: str
        def fit(images, labels, *, callbacks=None, out_dir=None, resume=False) -> self
        def sample(labels, *, seed=None, batch_size=...) -> (N, H, W, C) uint8 numpy
        def save(path)
        @classmethod load(path) -> ConditionalGenerator

Images in and out are uint8 NHWC numpy arrays at the training size; each family normalises
internally. Constructors store their config; ``fit`` builds the nets (``*_`` attributes) and trains.

The contract every family keeps: ``sample(labels, seed=None)`` uses ``config.seed`` (same call ⇒ same
images); ``sample_knobs`` names the optional keyword arguments ``sample`` takes beyond ``seed`` (the
web app and CLI read it); ``fitted_`` becomes True when training ends; ``steps_done_`` and
``stopped_by_`` ("max_steps" / "max_minutes") record how training ended.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from synthmed.config import apply_tiny
from synthmed.errors import ConfigError, NotFittedError, SynthmedError, unknown_name

_REGISTRY: dict[str, type["ConditionalGenerator"]] = {}


class GeneratorConfig(BaseModel):
    """Base of every family config: closed (unknown keys fail), documented defaults."""

    model_config = ConfigDict(extra="forbid")

    device: str = "auto"  # "auto" = CUDA when present, else CPU
    seed: int = 0  # seeds weight init, noise and data order: same seed => same weights on CPU
    max_steps: int | None = None  # compute budget in optimiser steps (None = family default)
    max_minutes: float | None = None  # wall-clock budget; training stops cleanly when reached
    grid_every: int = 200  # steps between fixed-noise progression grids
    checkpoint_every: int = 500  # steps between atomic checkpoints (when out_dir is given)


def register_generator(name: str):
    """Class decorator: register a family under ``name``; a second registration fails at import."""

    def deco(cls):
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            other = _REGISTRY[name]
            raise RuntimeError(
                f"generator family '{name}' registered twice: {other.__module__}.{other.__name__} "
                f"and {cls.__module__}.{cls.__name__}"
            )
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _load_family_modules() -> None:
    """Import every module of this package once: family modules register themselves on import, so a
    new family is one new file (loaded lazily by list_generators()/get_generator_class())."""
    import pkgutil

    import synthmed.generators as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{pkg.__name__}.{info.name}")


def list_generators() -> list[str]:
    _load_family_modules()
    return sorted(_REGISTRY)


def get_generator_class(name: str) -> type["ConditionalGenerator"]:
    _load_family_modules()
    if name not in _REGISTRY:
        raise unknown_name("generator family", name, _REGISTRY)
    return _REGISTRY[name]


def make_generator(name: str, config: dict | BaseModel | None = None, **overrides: Any) -> "ConditionalGenerator":
    """Build a family by name from a config dict/model plus keyword overrides."""
    cls = get_generator_class(name)
    return cls(config=cls.make_config(config, **overrides))


class ConditionalGenerator:
    """Base class: config handling, fitted-state check, label validation, save/load plumbing."""

    name: ClassVar[str] = "base"
    Config: ClassVar[type[GeneratorConfig]] = GeneratorConfig
    sample_knobs: ClassVar[tuple[str, ...]] = ()  # optional keyword arguments of sample() beyond seed
    default_max_steps: ClassVar[int | None] = None  # the step budget when config.max_steps is None
    fitted_: bool = False  # True once fit() has finished (or after load())
    steps_done_: int = 0  # optimiser steps done by fit()
    stopped_by_: str | None = None  # what ended training: "max_steps" or "max_minutes"

    def __init__(self, config: GeneratorConfig | dict | None = None, **overrides: Any):
        self.config = self.make_config(config, **overrides)

    @classmethod
    def make_config(cls, config: dict | BaseModel | None = None, **overrides: Any) -> GeneratorConfig:
        if isinstance(config, BaseModel):
            config = config.model_dump()
        data = apply_tiny({**(config or {}), **overrides}, cls.tiny_config)  # tiny=True: test-sized settings
        try:
            return cls.Config(**data)
        except Exception as e:  # pydantic ValidationError -> one line
            from synthmed.config import format_validation_error

            raise ConfigError(f"{cls.name} config: {format_validation_error(e, cls.Config)}") from None

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """Config overrides that make this family tiny and fast (a few steps, narrow nets) for tests."""
        return {}

    @classmethod
    def resolved_config(cls, config: GeneratorConfig) -> GeneratorConfig:
        """``config`` with every setting left to the family (``None`` or ``"auto"``) replaced by the value it
        stands for; training reads these. A study's stage key hashes this too, so the key names what trains:
        a family default changed behind ``auto`` gets new keys, and a study that spells the defaults out
        shares the default study's stages."""
        if config.max_steps is None and cls.default_max_steps is not None:
            return config.model_copy(update={"max_steps": cls.default_max_steps})
        return config

    # -- to be implemented by families -------------------------------------------
    def fit(self, images: np.ndarray, labels: np.ndarray, *, callbacks=None, out_dir: Path | None = None,
            resume: bool = False) -> "ConditionalGenerator":
        raise NotImplementedError

    def sample(self, labels: np.ndarray, *, seed: int | None = None) -> np.ndarray:
        """``(N, H, W, C)`` uint8 images for ``labels``; ``seed=None`` means ``config.seed``."""
        raise NotImplementedError

    def save(self, path: str | Path) -> None:
        raise NotImplementedError

    @classmethod
    def load(cls, path: str | Path) -> "ConditionalGenerator":
        raise NotImplementedError

    # -- shared helpers ------------------------------------------------------------
    def check_is_fitted(self) -> None:
        if not self.fitted_:
            raise NotFittedError(
                f"{type(self).__name__} is not fitted yet; call fit() or {type(self).__name__}.load(path)"
            )

    def check_labels(self, labels: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        k = self.num_classes_
        if len(labels) and (labels.min() < 0 or labels.max() >= k):
            raise SynthmedError(
                f"{self.name}: requested labels must lie in [0, {k - 1}] (the generator was fitted on "
                f"{k} classes); got {int(labels.min())}..{int(labels.max())}"
            )
        return labels

    @staticmethod
    def check_training_data(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        images = np.asarray(images)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if images.ndim != 4 or images.dtype != np.uint8 or images.shape[-1] not in (1, 3):
            raise SynthmedError(
                f"generator.fit expects uint8 (N, H, W, C) images with C in (1, 3); got {images.dtype} {images.shape}"
            )
        if len(images) != len(labels) or len(images) == 0:
            raise SynthmedError(f"generator.fit got {len(images)} images and {len(labels)} labels")
        return images, labels


def load_generator(path: str | Path) -> ConditionalGenerator:
    """Load any saved generator: the checkpoint records its family name (tensors + JSON, never a pickle)."""
    from synthmed.utils.checkpoint import load_checkpoint_file

    path = Path(path)
    if not path.exists():
        from synthmed.errors import DataNotFoundError

        raise DataNotFoundError(f"no generator checkpoint at {path}; train one with 'synthmed train'")
    family = load_checkpoint_file(path, kind="generator", tensors=False).get("family")  # header only
    if not isinstance(family, str):
        raise SynthmedError(f"{path} is not a synthmed generator checkpoint (no 'family' key)")
    return get_generator_class(family).load(path)
