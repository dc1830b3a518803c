"""Stage ``samples``: draw the study's synthetic set (balanced label plan) from a trained generator."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from synthmed.config import StageConfig
from synthmed.imaging import class_rows_grid, png_bytes, save_png
from synthmed.runs.layout import GENERATOR_FILE, GRID_FILE, SAMPLES_FILE
from synthmed.study.stages.base import StageContext, load_split_sets, stage_config
from synthmed.utils.io import write_bytes_atomic, write_npz_atomic


class Config(StageConfig):
    total: int | None = Field(None, ge=0)  # synthetic images in total, or
    ratio: float | None = Field(None, ge=0)  # synthetic = ratio × real training images
    balanced: bool = True
    seed: int  # the sampling seed
    knobs: dict[str, Any] = Field(default_factory=dict)  # the family's sampling knobs (e.g. ddpm sampler/steps)


def label_plan(cfg: Config, train) -> np.ndarray:
    from synthmed.conditions import synthetic_label_plan

    return synthetic_label_plan(train.labels, train.num_classes, total=cfg.total, ratio=cfg.ratio,
                                balanced=cfg.balanced)


def save_samples(folder: Path, images: np.ndarray, labels: np.ndarray, class_names, *, per_row: int,
                 pngs: bool = False) -> None:
    """``samples.npz`` (images, labels) and ``grid.png`` (rows labelled by class); with ``pngs`` also
    one PNG per image in a folder per class."""
    folder = Path(folder)
    if pngs:
        for i, (img, lab) in enumerate(zip(images, labels)):
            write_bytes_atomic(folder / class_names[lab] / f"{i:06d}.png", png_bytes(img))
    write_npz_atomic(folder / SAMPLES_FILE, images=images, labels=np.asarray(labels).astype(np.int64))
    save_png(folder / GRID_FILE, class_rows_grid(images, labels, len(class_names), per_row, class_names), scale=2)


def check_knobs(cls, knobs: dict[str, Any]) -> dict[str, Any]:
    """Sampling settings for a family, checked against the knobs its ``sample()`` declares."""
    from synthmed.errors import ConfigError

    unknown = sorted(set(knobs) - set(cls.sample_knobs))
    if unknown:
        raise ConfigError(f"{cls.name} sampling takes no {', '.join(unknown)} "
                          f"(its knobs: {', '.join(cls.sample_knobs) or 'none'})")
    return dict(knobs)


def sample_into(folder: Path, gen, labels: np.ndarray, class_names, *, seed: int, per_row: int, pngs: bool = False,
                **knobs: Any) -> dict[str, Any]:
    """Sample ``gen`` for ``labels`` (``knobs``: the family's declared ``sample_knobs``) and save them."""
    check_knobs(type(gen), knobs)
    t0 = time.perf_counter()
    images = gen.sample(labels, seed=seed, **knobs)
    wall = time.perf_counter() - t0
    save_samples(folder, images, labels, class_names, per_row=per_row, pngs=pngs)
    return {"n": int(len(labels)), "wall_s": wall, "images_per_s": len(labels) / max(wall, 1e-9)}


def run(stage, folder: Path, inputs: dict[str, Path], ctx: StageContext) -> dict[str, Any]:
    from synthmed.generators import load_generator

    cfg = stage_config(Config, stage)
    sets, _ = load_split_sets(inputs["split"], ctx)
    train = sets["train"]
    from synthmed.runs import find_provenance
    from synthmed.study.stages.generator import write_provenance

    gen = load_generator(inputs["generator"] / GENERATOR_FILE)
    provenance = find_provenance(inputs["generator"])
    if provenance is not None:  # a samples folder says which split its generator trained on
        write_provenance(folder, provenance)
    knobs = dict(cfg.knobs)
    if "progress" in type(gen).sample_knobs:  # a bar only where the study shows bars (not in side-by-side workers)
        knobs.setdefault("progress", ctx.progress)
    return sample_into(folder, gen, label_plan(cfg, train), train.class_names, seed=cfg.seed, per_row=10, **knobs)
