"""Stage ``fidelity``: FID/KID/IS/precision-recall (overall, per class, real-vs-real floor) via
``metrics.fidelity.fidelity_report`` and memorization, with features extracted once per image set."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from synthmed.config import StageConfig
from synthmed.runs import FIDELITY_SCALARS
from synthmed.runs.layout import CLOSEST_PAIRS_FILE, FIDELITY_FILE
from synthmed.study.stages.base import StageContext, load_samples, load_split_sets, stage_config
from synthmed.study.stages.extractor import load_extractor
from synthmed.utils.io import write_json_atomic


class Config(StageConfig):
    fidelity: bool = True
    memorization: bool = True
    per_class: bool = True


def _fidelity(out: dict, scalars: dict, cfg: Config, feats_ref, ref, feats_fake, logits_fake, synthetic, extractor):
    from synthmed.metrics import fidelity as FI

    rep = FI.fidelity_report(feats_ref, ref.labels, feats_fake, synthetic.labels, fake_logits=logits_fake,
                             class_names=tuple(ref.class_names), floor_seed=0, extractor=extractor)
    overall, floor = rep["overall"], rep["real_floor"]
    out.update(overall=overall, floor=floor, **({"per_class": rep["per_class"]} if cfg.per_class else {}))
    for key in FIDELITY_SCALARS:
        if overall.get(key) is not None:
            scalars[key] = overall[key]
        if floor.get(key) is not None:
            scalars[f"floor_{key}"] = floor[key]


def _memorization(out: dict, scalars: dict, folder: Path, sets: dict, synthetic, feats_fake, extractor) -> None:
    from synthmed.metrics import features as F
    from synthmed.metrics import memorization as M

    real_train = sets["train"]
    report = M.copy_report(
        synthetic.images, synthetic.labels, real_train.images,
        synthetic_feats=feats_fake, train_feats=F.extract_features(extractor, real_train.images),
        heldout_images=sets["val"].images, heldout_feats=F.extract_features(extractor, sets["val"].images),
        class_names=tuple(real_train.class_names), extractor=extractor)
    out["memorization"] = report.summary()
    M.closest_pairs_png(synthetic.images, real_train.images, report.closest_pairs("pixel", 16),
                        folder / CLOSEST_PAIRS_FILE)
    scalars["copy_rate"] = out["memorization"][M.KEY_COPY_FRACTION]


def run(stage, folder: Path, inputs: dict[str, Path], ctx: StageContext) -> dict[str, Any]:
    from synthmed.metrics import features as F

    cfg = stage_config(Config, stage)
    sets, _ = load_split_sets(inputs["split"], ctx)
    synthetic = load_samples(inputs["samples"], tuple(sets["train"].class_names))
    extractor = load_extractor(inputs["extractor"])
    t0 = time.perf_counter()
    # Reference set: the real training pool (k-shot images plus every other real training image),
    # so FID measures closeness to the real distribution, not to the 2k images the generator saw.
    ref = sets["train_pool"]
    feats_ref = F.extract_features(extractor, ref.images)
    feats_fake, logits_fake = F.extract_features(extractor, synthetic.images, return_logits=True)
    out: dict[str, Any] = {"extractor": extractor.describe(), "reference": "train_pool", "n_reference": len(ref)}
    scalars: dict[str, float] = {}
    if cfg.fidelity:
        _fidelity(out, scalars, cfg, feats_ref, ref, feats_fake, logits_fake, synthetic, extractor)
    if cfg.memorization:
        _memorization(out, scalars, folder, sets, synthetic, feats_fake, extractor)
    out["wall_s"] = time.perf_counter() - t0
    write_json_atomic(folder / FIDELITY_FILE, out)
    return {"wall_s": out["wall_s"], "scalars": scalars}
