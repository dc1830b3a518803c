"""The ``Condition`` record and its registry: what a downstream condition is, in one place.

A condition says which images the classifier trains on (its ``build`` function), whether it needs a
generator's samples, whether it is a control, where it sits in tables, whether classic augmentation
is on, and which options it takes (a closed pydantic model, filled from the study's synthetic amount).
Study expansion, stage code, results, the report and the web app read these records; nothing else
branches on a condition's name. Adding a condition = one module in this package + its test.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from synthmed.data.types import LabeledImages
from synthmed.errors import ConfigError, SynthmedError, unknown_name


class ConditionOptions(BaseModel):
    """Base of a condition's own options: closed (an unknown key fails)."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class ConditionInputs:
    """What a condition may draw its training set from."""

    real: LabeledImages  # the k-shot real training images
    train_pool: LabeledImages | None = None  # every real image allowed for training
    synthetic: LabeledImages | None = None  # generated images, used as given
    seed: int = 0  # seeds any re-draw the condition makes
    baseline_classifier: Any = None  # the baseline condition's TrainedClassifier of the same seed (when asked for)


@dataclass(frozen=True)
class PhaseSet:
    name: str
    train: LabeledImages
    share: float  # this phase's fraction of the step budget


@dataclass(frozen=True)
class ConditionSet:
    condition: str
    train: LabeledImages
    augment: bool
    n_real: int
    n_extra: int  # synthetic or duplicated images added
    phases: tuple[PhaseSet, ...] = ()  # a multi-phase schedule (``train`` is then the last phase's set)
    facts: dict[str, Any] = field(default_factory=dict)  # what the build decided (recorded in the stage record)


# -> (train, n_real, n_extra) or (train, n_real, n_extra, facts): facts = JSON-able record of what was decided
Builder = Callable[[ConditionInputs, Any], tuple]


@dataclass(frozen=True)
class Phase:
    """One phase of a multi-phase condition: trained in order, each phase continuing from the weights the
    previous one ended with; the phases share the condition's single step budget."""

    name: str  # e.g. "pretrain", "finetune"
    build: Builder  # (inputs, options) -> this phase's training set (counts ignored)
    share: Callable[[Any], float]  # options -> this phase's fraction of the step budget (the fractions sum to 1)


def split_steps(total: int, shares: list[float]) -> list[int]:
    """``total`` steps split by ``shares`` (largest remainder), every phase ≥ 1 step; the parts sum to ``total``."""
    if total < len(shares):
        raise SynthmedError(f"a {len(shares)}-phase condition needs a step budget of at least {len(shares)}; "
                            f"got max_steps={total}")
    w = np.asarray(shares, dtype=np.float64) / float(np.sum(shares))
    raw = w * (total - len(shares))  # one step per phase reserved, the rest split by share
    steps = np.floor(raw).astype(int)
    steps[np.argsort(-(raw - steps), kind="stable")[: total - len(shares) - steps.sum()]] += 1
    return [int(x) + 1 for x in steps]


@dataclass(frozen=True)
class Condition:
    name: str
    build: Builder  # (inputs, options) -> (training set, n_real, n_extra)
    order: float  # display order in tables (controls first, then conditions that use a generator)
    description: str
    needs_generator: bool = False  # trains on a generator's samples: one run per generator
    is_control: bool = False  # a control the synthetic conditions must beat ("best control")
    is_baseline: bool = False  # the reference every other condition is compared with
    is_ceiling: bool = False  # the upper bound for "gap closed"
    ratio_sweep: bool = False  # the study's synthetic.ratios sweep applies to this condition
    augment: bool = False  # classic augmentation on during training
    in_default: bool = True  # part of a study's default conditions (off: costly extra runs, opt in via ``conditions``)
    needs_baseline_classifier: bool = False  # gets the baseline condition's classifier of the same seed as input
    phases: tuple[Phase, ...] = ()  # a multi-phase schedule; ``build`` then gives the last phase's set and the counts
    options: type[ConditionOptions] = ConditionOptions
    # study-wide synthetic amount (total, ratio) -> this condition's option values
    options_from_study: Callable[[Mapping[str, Any]], dict[str, Any]] = field(default=lambda _: {})
    # a control that can be count-matched to each ratio of the sweep: ratio -> its option values (the study then
    # runs it once per ratio, labelled "<name>@<r>x", beside the swept conditions' "<name>@<r>x" rows)
    ratio_options: Callable[[float], dict[str, Any]] | None = None

    def make_options(self, values: Mapping[str, Any] | None = None) -> ConditionOptions:
        from synthmed.config import format_validation_error

        try:
            return self.options(**dict(values or {}))
        except Exception as e:  # pydantic ValidationError -> one line
            raise ConfigError(f"condition '{self.name}' options: {format_validation_error(e, self.options)}") from None

    def build_set(self, inputs: ConditionInputs, options: Mapping[str, Any] | ConditionOptions | None = None) -> ConditionSet:
        if self.needs_generator and (inputs.synthetic is None or len(inputs.synthetic) == 0):
            raise SynthmedError(f"condition '{self.name}' needs synthetic images; add a generator to the study")
        opts = options if isinstance(options, ConditionOptions) else self.make_options(options)
        if self.needs_baseline_classifier and inputs.baseline_classifier is None:
            raise SynthmedError(f"condition '{self.name}' needs the baseline classifier of the same seed")
        train, n_real, n_extra, *facts = self.build(inputs, opts)
        phases = tuple(PhaseSet(p.name, p.build(inputs, opts)[0], float(p.share(opts))) for p in self.phases)
        return ConditionSet(self.name, train, self.augment, n_real, n_extra, phases, facts[0] if facts else {})


_REGISTRY: dict[str, Condition] = {}


def register_condition(condition: Condition) -> Condition:
    """Register a condition; a second, different registration of the same name fails at import."""
    other = _REGISTRY.get(condition.name)
    if other is not None and other is not condition:
        raise RuntimeError(f"condition '{condition.name}' registered twice")
    _REGISTRY[condition.name] = condition
    return condition


def _load_builtin() -> None:
    """Import every module of this package: each condition module registers itself, so a new
    condition is one new file."""
    import pkgutil

    import synthmed.conditions as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{pkg.__name__}.{info.name}")


def list_conditions() -> list[str]:
    """Registered condition names in display order."""
    _load_builtin()
    return [c.name for c in sorted(_REGISTRY.values(), key=lambda c: (c.order, c.name))]


def get_condition(name: str) -> Condition:
    _load_builtin()
    if name not in _REGISTRY:
        raise unknown_name("condition", name, _REGISTRY)
    return _REGISTRY[name]


def default_conditions() -> list[str]:
    """Registered conditions a study runs when it names none (``in_default``), in display order."""
    return [n for n in list_conditions() if _REGISTRY[n].in_default]


def find_condition(role: str) -> str | None:
    """The name of the condition flagged ``is_<role>`` (``baseline`` or ``ceiling``), if any."""
    found = [n for n in list_conditions() if getattr(_REGISTRY[n], f"is_{role}")]
    return found[0] if found else None


def sweep_label(name: str, ratio: float) -> str:
    """The result label of condition ``name`` at one ratio of the study's sweep, e.g. "real+synthetic@2x"."""
    return f"{name}@{ratio:g}x"


def parse_sweep_label(label: str) -> tuple[str, float] | None:
    """``sweep_label``'s inverse: (condition name, ratio), or None for a label outside the sweep."""
    name, at, rest = label.rpartition("@")
    if not at or not rest.endswith("x"):
        return None
    try:
        return name, float(rest[:-1])
    except ValueError:
        return None


def build_condition(name: str, *, real: LabeledImages, train_pool: LabeledImages | None = None,
                    synthetic: LabeledImages | None = None, seed: int = 0,
                    options: Mapping[str, Any] | None = None, baseline_classifier: Any = None) -> ConditionSet:
    """Training set for condition ``name`` (see ``ConditionInputs`` for the arguments)."""
    inputs = ConditionInputs(real, train_pool, synthetic, seed, baseline_classifier)
    return get_condition(name).build_set(inputs, options)


# -- helpers shared by the condition modules -----------------------------------------------------
def synthetic_label_plan(real_labels: np.ndarray, num_classes: int, *, total: int | None = None,
                         ratio: float | None = None, balanced: bool = True) -> np.ndarray:
    """Labels of the synthetic images to add: ``total`` images (or ``ratio`` × real), balanced per class
    (remainder spread over the first classes) or following the real class mix."""
    n_real = len(real_labels)
    if ratio is not None:
        total = int(round(ratio * n_real))
    if total is None or total < 0:
        raise SynthmedError(f"synthetic amount must be a count ≥ 0 or a ratio; got total={total}, ratio={ratio}")
    if balanced:
        counts = np.full(num_classes, total // num_classes)
        counts[: total % num_classes] += 1
    else:
        mix = np.bincount(real_labels, minlength=num_classes) / max(n_real, 1)
        counts = np.floor(mix * total).astype(int)
        counts[np.argsort(-mix)[: total - counts.sum()]] += 1
    return np.repeat(np.arange(num_classes), counts)


def concat_images(a: LabeledImages, b_images: np.ndarray, b_labels: np.ndarray) -> LabeledImages:
    if b_images.shape[1:] != a.images.shape[1:]:
        raise SynthmedError(
            f"synthetic images have shape {b_images.shape[1:]} but the real ones {a.images.shape[1:]}; "
            "train the generator at the dataset's size and channels"
        )
    return LabeledImages(
        images=np.concatenate([a.images, b_images]),
        labels=np.concatenate([a.labels, b_labels.astype(np.int64)]),
        class_names=a.class_names,
        name=a.name,
        meta=dict(a.meta),
    )
