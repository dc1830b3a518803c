"""Class faithfulness: does a synthetic image show the class it was generated for?

A domain classifier that never saw the held-out real set H (nor R) scores the synthetic images
against their *intended* labels: accuracy, balanced accuracy, macro-F1 and ROC-AUC, each with a
percentile bootstrap interval (resampling images within each class, so every class keeps its
count). The same classifier on H gives the floor: what real images of those classes score.

Verdict (on balanced accuracy, whose chance level is 1/K whatever the class mix; ``margin`` = 0.05):

1. ``uninformative``: the floor's interval reaches chance + margin: the classifier cannot tell the
   classes apart on real images, so it cannot judge synthetic ones.
2. ``cannot tell``: the synthetic interval covers both chance and floor − margin (too few images).
3. ``faithful``: the synthetic interval reaches floor − margin (within the margin of real images).
4. ``label-blind``: the synthetic interval reaches chance: the labels carry no class information.
5. ``partly faithful``: clearly below the floor and clearly above chance.
"""

from __future__ import annotations

import numpy as np

from synthmed.errors import ConfigError, DataFormatError
from synthmed.metrics.classification import (KEY_ACCURACY, KEY_BALANCED_ACCURACY, KEY_MACRO_F1, KEY_ROC_AUC,
                                             classification_metrics)

FAITHFULNESS_METRICS = (KEY_ACCURACY, KEY_BALANCED_ACCURACY, KEY_MACRO_F1, KEY_ROC_AUC)
VERDICT_METRIC = KEY_BALANCED_ACCURACY
MARGIN = 0.05
BOOTSTRAP = 500  # percentile-interval end points are stable to ~0.01 at this count on a few hundred images
VERDICTS = ("uninformative", "cannot tell", "faithful", "label-blind", "partly faithful")


def _rank_auc(is_pos: np.ndarray, score: np.ndarray) -> float | None:
    """ROC-AUC as the Mann–Whitney statistic on average ranks (ties count ½), equal to sklearn's
    ``roc_auc_score`` up to float rounding; None when one class is missing. Hand-written because the
    bootstrap calls it a thousand times per set and sklearn's input checks took ~8 ms a call (97 % of the
    faithfulness instrument's time)."""
    from scipy.stats import rankdata

    n_pos = int(is_pos.sum())
    n_neg = len(is_pos) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    u = rankdata(score)[is_pos].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def _scalars(y: np.ndarray, p: np.ndarray, k: int) -> dict[str, float | None]:
    """The four metrics from numpy counts (the bootstrap calls this hundreds of times; sklearn's
    per-call checks would dominate), matching ``classification_metrics``' definitions (ROC-AUC: binary on
    the second class's probability, else the one-vs-rest mean over the classes present)."""
    pred = p.argmax(1)
    cm = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)  # rows = true
    tp, support, predicted = np.diag(cm), cm.sum(1), cm.sum(0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=precision + recall > 0)
    aucs = [a for a in (_rank_auc(y == c, p[:, c]) for c in ([1] if k == 2 else range(k))) if a is not None]
    return {KEY_ACCURACY: float(tp.sum() / len(y)), KEY_BALANCED_ACCURACY: float(recall[support > 0].mean()),
            KEY_MACRO_F1: float(f1.mean()), KEY_ROC_AUC: float(np.mean(aucs)) if aucs else None}


def _stratified_resample(y: np.ndarray, rng) -> np.ndarray:
    return np.concatenate([rng.choice(idx, size=len(idx)) for idx in (np.flatnonzero(y == c) for c in np.unique(y))])


def _scored(y: np.ndarray, p: np.ndarray, names: list[str], n_boot: int, confidence: float, seed: int) -> dict:
    """Point values (``classification_metrics``) and percentile bootstrap intervals."""
    full = classification_metrics(y, p, names)
    rng = np.random.default_rng(seed)
    boots = [_scalars(y[i], p[i], len(names)) for i in (_stratified_resample(y, rng) for _ in range(n_boot))]
    lo, hi = (1 - confidence) / 2, (1 + confidence) / 2
    out = {"n": int(len(y))}
    for m in FAITHFULNESS_METRICS:
        vals = np.array([b[m] for b in boots if b[m] is not None])
        ci = [float(np.quantile(vals, lo)), float(np.quantile(vals, hi))] if len(vals) else None
        out[m] = {"value": full[m], "ci": ci}
    return out


def faithfulness_verdict(synthetic: dict, floor: dict, num_classes: int, *, margin: float = MARGIN) -> tuple[str, str]:
    """The verdict and the sentence that justifies it, from two ``_scored`` results (module docstring rules)."""
    chance = 1.0 / num_classes
    s, f = synthetic[VERDICT_METRIC], floor[VERDICT_METRIC]
    (s_lo, s_hi), (f_lo, _) = s["ci"], f["ci"]
    target = f["value"] - margin
    facts = (f"balanced accuracy {s['value']:.3f} [{s_lo:.3f}, {s_hi:.3f}] vs floor {f['value']:.3f} on held-out "
             f"real images; chance {chance:.3f}, margin {margin}")
    if f_lo <= chance + margin:
        return "uninformative", f"the domain classifier barely beats chance on real images ({facts})"
    if s_lo <= chance and s_hi >= target:
        return "cannot tell", f"the interval spans chance and the floor ({facts}); score more images"
    if s_hi >= target:
        return "faithful", f"within {margin} of the floor ({facts})"
    if s_lo <= chance:
        return "label-blind", f"the labels carry no class information: consistent with chance ({facts})"
    return "partly faithful", f"below the floor but above chance ({facts})"


def faithfulness_floor(heldout_proba: np.ndarray, heldout_labels: np.ndarray, class_names: list[str] | tuple[str, ...],
                       *, n_boot: int = BOOTSTRAP, confidence: float = 0.95, seed: int = 0) -> dict:
    """The floor half of ``class_faithfulness`` (the classifier on H), which no synthetic set enters: a seed's
    generators share it. Same arguments as ``class_faithfulness``; pass the result there as ``floor``."""
    return _scored_set("floor", heldout_proba, heldout_labels, [str(c) for c in class_names], n_boot, confidence, seed)


def _scored_set(key: str, p: np.ndarray, y: np.ndarray, names: list[str], n_boot: int, confidence: float,
                seed: int) -> dict:
    if n_boot < 100:
        raise ConfigError(f"n_boot must be ≥ 100 for a percentile interval; got {n_boot}")
    y = np.asarray(y)
    if len(y) == 0:
        raise DataFormatError(f"no {key} images to score; pass a non-empty set")
    return _scored(y.astype(np.int64), np.asarray(p, dtype=np.float64), names, n_boot, confidence, seed)


def class_faithfulness(synthetic_proba: np.ndarray, synthetic_labels: np.ndarray, heldout_proba: np.ndarray | None,
                       heldout_labels: np.ndarray | None, class_names: list[str] | tuple[str, ...], *,
                       n_boot: int = BOOTSTRAP, confidence: float = 0.95, margin: float = MARGIN,
                       seed: int = 0, floor: dict | None = None) -> dict:
    """Class faithfulness of a synthetic set beside its held-out floor.

    Args:
        synthetic_proba: ``(N, K)`` domain-classifier probabilities of the synthetic images.
        synthetic_labels: ``(N,)`` the labels the images were generated for.
        heldout_proba, heldout_labels: the same for H (the classifier must never have trained on H);
            unused when ``floor`` is given.
        class_names: the K class names.
        n_boot: bootstrap resamples (default 500); confidence: interval level (default 0.95).
        margin: how far below the floor still counts as faithful (default 0.05).
        seed: bootstrap seed.
        floor: ``faithfulness_floor(heldout_proba, heldout_labels, ...)`` with the same n_boot, confidence and
            seed, computed beforehand (once per seed).

    Returns:
        ``{"synthetic": {n, accuracy: {value, ci}, balanced_accuracy, macro_f1, roc_auc}, "floor": {...},
        "chance": 1/K, "margin", "verdict_metric", "verdict", "reason", "confidence", "n_boot"}``.
    """
    names = [str(c) for c in class_names]
    sets = {"synthetic": _scored_set("synthetic", synthetic_proba, synthetic_labels, names, n_boot, confidence, seed),
            "floor": floor if floor is not None else faithfulness_floor(heldout_proba, heldout_labels, names,
                                                                        n_boot=n_boot, confidence=confidence, seed=seed)}
    verdict, reason = faithfulness_verdict(sets["synthetic"], sets["floor"], len(names), margin=margin)
    return {**sets, "chance": 1.0 / len(names), "margin": margin, "verdict_metric": VERDICT_METRIC,
            "verdict": verdict, "reason": reason, "confidence": confidence, "n_boot": n_boot}


def faithfulness_from_classifier(classifier, synthetic_images: np.ndarray, synthetic_labels: np.ndarray,
                                 heldout_images: np.ndarray, heldout_labels: np.ndarray,
                                 class_names: list[str] | tuple[str, ...], **kwargs) -> dict:
    """``class_faithfulness`` with probabilities from ``classifier.predict_proba(uint8 NHWC)``
    (e.g. a ``TrainedClassifier`` trained on E, never on H)."""
    return class_faithfulness(classifier.predict_proba(synthetic_images), synthetic_labels,
                              classifier.predict_proba(heldout_images), heldout_labels, class_names, **kwargs)
