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
from dataclasses import dataclass

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


# -- matched-size design against the held-out floor (issue 12) ----------------------------------------------
#
# Every generator metric compares a synthetic set S of |H| images with the reference R; the floor is
# the held-out real set H against the same R (H, R from ``synthmed.data.make_heldout_design``), so
# both carry the same small-sample bias. Intervals come from half-sampling: B times, a random half of
# each set is drawn (R's half shared by S and H, so the two are paired), the metric recomputed, and
# the spread of those values around their mean is put around the full-size value. For a smooth
# statistic the variance of a half-sample estimate around the full-sample one equals the full-sample
# variance (σ²/m − σ²/n = σ²/n at m = n/2; Efron's half-sampling), while the recentring removes the
# extra small-sample bias of FID at n/2.

KEY_DENSITY, KEY_COVERAGE = "density", "coverage"
MATCHED_METRICS = (KEY_FID, KEY_KID_MEAN, KEY_PRECISION, KEY_RECALL, KEY_DENSITY, KEY_COVERAGE)
LOWER_IS_BETTER = frozenset({KEY_FID, KEY_KID_MEAN})
NO_RATIO = frozenset({KEY_KID_MEAN})  # unbiased MMD²: the floor is ≈ 0 (even < 0), so only the difference reads
PRDC_K = 5  # Naeem et al. 2020's recommended neighbourhood for density/coverage
HALF_SAMPLES = 100
IS_NOTE = ("Inception Score is capped at the class count K: a confident classifier on a balanced K-class set "
           "scores ≈ K whatever the images look like; kept only for comparison with older papers")


def features_to_prdc(real_feats: np.ndarray, fake_feats: np.ndarray, *, k: int = PRDC_K,
                     real_radii: np.ndarray | None = None) -> dict:
    """Precision, recall, density and coverage (Naeem et al. 2020) with the authors' ``prdc`` package.

    Density = mean number of real k-NN balls containing a fake sample / k (≈ 1 for matching sets,
    > 1 when fakes crowd dense regions); coverage = share of real samples whose k-NN ball holds a
    fake sample (≈ 1 − (1/2)^k for matching sets; robust to outliers unlike recall).

    Args:
        real_radii: the real set's k-NN radii (``prdc_radii(real_feats, k)``) when already known: the
            matched design scores the synthetic set and the floor against the same R (and every generator
            of a seed against the same R), so its radii are computed once.
    """
    real, fake = _as_features(real_feats, "real"), _as_features(fake_feats, "fake")
    _check_pair(real, fake, k + 2, f"density/coverage with k={k}")  # prdc's radii: the (k+1)-th of n, so n ≥ k + 2
    r32, f32 = real.numpy().astype(np.float32), fake.numpy().astype(np.float32)
    with _prdc_in_process():
        from prdc.prdc import compute_nearest_neighbour_distances, compute_pairwise_distance

        radii_r = compute_nearest_neighbour_distances(r32, k) if real_radii is None else np.asarray(real_radii)
        radii_f = compute_nearest_neighbour_distances(f32, k)
        dist = compute_pairwise_distance(r32, f32)
    # prdc.compute_prdc's four formulas, verbatim (it has no way to take R's radii; the unit test checks
    # that this equals compute_prdc exactly)
    inside = dist < np.expand_dims(radii_r, axis=1)
    return {KEY_PRECISION: float(inside.any(axis=0).mean()),
            KEY_RECALL: float((dist < np.expand_dims(radii_f, axis=0)).any(axis=1).mean()),
            KEY_DENSITY: float((1. / float(k)) * inside.sum(axis=0).mean()),
            KEY_COVERAGE: float((dist.min(axis=1) < radii_r).mean())}


def _prdc_in_process():
    # prdc asks sklearn for 8 worker processes per distance matrix; on a 2-core machine starting them cost
    # 8x the work itself (0.35 s vs 0.044 s for 500 x 500 x 512-d, same result), so run it in-process.
    import joblib

    return joblib.parallel_config(backend="sequential")


def prdc_radii(real_feats: np.ndarray, k: int = PRDC_K) -> np.ndarray:
    """The k-NN radii of a real set as ``features_to_prdc`` computes them (float32 distances)."""
    from prdc.prdc import compute_nearest_neighbour_distances

    with _prdc_in_process():
        return compute_nearest_neighbour_distances(_as_features(real_feats, "real").numpy().astype(np.float32), k)


def _ref_side(ref: np.ndarray, k: int, radii: np.ndarray | None = None) -> dict:
    """What every comparison against ``ref`` shares: its FID statistics and its k-NN radii."""
    from torch_fidelity.metric_fid import fid_features_to_statistics

    return {"stats": fid_features_to_statistics(_as_features(ref, "reference")),
            "radii": prdc_radii(ref, k) if radii is None else radii}


def _fid_low_rank(ref_stats: dict, fake: np.ndarray) -> float:
    """FID against ``ref_stats`` for a set of n ≤ D images, whose covariance Σ_f = S Sᵀ (S = centred rows ᵀ / √(n−1),
    D × n) has rank < n. Tr((Σ_r Σ_f)^½) is the sum of the square roots of the eigenvalues of Σ_r Σ_f, which
    are those of the symmetric n × n matrix Sᵀ Σ_r S: ``eigvalsh`` finds them 3-30x faster than the general
    ``eigvals`` of the D × D product that torch-fidelity uses (95 ms a call at D = 512, half the fidelity
    stage's time), and without the spurious ±1e-16 eigenvalues of the singular product (their square roots
    moved the old FD by ~1e-7 relative at n = 500). Used on the half-samples; full-size sets keep torch-fidelity's path."""
    mu = fake.mean(axis=0)
    centred = fake - mu
    s = centred.T / np.sqrt(len(fake) - 1)
    ev = np.linalg.eigvalsh(s.T @ ref_stats["sigma"] @ s)
    # eigenvalues below the numerical resolution are zeros (centring alone leaves one): their rounding noise
    # (±1e-16·max) would otherwise add its square root (~1e-8·√max) to the trace; numpy's matrix_rank cutoff
    tr_covmean = np.sqrt(ev[ev > ev.max(initial=0.0) * len(ev) * np.finfo(ev.dtype).eps]).sum()
    diff = ref_stats["mu"] - mu
    return float(diff @ diff + np.trace(ref_stats["sigma"]) + (centred * centred).sum() / (len(fake) - 1) - 2 * tr_covmean)


def _pair_metrics(ref: np.ndarray, side: dict, fake: np.ndarray, k: int) -> dict[str, float]:
    """All matched metrics of ``fake`` against ``ref`` (``side`` = ``_ref_side(ref)``, computed once by the caller).

    KID here is the unbiased MMD² of the two whole sets (one subset of the smaller set's size), since
    the half-sampling already provides the spread that KID's random subsets were meant to give.
    """
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, kid_features_to_metric

    r, f = _as_features(ref, "reference"), _as_features(fake, "synthetic")
    if len(f) <= f.shape[1]:
        fid = _fid_low_rank(side["stats"], f.numpy())
    else:
        fid = float(fid_statistics_to_metric(side["stats"], fid_features_to_statistics(f), verbose=False)[KEY_METRIC_FID])
    kid = kid_features_to_metric(f, r, kid_subsets=1, kid_subset_size=min(len(r), len(f)), rng_seed=0, verbose=False)
    return {KEY_FID: fid, KEY_KID_MEAN: float(kid[KEY_METRIC_KID_MEAN]),
            **features_to_prdc(r, f, k=k, real_radii=side["radii"])}


BOUNDED = frozenset({KEY_PRECISION, KEY_RECALL, KEY_COVERAGE})  # shares in [0, 1]


def _recentred(full: float, subs: np.ndarray, confidence: float, bounded: bool = False) -> list[float]:
    q = np.quantile(subs - subs.mean(), [(1 - confidence) / 2, (1 + confidence) / 2])
    lo, hi = float(full + q[0]), float(full + q[1])
    return [max(lo, 0.0), min(hi, 1.0)] if bounded else [lo, hi]


def _ratio(a: float, b: float) -> float | None:
    return float(a / b) if b > 0 else None


def _metric_entry(name: str, syn: float, floor: float, syn_subs, floor_subs, confidence: float) -> dict:
    """One metric: synthetic and floor values with intervals, difference, ratio, and the at-floor call."""
    syn_subs, floor_subs = np.asarray(syn_subs), np.asarray(floor_subs)
    floor_ci = _recentred(floor, floor_subs, confidence, name in BOUNDED)
    entry = {"synthetic": syn, "synthetic_ci": _recentred(syn, syn_subs, confidence, name in BOUNDED), "floor": floor,
             "floor_ci": floor_ci, "difference": syn - floor,
             "difference_ci": _recentred(syn - floor, syn_subs - floor_subs, confidence),
             "lower_is_better": name in LOWER_IS_BETTER, "ratio": None, "ratio_ci": None, "floor_ratio_ci": None,
             "at_floor": bool(floor_ci[0] <= syn <= floor_ci[1]),
             # neutral words: density above 1 or FD below the floor are not simply "better"
             "position": "at floor" if floor_ci[0] <= syn <= floor_ci[1] else
             ("above floor" if syn > floor_ci[1] else "below floor")}
    ratio = None if name in NO_RATIO else _ratio(syn, floor)
    if ratio is not None and np.all(floor_subs > 0):
        entry.update(ratio=ratio, ratio_ci=_recentred(ratio, syn_subs / floor_subs, confidence),
                     floor_ratio_ci=[floor_ci[0] / floor, floor_ci[1] / floor])
    return entry


def _match_size(fake: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of ``n`` rows of ``fake`` (all of them, in order, when it has exactly n)."""
    if len(fake) == n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(len(fake), size=n, replace=False))


def _half_draws(n_ref: int, n: int, n_subsets: int, seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per half-sample the (R, H, S) row indices: one seeded stream, so the floor (R, H) and the synthetic side
    (R, S) draw the same halves whether they are computed together or apart."""
    rng = np.random.default_rng(seed)
    sizes = ((n_ref, n_ref // 2), (n, n // 2), (n, n // 2))
    return [tuple(rng.choice(m, size=c, replace=False) for m, c in sizes) for _ in range(n_subsets)]


def _matched_size(n_ref: int, n_held: int, n_fake: int, k: int) -> int:
    n = min(n_held, n_fake)
    # every half-sample computes k-NN radii (prdc: the (k+1)-th smallest of n distances), so n // 2 ≥ k + 2
    if min(n // 2, n_ref // 2) < k + 2:
        raise ConfigError(f"matched fidelity needs ≥ {2 * (k + 2)} images in H, R and the synthetic set; got "
                          f"|H|={n_held}, |R|={n_ref}, synthetic={n_fake}")
    return n


@dataclass
class MatchedFloor:
    """The half of ``matched_fidelity`` that no synthetic set enters: the floor H vs R at size ``n`` (full and
    on every half-sample) and R's k-NN radii, which the synthetic side reuses. A seed's generators share it
    (the study's ``reference`` stage computes it once); ``matched_fidelity`` recomputes it when its sizes or
    settings differ, so the numbers never depend on where it was computed."""

    n: int  # |S| = |H| after size matching
    n_reference: int
    n_heldout: int  # |H| given (before size matching)
    n_subsets: int
    k: int
    seed: int
    values: dict[str, float]  # metric → floor value at full size
    subs: dict[str, np.ndarray]  # metric → (n_subsets,) floor values on the half-samples
    radii: np.ndarray  # (|R|,) k-NN radii of R
    half_radii: np.ndarray  # (n_subsets, |R| // 2) k-NN radii of each half of R

    def fits(self, n: int, n_reference: int, n_heldout: int, n_subsets: int, k: int, seed: int) -> bool:
        return (self.n, self.n_reference, self.n_heldout, self.n_subsets, self.k, self.seed) == (
            n, n_reference, n_heldout, n_subsets, k, seed)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for an npz (no pickling); ``from_arrays`` inverts it exactly."""
        sizes = [self.n, self.n_reference, self.n_heldout, self.n_subsets, self.k, self.seed]
        return {"sizes": np.array(sizes, np.int64), "values": np.array([self.values[m] for m in MATCHED_METRICS]),
                "subs": np.stack([self.subs[m] for m in MATCHED_METRICS]), "radii": self.radii,
                "half_radii": self.half_radii}

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> MatchedFloor:
        n, n_ref, n_held, n_subsets, k, seed = (int(v) for v in a["sizes"])
        return cls(n, n_ref, n_held, n_subsets, k, seed, values={m: float(v) for m, v in zip(MATCHED_METRICS, a["values"])},
                   subs={m: np.asarray(v) for m, v in zip(MATCHED_METRICS, a["subs"])}, radii=np.asarray(a["radii"]),
                   half_radii=np.asarray(a["half_radii"]))


def matched_floor(reference_feats: np.ndarray, heldout_feats: np.ndarray, n_synthetic: int, *,
                  n_subsets: int = HALF_SAMPLES, k: int = PRDC_K, seed: int = 0) -> MatchedFloor:
    """The floor of ``matched_fidelity`` for a synthetic set of ``n_synthetic`` images (same arguments)."""
    ref, held = (np.asarray(x, dtype=np.float64) for x in (reference_feats, heldout_feats))
    n = _matched_size(len(ref), len(held), n_synthetic, k)
    held = held[_match_size(held, n, seed + 1)]
    side = _ref_side(ref, k)
    values, subs, half_radii = _pair_metrics(ref, side, held, k), {m: [] for m in MATCHED_METRICS}, []
    for r, h, _ in _half_draws(len(ref), n, n_subsets, seed):
        half = _ref_side(ref[r], k)
        half_radii.append(half["radii"])
        for m, v in _pair_metrics(ref[r], half, held[h], k).items():
            subs[m].append(v)
    return MatchedFloor(n, len(ref), len(heldout_feats), n_subsets, k, seed, values,
                        {m: np.asarray(v, dtype=np.float64) for m, v in subs.items()}, side["radii"], np.stack(half_radii))


def matched_fidelity(reference_feats: np.ndarray, heldout_feats: np.ndarray, synthetic_feats: np.ndarray, *,
                     n_subsets: int = HALF_SAMPLES, confidence: float = 0.95, k: int = PRDC_K, seed: int = 0,
                     extractor=None, synthetic_logits: np.ndarray | None = None,
                     heldout_logits: np.ndarray | None = None, floor: MatchedFloor | None = None) -> dict:
    """FD, KID, precision, recall, density, coverage of S vs R beside the floor H vs R, at |S| = |H|.

    Args:
        reference_feats: ``(|R|, D)`` features of R.
        heldout_feats: ``(|H|, D)`` features of H (same extractor; the extractor never trained on H or R).
        synthetic_feats: ``(N, D)`` features of the synthetic set. N > |H|: a seeded random |H| are
            scored; N < |H|: a seeded random N of H are used for the floor instead (sizes stay matched).
        n_subsets: half-samples for the intervals (default 100).
        confidence: interval level (default 0.95).
        k: neighbourhood for precision/recall/density/coverage (default 5).
        seed: seed for size matching and half-sampling.
        extractor: the FeatureExtractor (or its ``describe()`` dict), recorded.
        synthetic_logits, heldout_logits: optional class logits for the (demoted) Inception Score.
        floor: ``matched_floor(reference_feats, heldout_feats, N, ...)`` computed beforehand (once per seed);
            used when its sizes and settings fit, else the floor is computed here.

    Returns:
        JSON-ready dict: sizes, ``metrics`` = {name: {synthetic, synthetic_ci, floor, floor_ci,
        difference, difference_ci, ratio, ratio_ci, floor_ratio_ci, lower_is_better, at_floor}},
        ``inception_score`` (with its cap note) and ``note``. ``at_floor``: the synthetic value lies
        inside the floor's interval. ``ratio`` = synthetic / floor (None for KID, whose floor is ≈ 0).
    """
    if n_subsets < 10:
        raise ConfigError(f"n_subsets must be ≥ 10 for an interval; got {n_subsets}")
    ref, fake = (np.asarray(x, dtype=np.float64) for x in (reference_feats, synthetic_feats))
    n = _matched_size(len(ref), len(heldout_feats), len(fake), k)
    if floor is None or not floor.fits(n, len(ref), len(heldout_feats), n_subsets, k, seed):
        floor = matched_floor(ref, heldout_feats, len(fake), n_subsets=n_subsets, k=k, seed=seed)
    fake_idx, held_idx = _match_size(fake, n, seed), _match_size(heldout_feats, n, seed + 1)
    fake = fake[fake_idx]
    syn = _pair_metrics(ref, _ref_side(ref, k, floor.radii), fake, k)
    syn_subs = {m: [] for m in MATCHED_METRICS}
    for (r, _, s), radii in zip(_half_draws(len(ref), n, n_subsets, seed), floor.half_radii):
        for m, v in _pair_metrics(ref[r], _ref_side(ref[r], k, radii), fake[s], k).items():
            syn_subs[m].append(v)
    notes = [] if n == len(synthetic_feats) == len(heldout_feats) else [
        f"sizes matched at {n}: {len(synthetic_feats)} synthetic and {len(heldout_feats)} held-out images given"]
    out = {**extractor_facts(extractor), "n_synthetic": n, "n_heldout": n, "n_reference": len(ref), "k": k,
           "confidence": confidence, "n_subsets": n_subsets,
           "interval_method": "half-sampling, recentred on the full-size value (R's half shared by S and H)",
           "metrics": {m: _metric_entry(m, syn[m], floor.values[m], syn_subs[m], floor.subs[m], confidence)
                       for m in MATCHED_METRICS},
           "inception_score": _inception_entry(synthetic_logits, fake_idx, heldout_logits, held_idx, seed),
           "note": "; ".join(notes)}
    return out


def _inception_entry(syn_logits, syn_idx, held_logits, held_idx, seed: int) -> dict | None:
    if syn_logits is None:
        return None
    out = {"synthetic": logits_to_inception_score(np.asarray(syn_logits)[syn_idx], seed=seed),
           "cap": int(np.asarray(syn_logits).shape[1]), "note": IS_NOTE}
    if held_logits is not None:
        out["floor"] = logits_to_inception_score(np.asarray(held_logits)[held_idx], seed=seed)
    return out


def _class_rows(names_or_none, labels: dict[str, np.ndarray]) -> list[str]:
    top = int(max(v.max(initial=-1) for v in labels.values()))
    return list(names_or_none) if names_or_none else [str(c) for c in range(top + 1)]


def matched_floor_per_class(reference_feats: np.ndarray, reference_labels: np.ndarray, heldout_feats: np.ndarray,
                            heldout_labels: np.ndarray, synthetic_counts, *,
                            class_names: tuple[str, ...] | list[str] | None = None, **kwargs) -> dict[str, MatchedFloor]:
    """``matched_floor`` within each class, for a synthetic set of ``synthetic_counts[c]`` images of class c;
    a class too small to score is left out (``matched_fidelity_per_class`` then reports it skipped)."""
    y = {"r": np.asarray(reference_labels), "h": np.asarray(heldout_labels)}
    out = {}
    for c, name in enumerate(_class_rows(class_names, y)):
        try:
            out[name] = matched_floor(np.asarray(reference_feats)[y["r"] == c], np.asarray(heldout_feats)[y["h"] == c],
                                      int(synthetic_counts[c]) if c < len(synthetic_counts) else 0, **kwargs)
        except ConfigError:
            continue
    return out


def matched_fidelity_per_class(reference_feats: np.ndarray, reference_labels: np.ndarray, heldout_feats: np.ndarray,
                               heldout_labels: np.ndarray, synthetic_feats: np.ndarray, synthetic_labels: np.ndarray,
                               *, class_names: tuple[str, ...] | list[str] | None = None,
                               floors: dict[str, MatchedFloor] | None = None, **kwargs) -> dict[str, dict]:
    """``matched_fidelity`` within each class: S_c vs R_c beside its own floor H_c vs R_c.

    Args:
        floors: ``matched_floor_per_class(...)`` computed beforehand (used where they fit).

    Returns:
        ``{class_name: result}``; a class too small to score gets ``{"skipped": reason, sizes}``.
        The Inception Score is overall only: logits are refused here.
    """
    if {"synthetic_logits", "heldout_logits"} & set(kwargs):
        raise ConfigError("per-class fidelity takes no logits; the Inception Score is computed overall only")
    y = {k: np.asarray(v) for k, v in (("r", reference_labels), ("h", heldout_labels), ("s", synthetic_labels))}
    if (len(y["r"]), len(y["h"]), len(y["s"])) != (len(reference_feats), len(heldout_feats), len(synthetic_feats)):
        raise DataFormatError("labels must have one entry per feature row (reference, held-out and synthetic)")
    out = {}
    for c, name in enumerate(_class_rows(class_names, y)):
        r, h, s = (np.asarray(f)[y[key] == c] for f, key in ((reference_feats, "r"), (heldout_feats, "h"),
                                                              (synthetic_feats, "s")))
        try:
            out[name] = matched_fidelity(r, h, s, floor=(floors or {}).get(name), **kwargs)
        except ConfigError as e:
            out[name] = {"skipped": str(e), "n_reference": len(r), "n_heldout": len(h), "n_synthetic": len(s)}
    return out
