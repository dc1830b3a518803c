"""Fidelity and diversity of a synthetic set, from precomputed features.

FID, KID, Inception Score and k-NN precision/recall are computed by torch-fidelity's
feature-level functions (the same code torchmetrics wraps), so nothing here re-derives a metric:

- FID: ``fid_features_to_statistics`` + ``fid_statistics_to_metric`` (Heusel et al. 2017), float64;
- KID: ``kid_features_to_metric`` (Bińkowski et al. 2018), mean ± std over random subsets, with the
  subset size clamped to the smaller set (torch-fidelity refuses subsets larger than a set);
- IS: ``isc_features_to_metric`` (Salimans et al. 2016) on class logits; optional, because a
  feature extractor without a classification head has no logits;
- precision/recall: ``prc_features_to_metric`` (Kynkäänniemi et al. 2019, k-NN manifolds).

Every result dict also carries the extractor's name, input size and checksum and the sample sizes,
and ``real_floor`` gives the same metrics between two disjoint real subsets of the synthetic set's
size: a FID is only "good" relative to that floor, since FID is biased upward at small n.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from synthmed.errors import ConfigError, DataFormatError

KEY_FID = "fid"
KEY_KID_MEAN = "kid_mean"
KEY_KID_STD = "kid_std"
KEY_KID_SUBSET_SIZE = "kid_subset_size"
KEY_IS_MEAN = "is_mean"
KEY_IS_STD = "is_std"
KEY_PRECISION = "precision"
KEY_RECALL = "recall"
KEY_F_SCORE = "f_score"
KEY_K = "k"
KEY_N_REAL = "n_real"
KEY_N_FAKE = "n_fake"
KEY_EXTRACTOR = "extractor"
KEY_INPUT_SIZE = "input_size"
KEY_CHECKSUM = "checksum"
KEY_SKIPPED = "skipped"

KID_SUBSETS = 100  # torch-fidelity's default; the std over subsets is reported beside the mean
KID_MAX_SUBSET = 1000  # torch-fidelity's default subset size when both sets are larger
IS_SPLITS = 10  # Salimans et al. 2016 convention


# -- helpers ---------------------------------------------------------------------------------------


def _as_features(x: np.ndarray, what: str) -> torch.Tensor:
    x = np.asarray(x)
    if x.ndim != 2:
        raise DataFormatError(f"{what} features must be (N, D); got shape {x.shape}")
    if not np.isfinite(x).all():
        raise DataFormatError(f"{what} features contain NaN or Inf; check the extractor and the images")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))  # float64, as torchmetrics' FID


def _check_pair(real: torch.Tensor, fake: torch.Tensor, need: int, metric: str) -> None:
    if real.shape[1] != fake.shape[1]:
        raise DataFormatError(
            f"real features have D={real.shape[1]} but fake have D={fake.shape[1]}; use one extractor for both")
    if min(len(real), len(fake)) < need:
        raise ConfigError(
            f"{metric} needs ≥ {need} images per set; got real={len(real)}, fake={len(fake)}; sample more images"
        )


def extractor_facts(extractor) -> dict:
    """``{extractor, input_size, checksum}`` from a FeatureExtractor, a dict of them, or None."""
    if extractor is None:
        return {KEY_EXTRACTOR: None, KEY_INPUT_SIZE: None, KEY_CHECKSUM: None}
    if isinstance(extractor, Mapping):
        src = extractor
    else:
        src = extractor.describe() if hasattr(extractor, "describe") else {
            "extractor": getattr(extractor, "name", type(extractor).__name__),
            "input_size": getattr(extractor, "input_size", None),
            "checksum": getattr(extractor, "checksum", None),
        }
    return {KEY_EXTRACTOR: src.get("extractor"), KEY_INPUT_SIZE: src.get("input_size"),
            KEY_CHECKSUM: src.get("checksum")}


# -- single metrics ----------------------------------------------------------------------------------


def features_to_fid(real_feats: np.ndarray, fake_feats: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (float64).

    ‖μ_r − μ_f‖² + Tr(Σ_r + Σ_f − 2 (Σ_r Σ_f)^½), with the trace of the matrix root taken from the
    eigenvalues of Σ_r Σ_f as torch-fidelity and torchmetrics do.
    """
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    real, fake = _as_features(real_feats, "real"), _as_features(fake_feats, "fake")
    _check_pair(real, fake, 2, "FID")
    stats_r, stats_f = fid_features_to_statistics(real), fid_features_to_statistics(fake)
    return float(fid_statistics_to_metric(stats_r, stats_f, verbose=False)[KEY_METRIC_FID])


def features_to_kid(real_feats: np.ndarray, fake_feats: np.ndarray, *, subset_size: int | None = None,
                    subsets: int = KID_SUBSETS, seed: int = 0) -> dict:
    """Kernel Inception Distance (cubic polynomial kernel, unbiased MMD²), mean ± std over subsets.

    Args:
        subset_size: images per subset; default min(1000, n // 2) with n the smaller set, so the
            subsets differ and their std means something (MMD² is unbiased at any subset size).
            Larger values are clamped to n, since subsets are drawn without replacement; at n
            every subset is the whole set and the std is 0.
        subsets: number of random subsets (default 100).
        seed: seed for drawing the subsets.
    """
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    real, fake = _as_features(real_feats, "real"), _as_features(fake_feats, "fake")
    _check_pair(real, fake, 2, "KID")
    n = min(len(real), len(fake))
    size = min(subset_size, n) if subset_size else max(2, min(KID_MAX_SUBSET, n // 2))
    if size < 2:
        raise ConfigError(f"kid_subset_size must be ≥ 2; got {subset_size}")
    # torch-fidelity's convention: input 1 is generated, input 2 is real (KID is symmetric anyway)
    out = kid_features_to_metric(fake, real, kid_subsets=subsets, kid_subset_size=size, rng_seed=seed, verbose=False)
    return {KEY_KID_MEAN: float(out[KEY_METRIC_KID_MEAN]), KEY_KID_STD: float(out[KEY_METRIC_KID_STD]),
            KEY_KID_SUBSET_SIZE: size}


def features_to_precision_recall(real_feats: np.ndarray, fake_feats: np.ndarray, *, k: int = 3) -> dict:
    """Improved precision/recall (Kynkäänniemi et al. 2019): k-NN balls around each set.

    Precision = share of fake samples inside some real sample's k-NN ball (quality);
    recall = share of real samples inside some fake sample's k-NN ball (coverage).
    """
    from torch_fidelity.metric_prc import (KEY_METRIC_F_SCORE, KEY_METRIC_PRECISION, KEY_METRIC_RECALL,
                                           prc_features_to_metric)

    real, fake = _as_features(real_feats, "real"), _as_features(fake_feats, "fake")
    if k < 1:
        raise ConfigError(f"k (precision/recall neighbourhood) must be ≥ 1; got {k}")
    _check_pair(real, fake, k + 1, f"precision/recall with k={k}")
    # torch-fidelity's convention: features_1 = GENERATED, features_2 = REAL
    out = prc_features_to_metric(fake.float(), real.float(), prc_neighborhood=k, save_cpu_ram=True, verbose=False)
    return {KEY_PRECISION: float(out[KEY_METRIC_PRECISION]), KEY_RECALL: float(out[KEY_METRIC_RECALL]),
            KEY_F_SCORE: float(out[KEY_METRIC_F_SCORE]), KEY_K: k}


def logits_to_inception_score(logits: np.ndarray, *, splits: int = IS_SPLITS, seed: int = 0) -> dict:
    """Inception Score exp(E KL(p(y|x) ‖ p(y))) over ``splits`` chunks, from class logits.

    Probabilities may be passed as ``np.log(p)``: softmax(log p) = p.
    """
    from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

    lg = _as_features(logits, "logits")
    splits = max(1, min(splits, len(lg)))
    out = isc_features_to_metric(lg, splits=splits, shuffle=True, rng_seed=seed)
    return {KEY_IS_MEAN: float(out[KEY_METRIC_ISC_MEAN]), KEY_IS_STD: float(out[KEY_METRIC_ISC_STD])}


# -- combined ----------------------------------------------------------------------------------------------


def fidelity_from_features(real_feats: np.ndarray, fake_feats: np.ndarray, *, fake_logits: np.ndarray | None = None,
                           kid_subset_size: int | None = None, kid_subsets: int = KID_SUBSETS, k: int = 3,
                           seed: int = 0, extractor=None) -> dict:
    """FID, KID, precision/recall (and IS when logits are given) of one fake set against real.

    Args:
        real_feats: ``(N_r, D)`` features of the real reference images.
        fake_feats: ``(N_f, D)`` features of the synthetic images, same extractor.
        fake_logits: optional ``(N_f, K)`` class logits of the synthetic images (enables IS).
        kid_subset_size: KID subset size; default min(1000, min(N_r, N_f) // 2), clamped to the smaller set.
        kid_subsets: KID subsets (default 100).
        k: neighbourhood size for precision/recall (default 3, as in the paper).
        seed: seed for KID subsets and IS shuffling.
        extractor: the ``FeatureExtractor`` used (or its ``describe()`` dict); its name, input size
            and checksum are recorded in the result.

    Returns:
        Flat dict with ``KEY_*`` entries; ``is_mean``/``is_std`` are None without logits.
    """
    out = {**extractor_facts(extractor), KEY_N_REAL: len(real_feats), KEY_N_FAKE: len(fake_feats)}
    out[KEY_FID] = features_to_fid(real_feats, fake_feats)
    out.update(features_to_kid(real_feats, fake_feats, subset_size=kid_subset_size, subsets=kid_subsets, seed=seed))
    out.update(features_to_precision_recall(real_feats, fake_feats, k=k))
    if fake_logits is not None:
        out.update(logits_to_inception_score(fake_logits, seed=seed))
    else:
        out.update({KEY_IS_MEAN: None, KEY_IS_STD: None})
    return out


def fidelity_per_class(real_feats: np.ndarray, real_labels: np.ndarray, fake_feats: np.ndarray,
                       fake_labels: np.ndarray, *, class_names: tuple[str, ...] | None = None,
                       fake_logits: np.ndarray | None = None, **kwargs) -> dict[str, dict]:
    """``fidelity_from_features`` within each class; classes too small to score are reported skipped.

    Args:
        real_labels, fake_labels: ``(N,)`` int class indices aligned with the features.
        class_names: names used as keys (default ``"0"``, ``"1"``...).
        **kwargs: passed to ``fidelity_from_features`` (``k``, ``kid_subset_size``, ``extractor``...).

    Returns:
        ``{class_name: result dict}``; a class with too few images gets ``{"skipped": reason, ...}``.
    """
    real_labels, fake_labels = np.asarray(real_labels), np.asarray(fake_labels)
    if len(real_labels) != len(real_feats) or len(fake_labels) != len(fake_feats):
        raise DataFormatError("labels must have one entry per feature row (real and fake)")
    top = int(max(real_labels.max(initial=-1), fake_labels.max(initial=-1)))
    names = list(class_names) if class_names else [str(c) for c in range(top + 1)]
    out = {}
    for c, name in enumerate(names):
        r, f = real_labels == c, fake_labels == c
        try:
            out[name] = fidelity_from_features(real_feats[r], fake_feats[f], fake_logits=None if fake_logits is None
                                               else fake_logits[f], **kwargs)
        except ConfigError as e:
            out[name] = {**extractor_facts(kwargs.get("extractor")), KEY_N_REAL: int(r.sum()),
                         KEY_N_FAKE: int(f.sum()), KEY_SKIPPED: str(e)}
    return out


def real_floor(real_feats: np.ndarray, n: int, seed: int = 0, **kwargs) -> dict:
    """The same metrics between two disjoint random real subsets of size ``n`` each.

    A FID/KID/PR value for a synthetic set of size ``n`` means little without this floor: two
    samples of the *same* distribution already differ at finite n (FID is biased upward).

    Args:
        real_feats: ``(N, D)`` real features (e.g. the full training pool).
        n: the synthetic set's size; must satisfy 2n ≤ N.
        seed: seed for the split into two halves.
        **kwargs: passed to ``fidelity_from_features`` (``k``, ``extractor``...).

    Returns:
        The metric dict plus ``n`` and ``seed``; ``is_*`` are None (no fake logits).
    """
    real_feats = np.asarray(real_feats)
    if n < 2 or 2 * n > len(real_feats):
        raise ConfigError(
            f"real floor needs two disjoint subsets of n={n} (2 ≤ n ≤ {len(real_feats) // 2}) from {len(real_feats)} "
            f"real images; lower n (or the synthetic count) or use a larger real pool"
        )
    perm = np.random.default_rng(seed).permutation(len(real_feats))
    a, b = real_feats[perm[:n]], real_feats[perm[n : 2 * n]]
    kwargs.setdefault("seed", seed)
    return {**fidelity_from_features(a, b, **kwargs), "n": n, "floor_seed": seed}


def fidelity_report(real_feats: np.ndarray, real_labels: np.ndarray, fake_feats: np.ndarray, fake_labels: np.ndarray,
                    *, fake_logits: np.ndarray | None = None, class_names: tuple[str, ...] | None = None,
                    floor_seed: int = 0, **kwargs) -> dict:
    """Everything the report shows for one synthetic set, from features computed once.

    Args:
        real_feats, real_labels: features and labels of the real reference pool (e.g. the full
            real training split, which also feeds the floor).
        fake_feats, fake_labels: features and labels of the synthetic set.
        fake_logits: optional class logits of the synthetic set (enables IS).
        class_names: names for the per-class entries.
        floor_seed: seed of the real-vs-real split.
        **kwargs: passed to ``fidelity_from_features`` (``k``, ``kid_subset_size``, ``extractor``...).

    Returns:
        ``{"overall": ..., "per_class": {...}, "real_floor": ...}``. The floor uses n = the synthetic
        count; when the real pool is smaller than twice that, n is lowered to half the pool and
        ``real_floor["note"]`` says so (FID's small-sample bias then makes the floor an overestimate).
    """
    n = len(fake_feats)
    n_floor = min(n, len(real_feats) // 2)
    floor = real_floor(real_feats, n_floor, seed=floor_seed, **kwargs)
    floor["note"] = "" if n_floor == n else (
        f"real pool of {len(real_feats)} allows two disjoint subsets of {n_floor}, not {n}; floor is for n={n_floor}")
    return {
        "overall": fidelity_from_features(real_feats, fake_feats, fake_logits=fake_logits, **kwargs),
        "per_class": fidelity_per_class(real_feats, real_labels, fake_feats, fake_labels, class_names=class_names,
                                        fake_logits=fake_logits, **kwargs),
        "real_floor": floor,
    }
