"""Expand a study config into its stage graph (split → generators → samples → extractor →
classifier runs per condition/seed → fidelity). Configs are resolved here (family and classifier
defaults filled in) so each stage's key covers every setting that shapes its output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthmed.study.config import GENERATOR_CONDITIONS, StudyConfig
from synthmed.study.graph import Stage

CONTROL = "-"  # the "generator" coordinate of conditions that use no generator


def resolve_generator_config(family: str, overrides: dict[str, Any], *, seed: int, device: str) -> dict[str, Any]:
    from synthmed.generators import get_generator_class

    cls = get_generator_class(family)
    return cls.make_config({**overrides, "seed": seed, "device": device}).model_dump(mode="json")


# Overrides behind ``classifier: {tiny: true}`` (the smoke profile): a few small steps, same network.
TINY_CLASSIFIER = {"batch_size": 16, "max_steps": 4, "eval_every": 2}


def resolve_classifier_config(overrides: dict[str, Any], *, device: str) -> dict[str, Any]:
    from synthmed.classify import ClassifierConfig
    from synthmed.config import validate

    over = dict(overrides)
    tiny = over.pop("tiny", False)
    base = TINY_CLASSIFIER if tiny else {}
    return validate(ClassifierConfig, {**base, **over, "device": device}, source="study config 'classifier'").model_dump(mode="json")


def file_identity(path: str) -> str:
    """Content hash of a samples file (or of the file inside a samples folder), so a changed file
    gets a new stage key while a moved one does not recompute."""
    from synthmed.errors import DataNotFoundError
    from synthmed.utils.io import sha256_file

    p = Path(path)
    for candidate in (p, p / "samples.npz", p / "generator.pt"):
        if candidate.is_file():
            return sha256_file(candidate)
    raise DataNotFoundError(f"no synthetic samples at {path}: give an npz with 'images' and 'labels', or a folder "
                            "holding samples.npz (synthmed sample) or generator.pt (synthmed train)")


def expand_study(cfg: StudyConfig) -> list[Stage]:
    """All stages of a study, in an order where inputs come first."""
    stages: list[Stage] = []
    classifier = resolve_classifier_config(cfg.classifier, device=cfg.device)
    conditions = cfg.conditions
    need_extractor = bool(cfg.generators or cfg.samples) and (cfg.metrics.fidelity or cfg.metrics.memorization)
    syn = cfg.synthetic
    dataset = cfg.dataset.model_dump(mode="json")
    for seed in cfg.seeds:
        split = Stage("split", f"split seed {seed if cfg.split.per_seed else 0}",
                      {"dataset": dataset, "split": cfg.split.model_dump(mode="json"),
                       "seed": seed if cfg.split.per_seed else 0},
                      labels={"seed": seed})
        stages.append(split)
        extractor = None
        if need_extractor:
            extractor = Stage("extractor", "domain extractor",
                              {"classifier": classifier, "steps": cfg.metrics.extractor_steps, "seed": 0,
                               "kind": cfg.metrics.extractor},
                              {"split": split}, labels={"seed": seed})
            stages.append(extractor)

        def classify(condition: str, generator: str, samples: Stage | None = None, extra: dict | None = None,
                     label: str | None = None) -> Stage:
            conf = {"condition": condition, "classifier": classifier, "seed": seed,
                    "extra_total": None, "extra_ratio": None, **(extra or {})}
            inputs = {"split": split, **({"samples": samples} if samples is not None else {})}
            shown = label or condition
            return Stage("classify", f"classify {shown} [{generator}] seed {seed}", conf, inputs,
                         labels={"generator": generator, "condition": shown, "seed": seed})

        for cond in conditions:
            if cond in GENERATOR_CONDITIONS:
                continue
            extra = {"extra_total": syn.total, "extra_ratio": syn.ratio} if cond == "real+duplicate" else None
            stages.append(classify(cond, CONTROL, extra=extra))

        def downstream(label: str, samples: Stage, swept: list[Stage]) -> None:
            """Classifier runs that use a synthetic set, the ratio sweep, and fidelity."""
            for cond in conditions:
                if cond in GENERATOR_CONDITIONS:
                    stages.append(classify(cond, label, samples))
            for r, s in swept:
                stages.extend([s, classify("real+synthetic", label, s, label=f"real+synthetic@{r:g}x")])
            if extractor is not None:
                stages.append(Stage("fidelity", f"fidelity {label} seed {seed}",
                                    {"fidelity": cfg.metrics.fidelity, "memorization": cfg.metrics.memorization,
                                     "per_class": cfg.metrics.per_class},
                                    {"split": split, "samples": samples, "extractor": extractor},
                                    labels={"generator": label, "seed": seed}))

        samples_conf = {"total": syn.total, "ratio": syn.ratio, "balanced": syn.balanced, "seed": syn.sample_seed + seed}
        ratios = syn.ratios if "real+synthetic" in conditions else []
        for g in cfg.generators:
            gconf = resolve_generator_config(g.family, g.config, seed=seed, device=cfg.device)
            gen = Stage("generator", f"generator {g.display} seed {seed}",
                        {"family": g.family, "config": gconf}, {"split": split},
                        labels={"generator": g.display, "seed": seed})

            def sampled(conf: dict, suffix: str = "") -> Stage:
                return Stage("samples", f"sample {g.display}{suffix} seed {seed}", conf,
                             {"generator": gen, "split": split}, labels={"generator": g.display, "seed": seed})

            stages += [gen, samples := sampled(samples_conf)]
            downstream(g.display, samples, [(r, sampled({**samples_conf, "total": None, "ratio": r}, f" ratio {r:g}"))
                                            for r in ratios])
        for spec in cfg.samples:
            path = str(Path(spec.path).resolve())

            def imported(conf: dict, suffix: str = "") -> Stage:
                return Stage("samples_file", f"import {spec.display}{suffix} seed {seed}",
                             {**conf, "path": path, "content": file_identity(path)}, {"split": split},
                             labels={"generator": spec.display, "seed": seed})

            stages.append(samples := imported(samples_conf))
            downstream(spec.display, samples, [(r, imported({**samples_conf, "total": None, "ratio": r}, f" ratio {r:g}"))
                                               for r in ratios])
    return stages
