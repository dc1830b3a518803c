"""``real+synthetic-filtered``: the k-shot real images plus only those synthetic images that a classifier
trained on the k-shot real images alone gives their intended class with confidence ≥ ``tau`` (issue 14).

The filter is the study's ``real`` (baseline) classifier of the same seed, an input of this stage; the
domain feature extractor is never used here: it was trained on the whole training pool, which a
few-shot user does not have. τ and the kept count and fraction per class are recorded; when fewer than
``min_kept`` images survive, the record says so in one line (the run then trains on the real images plus
the few survivors, it never fails silently into an empty set).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from synthmed.conditions.base import Condition, ConditionInputs, ConditionOptions, concat_images, register_condition
from synthmed.data.types import LabeledImages


class FilterOptions(ConditionOptions):
    tau: float = Field(0.9, gt=0, le=1)  # keep an image when the real-only classifier's P(its class) ≥ tau
    # (in a study: synthetic.filter_tau)
    min_kept: int = Field(10, ge=0)  # fewer survivors than this: the stage record says so


def filter_mask(probs: np.ndarray, labels: np.ndarray, tau: float) -> np.ndarray:
    """Which samples the filter keeps: the probability of each sample's own label is ≥ ``tau``."""
    return probs[np.arange(len(labels)), labels] >= tau


def kept_per_class(labels: np.ndarray, keep: np.ndarray, class_names) -> dict[str, dict[str, float]]:
    out = {}
    for k, name in enumerate(class_names):
        offered = int(np.sum(labels == k))
        kept = int(np.sum(keep[labels == k]))
        out[str(name)] = {"offered": offered, "kept": kept, "fraction": kept / offered if offered else None}
    return out


def _build(inp: ConditionInputs, opts: FilterOptions):
    syn: LabeledImages = inp.synthetic
    keep = filter_mask(inp.baseline_classifier.predict_proba(syn.images), syn.labels, opts.tau)
    n = int(keep.sum())
    facts = {"tau": opts.tau, "n_offered": len(syn), "n_kept": n, "kept_fraction": n / len(syn),
             "per_class": kept_per_class(syn.labels, keep, inp.real.class_names)}
    if n < opts.min_kept:
        alone = "the real images alone" if n == 0 else "little more than the real images"
        facts["note"] = (f"filter kept {n} of {len(syn)} synthetic images (tau = {opts.tau:g}, fewer than "
                         f"min_kept = {opts.min_kept}): this run trains on {alone}")
    return concat_images(inp.real, syn.images[keep], syn.labels[keep]), len(inp.real), n, facts


REAL_SYNTHETIC_FILTERED = register_condition(Condition(
    name="real+synthetic-filtered", order=7, needs_generator=True, needs_baseline_classifier=True, in_default=False,
    options=FilterOptions, build=_build, options_from_study=lambda syn: {"tau": syn["filter_tau"]},
    description="k-shot real + the synthetic images the real-only classifier gives their class with confidence ≥ τ "
                "(control to beat: real+duplicate, count-matched to the unfiltered amount)",
))
