"""Stage ``generator``: fit one generator family on the k-shot real training images."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from synthmed.callbacks import standard_callbacks
from synthmed.config import StageConfig
from synthmed.data.types import LabeledImages
from synthmed.runs.layout import CHECKPOINT_FILE, GENERATOR_FILE, PROVENANCE_FILE
from synthmed.study.stages.base import StageContext, load_split_sets, stage_config
from synthmed.utils.io import write_json_atomic
from synthmed.utils.runtime import seed_everything


def split_provenance(*, split_hash: str, dataset: str, size: int, shots: int, seed: int, dataset_checksum: str,
                     family: str | None = None) -> dict[str, Any]:
    """What ``provenance.json`` records: the split a generator trained on (its hash and how to redraw it)."""
    return {"split_hash": split_hash, "dataset": dataset, "size": size, "shots": shots, "split_seed": seed,
            "dataset_checksum": dataset_checksum, "family": family}


def describe_split(p: dict[str, Any]) -> str:
    return f"{p['split_hash'][:12]} ({p['dataset']} {p['size']} px, {p['shots']}-shot, split seed {p['split_seed']})"


def write_provenance(folder: Path, provenance: dict[str, Any]) -> None:
    """Beside ``generator.pt`` / ``samples.npz``: a small JSON file of its own, so the checkpoint format
    can change without touching it."""
    write_json_atomic(Path(folder) / PROVENANCE_FILE, provenance)


def provenance_from_split_stage(split_folder: Path, family: str | None = None) -> dict[str, Any]:
    from synthmed.runs import read_stage_record

    rec = read_stage_record(split_folder)
    conf = rec["config"]
    return split_provenance(split_hash=rec["summary"]["split_hash"], dataset=conf["dataset"]["name"],
                            size=conf["dataset"]["size"], shots=conf["split"]["shots"], seed=conf["seed"],
                            dataset_checksum=rec["summary"]["dataset_checksum"], family=family)


class Config(StageConfig):
    family: str  # a registered family
    config: dict[str, Any]  # the family's resolved config (validated by the family)


def fit_generator_into(folder: Path, family: str, config: dict[str, Any], train: LabeledImages, *, desc: str,
                       progress: bool = True, tensorboard: bool = True, resume: bool | None = None, dist=None):
    """Fit ``family`` on ``train``; write ``generator.pt`` (rank 0) and drop the resumable checkpoint.

    ``resume=None`` continues from ``folder/checkpoint.pt`` when a killed run left one. ``dist`` is a
    ``synthmed.distributed.DistContext`` for data-parallel training (the CLI's ``--devices``).
    Returns ``(generator, record)``.
    """
    from synthmed.generators import make_generator

    folder = Path(folder)
    main = dist is None or dist.is_main
    seed_everything(config["seed"])
    gen = make_generator(family, config)
    callbacks = standard_callbacks(folder, desc=desc, progress=progress, tensorboard=tensorboard) if main else None
    resume = (folder / CHECKPOINT_FILE).exists() if resume is None else resume  # a killed run continues
    t0 = time.perf_counter()
    if dist is None:
        gen.fit(train.images, train.labels, callbacks=callbacks, out_dir=folder, resume=resume)
    else:
        from synthmed.distributed import fit_data_parallel

        fit_data_parallel(gen, train.images, train.labels, ctx=dist, callbacks=callbacks, out_dir=folder, resume=resume)
    wall = time.perf_counter() - t0
    if main:
        gen.save(folder / GENERATOR_FILE)
        (folder / CHECKPOINT_FILE).unlink(missing_ok=True)  # generator.pt holds what sampling needs
    return gen, {"family": family, "wall_s": wall, "resumed": resume, "steps_done": gen.steps_done_,
                 "stopped_by": gen.stopped_by_}


def run(stage, folder: Path, inputs: dict[str, Path], ctx: StageContext) -> dict[str, Any]:
    cfg = stage_config(Config, stage)
    sets, _ = load_split_sets(inputs["split"], ctx)
    _, record = fit_generator_into(folder, cfg.family, cfg.config, sets["train"], desc=stage.name,
                                   progress=ctx.progress, tensorboard=ctx.tensorboard)
    provenance = provenance_from_split_stage(inputs["split"], cfg.family)
    write_provenance(folder, provenance)
    return {**record, "split_hash": provenance["split_hash"]}
