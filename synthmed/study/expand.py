"""Expand a study config into its stage graph (split → generators → samples → extractor → reference →
classifier runs per condition/seed → fidelity). Each builder fills its stage kind's typed ``Config``
(``synthmed.study.stages.<kind>``) with resolved values (family and classifier defaults filled in),
so each stage's key covers every setting that shapes its output.

One small builder per stage kind; ``expand_study`` wires them per seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthmed.conditions import find_condition, get_condition, sweep_label
from synthmed.runs import CONTROL
from synthmed.runs.layout import GENERATOR_FILE, SAMPLES_FILE
from synthmed.study.config import GeneratorSpec, SamplesSpec, StudyConfig
from synthmed.study.graph import Stage
from synthmed.study.stages import classify, extractor, fidelity, generator, reference, samples, samples_file, split


def resolve_generator_config(family: str, overrides: dict[str, Any], *, seed: int, device: str) -> dict[str, Any]:
    from synthmed.generators import get_generator_class

    cls = get_generator_class(family)  # resolved: the key names what trains, not "auto" (resolved_config)
    return cls.resolved_config(cls.make_config({**overrides, "seed": seed, "device": device})).model_dump(mode="json")


def resolve_classifier_config(overrides: dict[str, Any], *, device: str):
    """The study's classifier config (``tiny: true`` → the classifier's test-sized settings)."""
    from synthmed.classify import ClassifierConfig, tiny_classifier_config
    from synthmed.config import apply_tiny, validate

    return validate(ClassifierConfig, apply_tiny({**overrides, "device": device}, tiny_classifier_config),
                    source="study config 'classifier'")


def file_identity(path: str) -> str:
    """Content hash of a samples file (or of the file inside a samples folder), so a changed file
    gets a new stage key while a moved one does not recompute."""
    from synthmed.errors import DataNotFoundError
    from synthmed.utils.io import sha256_file

    p = Path(path)
    for candidate in (p, p / SAMPLES_FILE, p / GENERATOR_FILE):
        if candidate.is_file():
            return sha256_file(candidate)
    raise DataNotFoundError(f"no synthetic samples at {path}: give an npz with 'images' and 'labels', or a folder "
                            "holding samples.npz (synthmed sample) or generator.pt (synthmed train)")


def study_channels(cfg: StudyConfig) -> int:
    """The channels of the study's images, known before any data is loaded: the dataset's ``channels`` option,
    else what the registry states for the source (0 when it depends on the files, e.g. a folder)."""
    from synthmed.data import list_datasets

    if cfg.dataset.channels is not None:
        return cfg.dataset.channels
    return next((i.channels for i in list_datasets() if i.name == cfg.dataset.name), 0)


def _stage(kind: str, name: str, config, inputs: dict[str, Stage] | None = None, **labels: Any) -> Stage:
    return Stage(kind, name, config.model_dump(mode="json"), inputs or {}, labels=labels)


@dataclass
class _Seed:
    """What every builder of one seed shares."""

    cfg: StudyConfig
    seed: int
    classifier: Any  # the resolved ClassifierConfig
    split: Stage
    extractor: Stage | None
    reference: Stage | None = None  # the seed-level half of the instruments, shared by its fidelity stages
    channels: int = 0  # of the study's images (study_channels: looked up once per study), for config_rgb

    def samples_conf(self, ratio: float | None = None) -> samples.Config:
        syn = self.cfg.synthetic
        return samples.Config(total=None if ratio is not None else syn.total, ratio=syn.ratio if ratio is None else ratio,
                              balanced=syn.balanced, seed=syn.sample_seed + self.seed)

    @property
    def ratios(self) -> list[float]:
        swept = any(get_condition(c).ratio_sweep for c in self.cfg.conditions)
        return self.cfg.synthetic.ratios if swept else []


# -- one builder per stage kind --------------------------------------------------------------------
def split_stage(cfg: StudyConfig, seed: int) -> Stage:
    split_seed = seed if cfg.split.per_seed else cfg.split.seed
    return _stage("split", f"split seed {split_seed}", split.Config(dataset=cfg.dataset, split=cfg.split, seed=split_seed),
                  seed=seed)


def extractor_stage(cfg: StudyConfig, classifier, split_: Stage, seed: int) -> Stage:
    conf = extractor.Config(kind=cfg.metrics.extractor, classifier=classifier, max_steps=cfg.metrics.extractor_steps)
    return _stage("extractor", "domain extractor", conf, {"split": split_}, seed=seed)


def reference_stage(s: _Seed) -> Stage:
    """Once per seed: features of H, R and the k-shot images, the floors and the copy detector's calibration."""
    m, plan = s.cfg.metrics, s.samples_conf()
    conf = reference.Config(per_class=m.per_class, n_subsets=m.n_subsets, n_boot=m.n_boot, alpha=m.alpha, seed=s.seed,
                            total=plan.total, ratio=plan.ratio, balanced=plan.balanced)
    return _stage("reference", f"reference seed {s.seed}", conf, {"split": s.split, "extractor": s.extractor},
                  seed=s.seed)


def classify_stage(s: _Seed, condition: str, gen_label: str, samples_: Stage | None = None,
                   label: str | None = None, ratio: float | None = None) -> Stage:
    """One classifier run; ``ratio``: a control count-matched to that ratio of the sweep (``ratio_options``)."""
    cond = get_condition(condition)
    values = cond.options_from_study(s.cfg.synthetic.model_dump()) if ratio is None else cond.ratio_options(ratio)
    options = cond.make_options(values).model_dump(mode="json")
    fair = s.cfg.ceiling.model_dump() if cond.is_ceiling else None
    conf = classify.Config(condition=condition, options=options, classifier=s.classifier, seed=s.seed, fair_budget=fair)
    inputs = {"split": s.split, **({"samples": samples_} if samples_ is not None else {})}
    if cond.needs_baseline_classifier:  # the study's own baseline run of this seed (same key: trained once)
        inputs[classify.BASELINE_INPUT] = classify_stage(s, find_condition("baseline"), CONTROL)
    shown = label or condition
    return _stage("classify", f"classify {shown} [{gen_label}] seed {s.seed}", conf, inputs,
                  generator=gen_label, condition=shown, seed=s.seed)


def fidelity_stage(s: _Seed, label: str, samples_: Stage, gen: Stage | None = None) -> Stage:
    m = s.cfg.metrics
    conf = fidelity.Config(fidelity=m.fidelity, memorization=m.memorization, per_class=m.per_class,
                           n_subsets=m.n_subsets, n_boot=m.n_boot, alpha=m.alpha, seed=s.seed)
    inputs = {"split": s.split, "samples": samples_, "extractor": s.extractor, "reference": s.reference,
              **({"generator": gen} if gen else {})}
    return _stage("fidelity", f"fidelity {label} seed {s.seed}", conf, inputs, generator=label, seed=s.seed)


def generator_stage(s: _Seed, g: GeneratorSpec) -> Stage:
    overrides = g.config_for(s.channels)
    conf = generator.Config(family=g.family, config=resolve_generator_config(g.family, overrides, seed=s.seed,
                                                                             device=s.cfg.device))
    return _stage("generator", f"generator {g.display} seed {s.seed}", conf, {"split": s.split},
                  generator=g.display, seed=s.seed)


def samples_stage(s: _Seed, g: GeneratorSpec, gen: Stage, ratio: float | None = None) -> Stage:
    from synthmed.generators import get_generator_class

    suffix = "" if ratio is None else f" ratio {ratio:g}"
    conf = s.samples_conf(ratio).model_copy(update={"knobs": samples.check_knobs(get_generator_class(g.family), g.sample)})
    st = _stage("samples", f"sample {g.display}{suffix} seed {s.seed}", conf, {"generator": gen, "split": s.split},
                generator=g.display, seed=s.seed)
    if not g.sample:  # no knobs: left out of the key, so run folders from before knobs existed still resume
        st.config.pop("knobs")
    return st


def samples_file_stage(s: _Seed, spec: SamplesSpec, ratio: float | None = None) -> Stage:
    path = str(Path(spec.path).resolve())
    suffix = "" if ratio is None else f" ratio {ratio:g}"
    conf = samples_file.Config(**s.samples_conf(ratio).model_dump(exclude={"knobs"}), path=path, content=file_identity(path),
                               allow_unknown_provenance=spec.allow_unknown_provenance)
    return _stage("samples_file", f"import {spec.display}{suffix} seed {s.seed}", conf, {"split": s.split},
                  generator=spec.display, seed=s.seed)


# -- wiring ----------------------------------------------------------------------------------------
def _downstream(s: _Seed, label: str, samples_: Stage, swept: list[tuple[float, Stage]],
                gen: Stage | None = None) -> list[Stage]:
    """Classifier runs that use a synthetic set, the ratio sweep, and fidelity."""
    out = [classify_stage(s, c, label, samples_) for c in s.cfg.conditions if get_condition(c).needs_generator]
    for c in (c for c in s.cfg.conditions if get_condition(c).ratio_sweep):
        for r, st in swept:
            out += [st, classify_stage(s, c, label, st, label=sweep_label(c, r))]
    if s.extractor is not None:
        out.append(fidelity_stage(s, label, samples_, gen))
    return out


def _matched_controls(s: _Seed) -> list[Stage]:
    """Each control that can be count-matched (``ratio_options``, e.g. real+duplicate) at every ratio of the sweep:
    the utility curve compares ``real+synthetic@r`` with ``real+duplicate@r``, not with the study's own amount."""
    return [classify_stage(s, c, CONTROL, label=sweep_label(c, r), ratio=r) for c in s.cfg.conditions
            if get_condition(c).ratio_options is not None for r in s.ratios]


def _synthetic_sets(s: _Seed) -> list[Stage]:
    """Every synthetic set of one seed (trained generators, imported samples) and what uses it."""
    stages: list[Stage] = []
    for g in s.cfg.generators:
        gen = generator_stage(s, g)
        main = samples_stage(s, g, gen)
        swept = [(r, samples_stage(s, g, gen, r)) for r in s.ratios]
        stages += [gen, main, *_downstream(s, g.display, main, swept, gen)]
    for spec in s.cfg.samples:
        main = samples_file_stage(s, spec)
        swept = [(r, samples_file_stage(s, spec, r)) for r in s.ratios]
        stages += [main, *_downstream(s, spec.display, main, swept)]
    return stages


def expand_study(cfg: StudyConfig) -> list[Stage]:
    """All stages of a study, in an order where inputs come first."""
    classifier = resolve_classifier_config(cfg.classifier, device=cfg.device)
    need_extractor = bool(cfg.generators or cfg.samples) and (cfg.metrics.fidelity or cfg.metrics.memorization)
    stages: list[Stage] = []
    channels = study_channels(cfg)
    for seed in cfg.seeds:
        split_ = split_stage(cfg, seed)
        ext = extractor_stage(cfg, classifier, split_, seed) if need_extractor else None
        s = _Seed(cfg, seed, classifier, split_, ext, channels=channels)
        s.reference = reference_stage(s) if ext else None
        synthetic = _synthetic_sets(s)
        imports = [st for st in synthetic if st.kind == "samples_file"]  # right after the split: a leaky import
        stages += [split_, *imports, *([ext, s.reference] if ext else [])]  # is refused before any training is spent
        stages += [classify_stage(s, c, CONTROL) for c in cfg.conditions if not get_condition(c).needs_generator]
        stages += _matched_controls(s)
        stages += [st for st in synthetic if st.kind != "samples_file"]
    return stages
