"""Expand a study config into its stage graph (split → generators → samples → extractor →
classifier runs per condition/seed → fidelity). Configs are resolved here (family and classifier
defaults filled in) so each stage's key covers every setting that shapes its output.

One small builder per stage kind; ``expand_study`` wires them per seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthmed.conditions import get_condition
from synthmed.runs import CONTROL
from synthmed.study.config import StudyConfig
from synthmed.study.graph import Stage


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


@dataclass
class _Seed:
    """What every builder of one seed shares."""

    cfg: StudyConfig
    seed: int
    classifier: dict[str, Any]
    split: Stage
    extractor: Stage | None

    @property
    def samples_conf(self) -> dict[str, Any]:
        syn = self.cfg.synthetic
        return {"total": syn.total, "ratio": syn.ratio, "balanced": syn.balanced, "seed": syn.sample_seed + self.seed}

    @property
    def ratios(self) -> list[float]:
        swept = any(get_condition(c).ratio_sweep for c in self.cfg.conditions)
        return self.cfg.synthetic.ratios if swept else []


# -- one builder per stage kind --------------------------------------------------------------------
def split_stage(cfg: StudyConfig, seed: int) -> Stage:
    split_seed = seed if cfg.split.per_seed else 0
    return Stage("split", f"split seed {split_seed}",
                 {"dataset": cfg.dataset.model_dump(mode="json"), "split": cfg.split.model_dump(mode="json"),
                  "seed": split_seed}, labels={"seed": seed})


def extractor_stage(cfg: StudyConfig, classifier: dict[str, Any], split: Stage, seed: int) -> Stage:
    return Stage("extractor", "domain extractor",
                 {"classifier": classifier, "steps": cfg.metrics.extractor_steps, "seed": 0, "kind": cfg.metrics.extractor},
                 {"split": split}, labels={"seed": seed})


def classify_stage(s: _Seed, condition: str, generator: str, samples: Stage | None = None,
                   label: str | None = None) -> Stage:
    cond = get_condition(condition)
    options = cond.make_options(cond.options_from_study(s.cfg.synthetic.model_dump())).model_dump(mode="json")
    conf = {"condition": condition, "classifier": s.classifier, "seed": s.seed, "options": options}
    inputs = {"split": s.split, **({"samples": samples} if samples is not None else {})}
    shown = label or condition
    return Stage("classify", f"classify {shown} [{generator}] seed {s.seed}", conf, inputs,
                 labels={"generator": generator, "condition": shown, "seed": s.seed})


def fidelity_stage(s: _Seed, label: str, samples: Stage) -> Stage:
    m = s.cfg.metrics
    return Stage("fidelity", f"fidelity {label} seed {s.seed}",
                 {"fidelity": m.fidelity, "memorization": m.memorization, "per_class": m.per_class},
                 {"split": s.split, "samples": samples, "extractor": s.extractor},
                 labels={"generator": label, "seed": s.seed})


def generator_stage(s: _Seed, g) -> Stage:
    gconf = resolve_generator_config(g.family, g.config, seed=s.seed, device=s.cfg.device)
    return Stage("generator", f"generator {g.display} seed {s.seed}", {"family": g.family, "config": gconf},
                 {"split": s.split}, labels={"generator": g.display, "seed": s.seed})


def samples_stage(s: _Seed, label: str, gen: Stage, conf: dict[str, Any], suffix: str = "") -> Stage:
    return Stage("samples", f"sample {label}{suffix} seed {s.seed}", conf, {"generator": gen, "split": s.split},
                 labels={"generator": label, "seed": s.seed})


def samples_file_stage(s: _Seed, spec, conf: dict[str, Any], suffix: str = "") -> Stage:
    path = str(Path(spec.path).resolve())
    return Stage("samples_file", f"import {spec.display}{suffix} seed {s.seed}",
                 {**conf, "path": path, "content": file_identity(path)}, {"split": s.split},
                 labels={"generator": spec.display, "seed": s.seed})


# -- wiring ----------------------------------------------------------------------------------------
def _downstream(s: _Seed, label: str, samples: Stage, swept: list[tuple[float, Stage]]) -> list[Stage]:
    """Classifier runs that use a synthetic set, the ratio sweep, and fidelity."""
    out = [classify_stage(s, c, label, samples) for c in s.cfg.conditions if get_condition(c).needs_generator]
    for c in (c for c in s.cfg.conditions if get_condition(c).ratio_sweep):
        for r, st in swept:
            out += [st, classify_stage(s, c, label, st, label=f"{c}@{r:g}x")]
    if s.extractor is not None:
        out.append(fidelity_stage(s, label, samples))
    return out


def _synthetic_sets(s: _Seed) -> list[Stage]:
    """Every synthetic set of one seed (trained generators, imported samples) and what uses it."""
    stages: list[Stage] = []
    ratio_conf = lambda r: {**s.samples_conf, "total": None, "ratio": r}  # noqa: E731
    for g in s.cfg.generators:
        gen = generator_stage(s, g)
        samples = samples_stage(s, g.display, gen, s.samples_conf)
        swept = [(r, samples_stage(s, g.display, gen, ratio_conf(r), f" ratio {r:g}")) for r in s.ratios]
        stages += [gen, samples, *_downstream(s, g.display, samples, swept)]
    for spec in s.cfg.samples:
        samples = samples_file_stage(s, spec, s.samples_conf)
        swept = [(r, samples_file_stage(s, spec, ratio_conf(r), f" ratio {r:g}")) for r in s.ratios]
        stages += [samples, *_downstream(s, spec.display, samples, swept)]
    return stages


def expand_study(cfg: StudyConfig) -> list[Stage]:
    """All stages of a study, in an order where inputs come first."""
    classifier = resolve_classifier_config(cfg.classifier, device=cfg.device)
    need_extractor = bool(cfg.generators or cfg.samples) and (cfg.metrics.fidelity or cfg.metrics.memorization)
    stages: list[Stage] = []
    for seed in cfg.seeds:
        split = split_stage(cfg, seed)
        extractor = extractor_stage(cfg, classifier, split, seed) if need_extractor else None
        s = _Seed(cfg, seed, classifier, split, extractor)
        stages += [split, *([extractor] if extractor else [])]
        stages += [classify_stage(s, c, CONTROL) for c in cfg.conditions if not get_condition(c).needs_generator]
        stages += _synthetic_sets(s)
    return stages
