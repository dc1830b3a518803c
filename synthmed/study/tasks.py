"""The stage functions: one per stage kind. Each reads its inputs' folders, writes its own folder
atomically and returns a small JSON-able record (stored in ``stage.json`` by the runner).

Signature: ``fn(stage, folder, inputs, ctx) -> dict`` where ``inputs`` maps input names to folders
and ``ctx`` carries run-wide, non-hashed settings (data dir, progress bars). Functions are top-level
so a distributed executor can ship them to another process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthmed.callbacks import standard_callbacks
from synthmed.data.types import LabeledImages
from synthmed.imaging import class_rows_grid, save_png
from synthmed.study.graph import Stage, read_stage_record
from synthmed.utils.io import write_json_atomic, write_npz_atomic
from synthmed.utils.runtime import seed_everything


@dataclass(frozen=True)
class StageContext:
    data_dir: str | None = None  # where offline datasets live (not hashed: it does not change content)
    progress: bool = True  # show per-stage progress bars
    tensorboard: bool = True
    threads: int | None = None  # torch CPU threads per stage; None = torch's default (one per core)


# -- helpers -----------------------------------------------------------------------------------
def load_split_sets(split_folder: Path, ctx: StageContext) -> tuple[dict[str, LabeledImages], dict[str, Any]]:
    """Reload the dataset named in a split stage and apply its manifest → {train, val, test, train_pool}."""
    from synthmed.data import SplitManifest, load_dataset

    record = read_stage_record(split_folder)
    ds = record["config"]["dataset"]
    data = load_dataset(ds["name"], size=ds["size"], data_dir=ctx.data_dir, download=ds["download"],
                        classes=ds["classes"], path=ds["path"])
    manifest = SplitManifest.from_json(split_folder / "split.json")
    return manifest.apply(data), record


def load_samples(samples_folder: Path, class_names: tuple[str, ...]) -> LabeledImages:
    with np.load(samples_folder / "samples.npz") as z:
        return LabeledImages(images=z["images"], labels=z["labels"].astype(np.int64), class_names=class_names,
                             name="synthetic")


def _classifier_config(cfg: dict[str, Any], seed: int, steps_override: int | None = None):
    from synthmed.classify import ClassifierConfig
    from synthmed.config import validate

    cfg = dict(cfg)
    if steps_override is not None:
        cfg["max_steps"] = steps_override
    cfg["seed"] = seed
    return validate(ClassifierConfig, cfg, source="classifier config")


# -- stages ------------------------------------------------------------------------------------
def run_split(stage: Stage, folder: Path, inputs: dict[str, Path], ctx: StageContext) -> dict[str, Any]:
    from synthmed.data import load_dataset, make_split

    ds, sp = stage.config["dataset"], stage.config["split"]
    data = load_dataset(ds["name"], size=ds["size"], data_dir=ctx.data_dir, download=ds["download"],
                        classes=ds["classes"], path=ds["path"])
    protocol = sp["protocol"] if sp["protocol"] != "auto" else None
    manifest = make_split(data, shots=sp["shots"], protocol=protocol, seed=stage.config["seed"],
                          val_fraction=sp["val_fraction"], test_fraction=sp["test_fraction"], dedup=sp["dedup"])
    manifest.to_json(folder / "split.json")
    train = manifest.apply(data)["train"]
    save_png(folder / "examples.png", class_rows_grid(train.images, train.labels, train.num_classes, 8, train.class_names), scale=2)
    return {
        "dataset_checksum": data.checksum,
        "class_names": list(data.class_names),
        "image_shape": list(data.images.shape[1:]),
        "counts": manifest.counts,
        "split_hash": manifest.hash,
        "duplicates": manifest.duplicates.model_dump(mode="json"),
    }


def run_generator(stage: Stage, folder: Path, inputs: dict[str, Path], ctx: StageContext) -> dict[str, Any]:
    from synthmed.generators import make_generator

    sets, _ = load_split_sets(inputs["split"], ctx)
    train = sets["train"]
    seed_everything(stage.config["config"]["seed"])
    gen = make_generator(stage.config["family"], stage.config["config"])
    callbacks = standard_callbacks(folder, desc=stage.name, progress=ctx.progress, tensorboard=ctx.tensorboard)
    t0 = time.perf_counter()
    resume = (folder / "checkpoint.pt").exists()  # a killed run continues from its last checkpoint
    gen.fit(train.images, train.labels, callbacks=callbacks, out_dir=folder, resume=resume)
    wall = time.perf_counter() - t0
    gen.save(folder / "generator.pt")
    (folder / "checkpoint.pt").unlink(missing_ok=True)  # generator.pt holds what sampling needs
    return {"family": stage.config["family"], "wall_s": wall, "resumed": resume,
            "steps_done": getattr(gen, "steps_done_", None), "stopped_by": getattr(gen, "stopped_by_", None)}


def run_samples(stage: Stage, folder: Path, inputs: dict[str, Path], ctx: StageContext) -> dict[str, Any]:
    from synthmed.evaluate import synthetic_label_plan
    from synthmed.generators import load_generator

    sets, split_record = load_split_sets(inputs["split"], ctx)
    train = sets["train"]
    gen = load_generator(inputs["generator"] / "generator.pt")
    cfg = stage.config
    labels = synthetic_label_plan(train.labels, train.num_classes, total=cfg["total"], ratio=cfg["ratio"],
                                  balanced=cfg["balanced"])
    t0 = time.perf_counter()
    images = gen.sample(labels, seed=cfg["seed"])
    wall = time.perf_counter() - t0
    write_npz_atomic(folder / "samples.npz", images=images, labels=labels.astype(np.int64))
    save_png(folder / "grid.png", class_rows_grid(images, labels, train.num_classes, 10, train.class_names), scale=2)
    return {"n": int(len(labels)), "wall_s": wall, "images_per_s": len(labels) / max(wall, 1e-9)}


def run_samples_file(stage: Stage, folder: Path, inputs: dict[str, Path], ctx: StageContext) -> dict[str, Any]:
    """Import synthetic images made elsewhere: an npz (images, labels), a folder with samples.npz,
    or a trained generator (sampled here). The study's synthetic amount is taken class by class."""
    from synthmed.errors import DataFormatError
    from synthmed.evaluate import synthetic_label_plan

    sets, _ = load_split_sets(inputs["split"], ctx)
    train = sets["train"]
    cfg = stage.config
    labels = synthetic_label_plan(train.labels, train.num_classes, total=cfg["total"], ratio=cfg["ratio"],
                                  balanced=cfg["balanced"])
    path = Path(cfg["path"])
    if (path / "generator.pt").exists() or path.suffix == ".pt":
        from synthmed.generators import load_generator

        images = load_generator(path if path.suffix == ".pt" else path / "generator.pt").sample(labels, seed=cfg["seed"])
    else:
        npz = path / "samples.npz" if path.is_dir() else path
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
        images = pool_images[np.concatenate(picks)] if picks else pool_images[:0]
    write_npz_atomic(folder / "samples.npz", images=images, labels=labels.astype(np.int64))
    save_png(folder / "grid.png", class_rows_grid(images, labels, train.num_classes, 10, train.class_names), scale=2)
    return {"n": int(len(labels)), "source": str(path)}


def run_extractor(stage: Stage, folder: Path, inputs: dict[str, Path], ctx: StageContext) -> dict[str, Any]:
    """Prepare the feature extractor. ``domain`` (default, offline): train a classifier on the full
    real training pool. Other extractors (``inception``, ``imagenet-offline``) are pretrained: build
    one here so a missing weight file fails early with its one-line message."""
    from synthmed.classify import train_classifier
    from synthmed.metrics import features as F

    if stage.config["kind"] != "domain":
        ext = F.make_extractor(stage.config["kind"])
        return {"kind": stage.config["kind"], **ext.describe()}
    sets, _ = load_split_sets(inputs["split"], ctx)
    cfg = _classifier_config(stage.config["classifier"], stage.config["seed"], stage.config["steps"])
    t0 = time.perf_counter()
    clf = train_classifier(sets["train_pool"], sets["val"], cfg, out_dir=None,
                           callbacks=standard_callbacks(None, desc=stage.name, progress=ctx.progress))
    clf.save(folder / "classifier.pt")
    return {"wall_s": time.perf_counter() - t0, "checksum": clf.checksum, "feature_dim": clf.feature_dim}


def run_classify(stage: Stage, folder: Path, inputs: dict[str, Path], ctx: StageContext) -> dict[str, Any]:
    from synthmed.classify import train_classifier
    from synthmed.metrics.classification import evaluate_classifier, plot_confusion_matrix
    from synthmed.evaluate import build_condition, synthetic_label_plan

    sets, _ = load_split_sets(inputs["split"], ctx)
    cfg = stage.config
    real = sets["train"]
    synthetic = load_samples(inputs["samples"], real.class_names) if "samples" in inputs else None
    extra = None
    if cfg["condition"] == "real+duplicate":  # count-matched to the synthetic amount of the study
        extra = synthetic_label_plan(real.labels, real.num_classes, total=cfg["extra_total"],
                                     ratio=cfg["extra_ratio"], balanced=True)
    cond = build_condition(cfg["condition"], real=real, train_pool=sets["train_pool"], synthetic=synthetic,
                           extra_labels=extra, seed=cfg["seed"])
    ccfg = _classifier_config({**cfg["classifier"], "augment": cond.augment}, cfg["seed"])
    seed_everything(cfg["seed"])
    t0 = time.perf_counter()
    clf = train_classifier(cond.train, sets["val"], ccfg, out_dir=None,
                           callbacks=standard_callbacks(folder, desc=stage.name, progress=ctx.progress,
                                                        tensorboard=ctx.tensorboard))
    wall = time.perf_counter() - t0
    metrics = evaluate_classifier(clf, sets["test"])
    clf.save(folder / "classifier.pt")
    write_json_atomic(folder / "metrics.json", metrics)
    plot_confusion_matrix(metrics["confusion_matrix"], list(real.class_names), folder / "confusion_matrix.png")
    return {"wall_s": wall, "n_train": len(cond.train), "n_real": cond.n_real, "n_extra": cond.n_extra,
            "augment": cond.augment, "steps_done": getattr(clf, "steps_done", None),
            "metrics": {k: v for k, v in metrics.items() if k != "confusion_matrix"}}


def run_fidelity(stage: Stage, folder: Path, inputs: dict[str, Path], ctx: StageContext) -> dict[str, Any]:
    """FID/KID/IS/precision-recall (overall, per class, real-vs-real floor) and memorization,
    with features extracted once per image set and shared by every metric."""
    from synthmed.classify import TrainedClassifier
    from synthmed.metrics import features as F
    from synthmed.metrics import fidelity as FI
    from synthmed.metrics import memorization as M

    sets, _ = load_split_sets(inputs["split"], ctx)
    real_train = sets["train"]
    names = tuple(real_train.class_names)
    synthetic = load_samples(inputs["samples"], names)
    kind = read_stage_record(inputs["extractor"])["config"]["kind"]
    extractor = (F.domain_extractor(TrainedClassifier.load(inputs["extractor"] / "classifier.pt")) if kind == "domain"
                 else F.make_extractor(kind))
    t0 = time.perf_counter()
    # Reference set: the real training pool (k-shot images plus every other real training image),
    # so FID measures closeness to the real distribution, not to the 2k images the generator saw.
    ref = sets["train_pool"]
    feats_ref = F.extract_features(extractor, ref.images)
    feats_fake, logits_fake = F.extract_features(extractor, synthetic.images, return_logits=True)
    out: dict[str, Any] = {"extractor": extractor.describe(), "reference": "train_pool", "n_reference": len(ref)}
    scalars: dict[str, float] = {}
    if stage.config["fidelity"]:
        overall = FI.fidelity_from_features(feats_ref, feats_fake, fake_logits=logits_fake, extractor=extractor)
        n_floor = min(len(synthetic), len(ref) // 2)
        floor = FI.real_floor(feats_ref, n_floor, seed=0, extractor=extractor)
        out.update(overall=overall, floor=floor)
        if stage.config["per_class"]:
            out["per_class"] = FI.fidelity_per_class(feats_ref, ref.labels, feats_fake, synthetic.labels,
                                                     class_names=names, extractor=extractor)
        for key in (FI.KEY_FID, FI.KEY_KID_MEAN, FI.KEY_PRECISION, FI.KEY_RECALL, FI.KEY_IS_MEAN):
            if overall.get(key) is not None:
                scalars[key] = overall[key]
            if floor.get(key) is not None:
                scalars[f"floor_{key}"] = floor[key]
    if stage.config["memorization"]:
        report = M.copy_report(
            synthetic.images, synthetic.labels, real_train.images,
            synthetic_feats=feats_fake, train_feats=F.extract_features(extractor, real_train.images),
            heldout_images=sets["val"].images, heldout_feats=F.extract_features(extractor, sets["val"].images),
            class_names=names, extractor=extractor)
        out["memorization"] = report.summary()
        M.closest_pairs_png(synthetic.images, real_train.images, report.closest_pairs("pixel", 16),
                            folder / "closest_pairs.png")
        scalars["copy_rate"] = out["memorization"][M.KEY_COPY_FRACTION]
    out["wall_s"] = time.perf_counter() - t0
    write_json_atomic(folder / "fidelity.json", out)
    return {"wall_s": out["wall_s"], "scalars": scalars}


STAGE_FUNCTIONS = {
    "split": run_split,
    "generator": run_generator,
    "samples": run_samples,
    "samples_file": run_samples_file,
    "extractor": run_extractor,
    "classify": run_classify,
    "fidelity": run_fidelity,
}
