"""Stage ``samples_file``: import synthetic images made elsewhere (``synthmed evaluate``): an npz
(images, labels), a folder with ``samples.npz``, or a trained generator (sampled here). The study's
synthetic amount is taken class by class."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from synthmed.errors import DataFormatError
from synthmed.runs.layout import GENERATOR_FILE, SAMPLES_FILE
from synthmed.study.stages import samples as S
from synthmed.study.stages.base import StageContext, load_split_sets, stage_config


class Config(S.Config):
    path: str  # absolute path of the file or folder
    content: str  # sha256 of the file: a changed file gets a new stage key, a moved one does not
    allow_unknown_provenance: bool = False  # accept samples that do not say which split their generator saw


def check_provenance(path: Path, split_folder: Path, allow_unknown: bool) -> str:
    """Refuse samples whose generator trained on another split than this study's (its val/test images
    may have been training images there). Returns "matched" or "unknown" (allowed)."""
    from synthmed.errors import ConfigError, SplitError
    from synthmed.runs import find_provenance
    from synthmed.study.stages.generator import describe_split, provenance_from_split_stage

    theirs, ours = find_provenance(path), provenance_from_split_stage(split_folder)
    if theirs is None:
        if allow_unknown:
            return "unknown"
        raise ConfigError(f"{path} has no provenance.json saying which split its generator trained on, so leakage into "
                          f"this study's val/test cannot be ruled out; to evaluate it anyway pass "
                          f"--allow-unknown-provenance (study: samples: [{{path: ..., allow_unknown_provenance: true}}])")
    if theirs.get("split_hash") != ours["split_hash"]:
        raise SplitError(f"{path} comes from a generator trained on split {describe_split(theirs)}, but this study uses "
                         f"split {describe_split(ours)}; evaluate on its split (synthmed evaluate --split-seed "
                         f"{theirs.get('split_seed')} with the same --data/--size/--shots; study: split: {{per_seed: false, "
                         f"seed: {theirs.get('split_seed')}}}) or retrain the generator on this split")
    return "matched"


def _pick(npz: Path, labels: np.ndarray, train) -> np.ndarray:
    """The first images of each class in ``npz`` that the label plan asks for."""
    try:
        with np.load(npz) as z:
            pool_images, pool_labels = z["images"], z["labels"].reshape(-1).astype(np.int64)
    except (OSError, ValueError, KeyError) as e:
        raise DataFormatError(f"{npz}: not a samples file with 'images' and 'labels' arrays ({e})") from None
    if pool_images.ndim == 3:
        pool_images = pool_images[..., None]
    if pool_images.dtype != np.uint8 or pool_images.shape[1:] != train.images.shape[1:]:
        raise DataFormatError(f"{npz}: images are {pool_images.dtype} {pool_images.shape[1:]}, the study's "
                              f"real images uint8 {train.images.shape[1:]}; sample at the dataset's size and channels")
    picks = []
    for k in range(train.num_classes):
        need, have = int((labels == k).sum()), np.flatnonzero(pool_labels == k)
        if len(have) < need:
            raise DataFormatError(f"{npz} has {len(have)} images of class '{train.class_names[k]}'; the study needs "
                                  f"{need}: lower synthetic.total or sample more")
        picks.append(have[:need])
    return pool_images[np.concatenate(picks)] if picks else pool_images[:0]


def run(stage, folder: Path, inputs: dict[str, Path], ctx: StageContext) -> dict[str, Any]:
    cfg = stage_config(Config, stage)
    sets, _ = load_split_sets(inputs["split"], ctx)
    train = sets["train"]
    labels = S.label_plan(cfg, train)
    path = Path(cfg.path)
    provenance = check_provenance(path, inputs["split"], cfg.allow_unknown_provenance)
    if (path / GENERATOR_FILE).exists() or path.suffix == ".pt":
        from synthmed.generators import load_generator

        gen = load_generator(path if path.suffix == ".pt" else path / GENERATOR_FILE)
        S.sample_into(folder, gen, labels, train.class_names, seed=cfg.seed, per_row=10)
    else:
        images = _pick(path / SAMPLES_FILE if path.is_dir() else path, labels, train)
        S.save_samples(folder, images, labels, train.class_names, per_row=10)
    return {"n": int(len(labels)), "source": str(path), "provenance": provenance}
