"""Train one generator on a few-shot split, and sample a trained generator to files.

The Python API behind ``synthmed train`` and ``synthmed sample``. A training run folder holds
``generator.pt``, ``split.json``, ``run.json`` (manifest), ``metrics.csv``, ``grids/*.png`` and
``tensorboard/``; ``checkpoint.pt`` while training (``resume=True`` continues from it).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from synthmed.callbacks import standard_callbacks
from synthmed.errors import DataNotFoundError, SynthmedError
from synthmed.generators.base import get_generator_class, load_generator
from synthmed.imaging import class_rows_grid, png_bytes, save_png
from synthmed.utils.io import write_bytes_atomic, write_json_atomic, write_npz_atomic
from synthmed.utils.runtime import configure_torch_cpu, git_commit, package_versions, seed_everything

GENERATOR_FILE = "generator.pt"
RUN_FILE = "run.json"


def train_generator(family: str, data_name: str = "pneumoniamnist", *, shots: int = 50, seed: int = 0,
                    out_dir: str | Path, size: int = 28, data_dir: str | Path | None = None,
                    resume: bool = False, progress: bool = True, **overrides: Any):
    """Load a dataset, draw its k-shot split, fit a generator family on the training images only.

    Args:
        family: a registered family (``list_generators()``).
        data_name: dataset id (``synthmed data list``).
        shots: real training images per class.
        seed: seeds the split and the generator.
        out_dir: run folder (created).
        size: image side in px.
        data_dir: dataset folder (default ``$SYNTHMED_DATA_DIR``).
        resume: continue from ``out_dir/checkpoint.pt``.
        **overrides: family config fields (max_steps, max_minutes, per_class, ...); ``tiny=True`` shrinks it.

    Returns:
        The fitted generator (also saved as ``out_dir/generator.pt``).
    """
    from synthmed.data import load_dataset, make_split

    cls = get_generator_class(family)
    config = cls.make_config({**overrides, "seed": seed})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if resume and not (out / "checkpoint.pt").exists():
        raise SynthmedError(f"nothing to resume: {out / 'checkpoint.pt'} does not exist; drop --resume to start fresh")
    from synthmed.distributed import fit_data_parallel, init_distributed, shutdown_distributed

    ctx = init_distributed(config.device)  # one process unless started by torchrun (--devices N)
    data = load_dataset(data_name, size=size, data_dir=data_dir)
    split = make_split(data, shots=shots, seed=seed)
    if ctx.is_main:
        split.to_json(out / "split.json")
    train = split.apply(data)["train"]
    configure_torch_cpu()
    seed_everything(seed)
    gen = cls(config=config)
    t0 = time.perf_counter()
    callbacks = standard_callbacks(out, desc=f"train {family}", progress=progress) if ctx.is_main else None
    try:
        fit_data_parallel(gen, train.images, train.labels, ctx=ctx, callbacks=callbacks, out_dir=out, resume=resume)
    finally:
        if ctx.world_size > 1:
            shutdown_distributed()
    if not ctx.is_main:  # rank 0 alone writes the run's files
        return gen
    gen.save(out / GENERATOR_FILE)
    write_json_atomic(out / RUN_FILE, {
        "family": family, "dataset": data_name, "size": size, "shots": shots, "seed": seed,
        "world_size": ctx.world_size,
        "dataset_checksum": data.checksum, "class_names": list(data.class_names),
        "config": config.model_dump(mode="json"), "wall_s": time.perf_counter() - t0,
        "steps_done": getattr(gen, "steps_done_", None), "package_versions": package_versions(),
        "git_commit": git_commit(),
    })
    return gen


def find_generator_file(run: str | Path) -> Path:
    """A generator checkpoint from a path: the file itself, a training run folder, or a study
    stage folder holding ``generator.pt``."""
    run = Path(run)
    if run.is_file():
        return run
    if (run / GENERATOR_FILE).exists():
        return run / GENERATOR_FILE
    raise DataNotFoundError(f"no {GENERATOR_FILE} in {run}; give a folder written by 'synthmed train' or a checkpoint file")


def sample_to_folder(run: str | Path, out_dir: str | Path, *, n_per_class: int = 200, seed: int = 0,
                     class_names: list[str] | None = None) -> dict[str, Any]:
    """Sample ``n_per_class`` images of every class; write PNG files, ``samples.npz`` (images,
    labels) and ``grid.png`` into ``out_dir``."""
    if n_per_class < 1:
        raise SynthmedError(f"--n-per-class must be ≥ 1; got {n_per_class}")
    path = find_generator_file(run)
    gen = load_generator(path)
    k = gen.num_classes_
    if class_names is None:
        run_json = path.parent / RUN_FILE
        import json

        class_names = json.loads(run_json.read_text())["class_names"] if run_json.exists() else [str(i) for i in range(k)]
    labels = np.repeat(np.arange(k), n_per_class)
    configure_torch_cpu()
    t0 = time.perf_counter()
    images = gen.sample(labels, seed=seed)
    wall = time.perf_counter() - t0
    out = Path(out_dir)
    for i, (img, lab) in enumerate(zip(images, labels)):
        write_bytes_atomic(out / class_names[lab] / f"{i:06d}.png", png_bytes(img))
    write_npz_atomic(out / "samples.npz", images=images, labels=labels)
    save_png(out / "grid.png", class_rows_grid(images, labels, k, min(n_per_class, 16), class_names), scale=2)
    return {"n": len(labels), "wall_s": wall, "out": str(out), "class_names": class_names}
