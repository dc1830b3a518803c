"""Stage ``extractor``: the feature network for fidelity and memorization, and the judge of class
faithfulness. A domain classifier is always trained here, on the held-out design's E set only (the
training pool minus the k-shot images, H and R: it never sees the held-out images it is used to score).
``domain`` (default, offline) takes its features from that classifier; other extractors (``inception``,
``imagenet-offline``) are pretrained: one is built here so a missing weight file fails early."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from synthmed.callbacks import standard_callbacks
from synthmed.classify import ClassifierConfig
from synthmed.config import StageConfig
from synthmed.runs.layout import CLASSIFIER_FILE
from synthmed.study.stages.base import StageContext, load_split_sets, stage_config


class Config(StageConfig):
    kind: str = "domain"  # a registered extractor (synthmed.metrics.features.list_extractors())
    classifier: ClassifierConfig  # the domain classifier (resolved)
    max_steps: int  # its training steps (metrics.extractor_steps)
    seed: int = 0


def run(stage, folder: Path, inputs: dict[str, Path], ctx: StageContext) -> dict[str, Any]:
    from synthmed.classify import train_classifier
    from synthmed.metrics import features as F

    from synthmed.errors import SplitError

    cfg = stage_config(Config, stage)
    described = {} if cfg.kind == "domain" else F.make_extractor(cfg.kind).describe()
    sets, _ = load_split_sets(inputs["split"], ctx)
    if "extractor" not in sets:
        raise SplitError(f"split stage {inputs['split'].name} has no held-out design (heldout.json); "
                         "re-run the study so the split stage writes one")
    # E is as imbalanced as the pool (PneumoniaMNIST ≈ 3:1): balanced sampling so the judge is not a prior
    ccfg = cfg.classifier.model_copy(update={"max_steps": cfg.max_steps, "seed": cfg.seed, "balanced_sampling": True})
    t0 = time.perf_counter()
    clf = train_classifier(sets["extractor"], sets["val"], ccfg, out_dir=None,
                           callbacks=standard_callbacks(None, desc=stage.name, progress=ctx.progress))
    clf.save(folder / CLASSIFIER_FILE)
    return {"kind": cfg.kind, **described, "wall_s": time.perf_counter() - t0, "checksum": clf.checksum,
            "feature_dim": clf.feature_dim, "trained_on": "extractor (E)", "n_train": len(sets["extractor"]),
            "stopped_by": clf.stopped_by}


def load_judge(folder: Path):
    """The domain classifier of a finished extractor stage (trained on E): the class-faithfulness judge."""
    from synthmed.classify import TrainedClassifier

    return TrainedClassifier.load(folder / CLASSIFIER_FILE)


def load_extractor(folder: Path):
    """The feature extractor a finished extractor stage prepared."""
    from synthmed.classify import TrainedClassifier
    from synthmed.metrics import features as F
    from synthmed.runs import read_stage_record

    kind = read_stage_record(folder)["config"]["kind"]
    return F.domain_extractor(TrainedClassifier.load(folder / CLASSIFIER_FILE)) if kind == "domain" \
        else F.make_extractor(kind)


def instrument_callables(folder: Path):
    """``(extractor, featurize, predict_proba)`` for the instruments, from a finished extractor stage.

    With the ``domain`` extractor (the judge's own network) one forward pass per image set gives both: the
    softmax of its logits is the judge's ``predict_proba`` bit for bit (tests/unit/test_reference_stage.py),
    so each image set runs through the network once instead of twice.
    """
    import torch

    from synthmed.metrics import features as F

    extractor, judge = load_extractor(folder), load_judge(folder)
    if extractor.name != "domain" or getattr(extractor, "head", None) is None:
        return extractor, (lambda x: F.extract_features(extractor, x)), judge.predict_proba
    done: list[tuple] = []  # (images, features, probabilities); the array is kept so its identity stays unique

    def both(images):
        for x, f, p in done:
            if x is images:
                return f, p
        f, logits = F.extract_features(extractor, images, return_logits=True)
        done.append((images, f, torch.softmax(torch.from_numpy(logits), dim=1).numpy()))
        return done[-1][1:]

    return extractor, (lambda x: both(x)[0]), (lambda x: both(x)[1])
