"""The study config: one YAML names everything a study needs; `synthmed run --print-default` shows it.

Profiles scale the same study: ``smoke`` (tiny, for tests), ``quick`` (one draw of the default:
a first look), ``default`` (the embedded study: five paired draws), ``full`` (every family × the default conditions ×
5 seeds), ``usage`` (the default study with every registered condition, the opt-in ways of using synthetic images too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_serializer

from synthmed.conditions import default_conditions, get_condition
from synthmed.config import StageConfig, validate



class StudyDataset(StageConfig):
    name: str = "pneumoniamnist"  # a known dataset (synthmed data list) or "folder"/"ham10000-raw"/"nih" with path
    size: int = 28  # image side in px; MedMNIST ships 28/64/128/224
    path: str | None = None  # folder for layouts read from disk (class folders, HAM10000, NIH)
    classes: str | list[str] | None = None  # class subset, or "all-as-one" for the unconditional case
    download: bool = True  # fetch a missing MedMNIST file (MD5-checked) unless $SYNTHMED_OFFLINE=1 / run --offline
    channels: Literal[1, 3] | None = None  # 1: grey, 3: RGB, converted from any source; None: the source's own

    @model_serializer(mode="wrap")
    def _drop_unset_channels(self, handler):
        # ``channels`` came after many runs were cached: left unset it stays out of the dump, so the
        # stage keys (hashes of these dumps) of every existing config, and their cached stages, do not change.
        out = handler(self)
        if out.get("channels") is None:
            out.pop("channels", None)
        return out


class SplitSpec(StageConfig):
    shots: int = Field(50, ge=1)  # real training images per class (the few-shot budget)
    protocol: Literal["auto", "official", "fraction"] = "auto"  # auto: official when the dataset ships one
    val_fraction: float = Field(0.10, gt=0, lt=1)  # of the images left after the k-shot draw ("fraction")
    test_fraction: float = Field(0.15, gt=0, lt=1)
    dedup: bool = True  # drop exact duplicates of training images from val/test
    per_seed: bool = True  # each seed draws its own k-shot split: the CI covers the draw (the largest variance)
    seed: int = 0  # the split's seed when per_seed is false (e.g. the split an imported generator trained on)
    heldout: int = Field(1000, ge=2)  # |H| = |R| of the held-out reference design (shrinks on small pools)


class GeneratorSpec(StageConfig):
    family: str  # a registered family: synthmed.generators.list_generators()
    label: str | None = None  # name in tables/report (default: the family); lets one family appear twice
    config: dict[str, Any] = Field(default_factory=dict)  # family config overrides (validated by the family)
    sample: dict[str, Any] = Field(default_factory=dict)  # sampling knobs the family's sample() declares (e.g.
    # ddpm: sampler, steps, guidance); not part of the generator's key, so changing them re-samples, never retrains
    config_rgb: dict[str, Any] = Field(default_factory=dict)  # overrides of ``config`` when the study's images are
    # RGB: the rule that adapts a budget to the data (the default ddpm: 750 steps on grey, 2000 on RGB)

    @property
    def display(self) -> str:
        return self.label or self.family

    def config_for(self, channels: int) -> dict[str, Any]:
        """The family config overrides for images with ``channels`` (1 grey, 3 RGB, 0 unknown: as RGB)."""
        return {**self.config, **self.config_rgb} if channels != 1 else dict(self.config)


class SamplesSpec(StageConfig):
    """Synthetic images made elsewhere (``synthmed evaluate``): an npz with ``images`` (N,H,W,C) uint8
    and ``labels`` (N,), or a folder holding ``samples.npz`` or a trained ``generator.pt``."""

    path: str
    label: str | None = None  # name in tables/report (default: the file or folder name)
    allow_unknown_provenance: bool = False  # accept samples without provenance.json (the report then says that
    # leakage cannot be ruled out); samples whose provenance names another split are always refused

    @property
    def display(self) -> str:
        from pathlib import Path

        p = Path(self.path)
        return self.label or (p.parent.name if p.name in ("samples.npz", "generator.pt") else p.stem)


class SyntheticSpec(StageConfig):
    total: int | None = 1200  # synthetic images added in total, balanced per class (the source study's ≈1200)
    ratio: float | None = None  # alternatively: synthetic = ratio × real training images (overrides total)
    ratios: list[float] = Field(default_factory=list)  # optional sweep of ratios for real+synthetic, e.g. [0.5,1,2,5,10]
    balanced: bool = True  # equal count per class (else follow the real class mix)
    sample_seed: int = 1234  # seed for sampling (offset by the study seed)
    # real+synthetic-filtered keeps a sample when the real-only classifier gives its class probability >= this
    filter_tau: float = Field(0.9, gt=0, le=1)


class MetricsSpec(StageConfig):
    fidelity: bool = True  # matched FD / KID / precision-recall / density-coverage vs the held-out floor (H vs R)
    memorization: bool = True  # copy detector calibrated on H (flag rate vs its null rate)
    extractor: Literal["domain", "inception", "imagenet-offline"] = "domain"  # feature network for fidelity
    extractor_steps: int = 300  # training steps of the domain classifier (trained on E: never H, R or the k-shot images)
    per_class: bool = True  # fidelity per class (with per-class floors) as well as overall
    n_subsets: int = Field(50, ge=10)  # half-samples for the fidelity intervals (cost grows linearly)
    n_boot: int = Field(500, ge=100)  # bootstrap resamples for the class-faithfulness intervals
    alpha: float = Field(0.01, gt=0, lt=1)  # copy detector null rate; needs |H| ≥ 2/alpha − 1 (else raised, noted)


class CeilingSpec(StageConfig):
    """The all-real ceiling's own fair budget: as many epochs over its pool as ``real`` makes over its k-shot
    images, with balanced sampling (the pool is imbalanced), capped at ``max_steps``. At the default
    classifier budget (300 steps × 32 over 100 images ≈ 96 epochs) the uncapped rule asks ~14,000 steps on
    PneumoniaMNIST's 4,708 images: hours per seed on a 2-core CPU. The cap of 600 steps (≈ 4 epochs of the
    pool, 2× real's steps, ~1 min on this CPU) keeps the five-draw default study bounded; the report states the budget."""

    max_steps: int = Field(600, ge=1)  # cap on the ceiling's steps (the CPU-bounded part of the rule)
    balanced_sampling: bool = True


class StudyConfig(StageConfig):
    name: str = "pneumoniamnist-50shot"
    dataset: StudyDataset = Field(default_factory=StudyDataset)
    split: SplitSpec = Field(default_factory=SplitSpec)
    generators: list[GeneratorSpec] = Field(default_factory=list)
    samples: list[SamplesSpec] = Field(default_factory=list)  # precomputed synthetic sets to evaluate
    synthetic: SyntheticSpec = Field(default_factory=SyntheticSpec)
    conditions: list[str] = Field(default_factory=default_conditions)  # registered in synthmed.conditions (default:
    # those flagged in_default; opt-in ones such as synthetic-then-real are named here or come with the usage profile)
    classifier: dict[str, Any] = Field(default_factory=dict)  # synthmed.classify ClassifierConfig overrides
    seeds: list[int] = Field(default_factory=lambda: [0])
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    ceiling: CeilingSpec = Field(default_factory=CeilingSpec)
    device: str = "auto"  # "auto" = CUDA when present, else CPU

    @field_validator("conditions")
    @classmethod
    def _known_conditions(cls, v: list[str]) -> list[str]:
        from synthmed.errors import UnknownNameError

        for c in v:
            try:
                get_condition(c)
            except UnknownNameError as e:
                raise ValueError(str(e)) from None
        return v

    @field_validator("seeds")
    @classmethod
    def _some_seeds(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("give at least one seed")
        if len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct, got {v}")
        return v


# The embedded default study (issues 6, 13): PneumoniaMNIST 28 px, 50 images/class, five paired k-shot draws
# (seeds 0-4: each seed draws its own split, so the confidence intervals cover the draw, the largest variance),
# three families — a conditional GAN, the conditional VAE and DDPM — every default condition, ResNet-18, the calibrated
# instruments. Budgets are step counts (no minute cap: the same seed gives the same numbers on any machine):
# cgan 1000 G steps, cvae 1500 (its family default), ddpm 750 on grey images and 2000 (its family default) on RGB,
# each chosen below on measured curves (bench/RESULTS.md `steps-cgan`, `steps-ddpm`, `health`). wgan-gp and the other
# families are in the ``full`` profile; ``quick`` is one draw for a first look (its report says it cannot answer).
# A user-set cap that stops a stage marks its result rows ``cut_by_time`` and the report says they are not
# reproducible.
DEFAULT_STUDY: dict[str, Any] = {
    "name": "pneumoniamnist-50shot",
    # Budgets from the step → fidelity curves on draw 0 (bench/RESULTS.md, steps-cgan / steps-ddpm): cgan at 1000
    # steps had the FD ratio of 2000 (32.3 vs 31.3) and the same class faithfulness (0.922 vs 0.927) for half the
    # time; ddpm at 750 steps sampled with DDIM-25 beat the old 1000 steps + DDIM-50 on FD ratio (41.2 vs 52.0),
    # faithfulness (0.882 vs 0.861) and copies (0.0033 vs 0.0125, null 0.010) for two thirds of the time.
    "generators": [
        {"family": "cgan", "config": {"max_steps": 1000}},
        {"family": "cvae"},
        # 750 steps on grey images; 2000 on RGB (the family default): on the 7-class skin set 750 steps drew grey
        # noise textures (recall 0.01, label-blind), 2000 recognisable lesions (recall 0.17, health ok), while on a
        # grey stand-in built from the same images 750 steps were healthy (recall 0.70); bench/RESULTS.md, health
        {"family": "ddpm", "config": {"max_steps": 750}, "config_rgb": {"max_steps": 2000}, "sample": {"steps": 25}},
    ],
    # The user's question is whether synthetic images help the few real ones: real+synthetic against every
    # control. `synthetic` alone (can they replace the real images?) costs a classifier run per generator and
    # draw and a Holm comparison each; it is in the `full` and `usage` profiles.
    "conditions": ["real", "real+classic", "real+duplicate", "all-real", "real+synthetic"],
    "classifier": {},
    "seeds": [0, 1, 2, 3, 4],
}

PROFILES: dict[str, dict[str, Any]] = {
    # Tiny: two cheap families, a handful of steps everywhere — the end-to-end test profile.
    "smoke": {
        "seeds": [0],
        "generators": [
            {"family": "cgan", "config": {"tiny": True, "max_steps": 3}},
            {"family": "cvae", "config": {"tiny": True, "max_steps": 3}},
        ],
        "conditions": "the registry's default conditions",  # synthetic-only too: the end-to-end test covers it
        "split": {"heldout": 200},  # |H| = 200: the smallest H the copy detector calibrates at α = 1 %
        "synthetic": {"total": 40},
        "classifier": {"tiny": True, "max_steps": 4},
        "metrics": {"extractor_steps": 4, "n_subsets": 10, "n_boot": 100},
        "ceiling": {"max_steps": 8},
    },
    "default": {},
    # One k-shot draw of the default study: a first look in about a fifth of the time; it cannot answer (n = 1).
    "quick": {"seeds": [0]},
    # Every registered family × the default conditions × 5 seeds (hours on a CPU; meant for a GPU or a Ray cluster);
    # the families are read from the registry when the profile is loaded.
    "full": {"generators": "every registered family", "conditions": "the registry's default conditions",
             "seeds": [0, 1, 2, 3, 4]},
    # The default study plus every registered condition, the opt-in ways of using synthetic images too
    # (synthetic-then-real, real+synthetic-filtered: issue 14), and the ratio sweep: real+synthetic at each
    # ratio with its own count-matched real+duplicate (the report's utility curve); conditions from the registry.
    "usage": {"conditions": "every registered condition", "synthetic": {"ratios": [0.25, 0.5, 1, 2, 5, 10]}},
}


def _with_registered_families(prof: dict[str, Any]) -> dict[str, Any]:
    """The ``full`` profile's generators: every family in the registry when the profile is loaded (and the
    ``usage`` profile's conditions: every registered condition)."""
    from synthmed.conditions import list_conditions

    prof = dict(prof)
    if prof.get("generators") == "every registered family":
        from synthmed.generators import list_generators

        prof["generators"] = [{"family": f} for f in list_generators()]
    if prof.get("conditions") == "every registered condition":
        prof["conditions"] = list_conditions()
    elif prof.get("conditions") == "the registry's default conditions":
        prof["conditions"] = default_conditions()
    return prof


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# Named example studies shipped as YAML in synthmed/configs/ (e.g. skin.yaml); each is a profile too.
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "configs"


def profile_names() -> list[str]:
    """The built-in profiles, then the packaged example studies (``synthmed/configs/<name>.yaml``)."""
    return [*PROFILES, *sorted(p.stem for p in EXAMPLES_DIR.glob("*.yaml") if p.stem not in PROFILES)]


def _profile(name: str) -> dict[str, Any]:
    from synthmed.config import load_yaml
    from synthmed.errors import ConfigError, suggest

    if name in PROFILES:
        return _with_registered_families(PROFILES[name])
    if name in profile_names():
        return load_yaml(EXAMPLES_DIR / f"{name}.yaml")
    known = profile_names()
    raise ConfigError(f"unknown profile '{name}'{suggest(name, known)} (known: {', '.join(known)})")


def load_study_config(data: dict[str, Any] | str | Path | None = None, profile: str = "default",
                      source: str = "study config") -> StudyConfig:
    """Resolve a study config: embedded default ← profile (or packaged example study) ← user data (user wins);
    ``data`` is a mapping or the path of a study YAML."""
    if isinstance(data, (str, Path)):
        from synthmed.config import load_yaml

        data, source = load_yaml(data), str(data)
    merged = _deep_merge(_deep_merge(DEFAULT_STUDY, _profile(profile)), data or {})
    return validate(StudyConfig, merged, source=source)
