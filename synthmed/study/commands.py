"""The single-stage CLI commands (``synthmed train``, ``sample``, ``classify``): each draws its split
and then calls the same core as the study's stage of that kind (``synthmed.study.stages``), writing
into one folder instead of a run folder's stage folders.

``train`` folder: ``split.json``, ``generator.pt``, ``run.json``, ``metrics.csv``, ``grids/``, ``tensorboard/``
(``checkpoint.pt`` while training). ``classify`` folder: ``split.json``, ``classifier.pt``,
``history.json``, ``metrics.json`` (with the run's provenance under "run"), ``confusion_matrix.png``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from synthmed.errors import DataNotFoundError, SynthmedError
from synthmed.runs.layout import CHECKPOINT_FILE, GENERATOR_FILE
from synthmed.study.stages.classify import classify_into
from synthmed.study.stages.generator import fit_generator_into, split_provenance, write_provenance
from synthmed.study.stages.samples import check_knobs, sample_into
from synthmed.study.stages.split import make_split_into
from synthmed.utils.io import write_json_atomic
from synthmed.utils.runtime import configure_torch_cpu, git_commit, package_versions

RUN_FILE = "run.json"  # what a 'synthmed train' folder records about its run


def _split(out: Path | None, data_name: str, *, size: int, data_dir, shots: int, seed: int, protocol: str | None = None):
    from synthmed.data import load_dataset

    data = load_dataset(data_name, size=size, data_dir=data_dir)
    manifest, _ = make_split_into(out, data, shots=shots, seed=seed, protocol=protocol)
    return data, manifest, manifest.apply(data)


def train(family: str, data_name: str = "pneumoniamnist", *, shots: int = 50, seed: int = 0, out_dir: str | Path,
          size: int = 28, data_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
          **overrides: Any):
    """Fit a generator family on the k-shot real training images of ``data_name`` (seeded split).
    ``overrides``: family config fields (max_steps, max_minutes, per_class, tiny...). Under torchrun
    each rank trains its shard and rank 0 writes. Returns the fitted generator."""
    from synthmed.distributed import init_distributed, shutdown_distributed
    from synthmed.generators import get_generator_class

    config = get_generator_class(family).make_config({**overrides, "seed": seed}).model_dump(mode="json")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if resume and not (out / CHECKPOINT_FILE).exists():
        raise SynthmedError(f"nothing to resume: {out / CHECKPOINT_FILE} does not exist; drop --resume to start fresh")
    dist = init_distributed(config["device"])  # one process unless started by torchrun (--devices N)
    data, manifest, sets = _split(out if dist.is_main else None, data_name, size=size, data_dir=data_dir, shots=shots,
                                  seed=seed)
    configure_torch_cpu()
    try:
        gen, record = fit_generator_into(out, family, config, sets["train"], desc=f"train {family}",
                                         progress=progress, resume=resume, dist=dist)
    finally:
        if dist.world_size > 1:
            shutdown_distributed()
    if dist.is_main:  # rank 0 alone writes the run's files
        write_provenance(out, split_provenance(split_hash=manifest.hash, dataset=data_name, size=size, shots=shots,
                                               seed=seed, dataset_checksum=data.checksum, family=family))
        write_json_atomic(out / RUN_FILE, {
            **record, "dataset": data_name, "size": size, "shots": shots, "seed": seed, "world_size": dist.world_size,
            "dataset_checksum": data.checksum, "class_names": list(data.class_names), "config": config,
            "package_versions": package_versions(), "git_commit": git_commit()})
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


def sample(run: str | Path, out_dir: str | Path, *, n_per_class: int = 200, seed: int = 0, **knobs: Any) -> dict[str, Any]:
    """Sample ``n_per_class`` images of every class (``knobs``: the family's ``sample_knobs``, e.g.
    DDPM's steps/guidance); write one PNG per image, ``samples.npz`` and ``grid.png`` into ``out_dir``."""
    from synthmed.generators import load_generator

    if n_per_class < 1:
        raise SynthmedError(f"--n-per-class must be ≥ 1; got {n_per_class}")
    path = find_generator_file(run)
    gen = load_generator(path)
    check_knobs(type(gen), knobs)  # before anything is written into out_dir
    k = gen.num_classes_
    run_json = path.parent / RUN_FILE
    class_names = json.loads(run_json.read_text())["class_names"] if run_json.exists() else [str(i) for i in range(k)]
    configure_torch_cpu()
    from synthmed.runs import find_provenance

    provenance = find_provenance(path)
    if provenance is not None:  # the samples folder says which split its generator trained on
        write_provenance(Path(out_dir), provenance)
    record = sample_into(out_dir, gen, np.repeat(np.arange(k), n_per_class), class_names, seed=seed,
                         per_row=min(n_per_class, 16), pngs=True, **knobs)
    return {**record, "out": str(out_dir), "class_names": class_names}


def classify(data_name: str, *, shots: int = 50, model: str = "resnet18", seed: int = 0, out_dir: str | Path,
             data_dir: str | Path | None = None, size: int = 28, protocol: str | None = None, progress: bool = True,
             **overrides: Any) -> dict[str, Any]:
    """Few-shot baseline: split ``data_name``, train ``model`` on the k-shot images, test; returns the
    test metrics with the run's provenance under "run" (also in ``out_dir/metrics.json``)."""
    from synthmed.classify import ClassifierConfig
    from synthmed.config import validate

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = validate(ClassifierConfig, {"model": model, "seed": seed, **overrides}, source="classify options")
    data, manifest, sets = _split(out, data_name, size=size, data_dir=data_dir, shots=shots, seed=seed,
                                  protocol=protocol)
    facts = {"dataset": data_name, "dataset_checksum": data.checksum, "size": size, "shots": shots,
             "protocol": manifest.protocol, "split_hash": manifest.hash, "seed": seed,
             **{f"n_{k}": len(sets[k]) for k in ("train", "val", "test")}, "config": config.model_dump(mode="json"),
             "versions": package_versions(), "git_commit": git_commit()}
    _, metrics, _ = classify_into(out, sets["train"], sets["val"], sets["test"], config, desc=f"classify {model}",
                                  progress=progress, title=f"{data_name} {shots}-shot, {model}, seed {seed}",
                                  run_facts=facts)
    return metrics
