"""Memorization: does a generator hand back (near-)copies of its training images?

For every synthetic image we find the nearest and second-nearest real *training* image, in pixel
space (flattened, [0, 1] intensities, L2) and, when features are given, in feature space. An image
is flagged as a copy when either

- the ratio test holds: d(x, NN1) < ⅓ · d(x, NN2) (Gu et al. 2025, "On Memorization in Diffusion
  Models", TMLR): the image sits much closer to one training image than to any other; or
- d(x, NN1) ≤ a calibrated absolute threshold: the ``percentile``-th percentile (default 1 %) of the
  nearest-training-image distances of *held-out real* images. Held-out images are new, real and
  in-distribution by construction, so a synthetic image closer than 99 % of them to the training
  set is closer than a genuinely new image tends to get (so ~1 % of truly new images are flagged by
  design; exact duplicates between the held-out and training sets are left out of the calibration).
  Without held-out images the threshold is 0
  (exact copies only): exact duplicates inside the training set would otherwise defeat the ratio
  test (NN1 = NN2 = 0).

Distances come from ``torch.cdist`` over query chunks (memory ~ chunk × N_train), then the few
closest candidates are re-measured exactly in float64, because cdist's matrix-product shortcut
loses precision near zero, exactly where copies live.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from synthmed.errors import ConfigError, DataFormatError
from synthmed.imaging import make_grid, save_png
from synthmed.utils.runtime import configure_torch_cpu, resolve_device

KEY_COPY_FRACTION = "copy_fraction"
KEY_COPY_COUNT = "copy_count"
KEY_RATIO_COPY_FRACTION = "ratio_copy_fraction"
KEY_THRESHOLD_COPY_FRACTION = "threshold_copy_fraction"
KEY_COPY_FRACTION_PER_CLASS = "copy_fraction_per_class"
KEY_THRESHOLD = "threshold"
KEY_MEDIAN_NN_DISTANCE = "median_nn_distance"
KEY_N_SYNTHETIC = "n_synthetic"
KEY_N_TRAIN = "n_train"

COPY_RATIO = 1 / 3  # Gu et al. 2025: NN1 < NN2 / 3 marks a memorized sample
THRESHOLD_PERCENTILE = 1.0  # 1st percentile of held-out real NN distances (see module docstring)
_CANDIDATES = 8  # neighbours re-measured exactly after the fast cdist pass


# -- distances -----------------------------------------------------------------------------------------


def images_to_pixel_vectors(images: np.ndarray) -> np.ndarray:
    """``(N, H, W, C)`` uint8 → ``(N, H·W·C)`` float32 in [0, 1]."""
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise DataFormatError(f"memorization needs (N, H, W, C) uint8 images; got {images.dtype} {images.shape}")
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def nearest_two(queries: np.ndarray, reference: np.ndarray, *, chunk: int = 512,
                device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Nearest and second-nearest reference row for each query row (L2).

    Args:
        queries: ``(N, D)`` float vectors.
        reference: ``(M, D)`` float vectors, M ≥ 2.
        chunk: queries per ``torch.cdist`` call (memory ~ chunk × M floats).
        device: ``"auto"`` uses CUDA when present.

    Returns:
        ``(distances (N, 2) float64, indices (N, 2) int64)``, nearest first.
    """
    q, r = np.asarray(queries), np.asarray(reference)
    if q.ndim != 2 or r.ndim != 2 or q.shape[1] != r.shape[1]:
        raise DataFormatError(f"queries {q.shape} and reference {r.shape} must be (N, D) and (M, D) with the same D")
    if len(r) < 2:
        raise ConfigError(f"the ratio test needs ≥ 2 training images; got {len(r)}")
    configure_torch_cpu()
    dev = resolve_device(device)
    ref = torch.from_numpy(np.ascontiguousarray(r, dtype=np.float32)).to(dev)  # (M, D)
    ref64 = torch.from_numpy(np.ascontiguousarray(r, dtype=np.float64))
    k = min(_CANDIDATES, len(r))
    dists, idxs = [], []
    for start in range(0, len(q), chunk):
        qc = torch.from_numpy(np.ascontiguousarray(q[start : start + chunk], dtype=np.float32)).to(dev)  # (B, D)
        cand = torch.cdist(qc, ref).topk(k, dim=1, largest=False).indices.cpu()  # (B, k) fast, approximate
        exact = (torch.from_numpy(np.asarray(q[start : start + chunk], dtype=np.float64))[:, None, :]
                 - ref64[cand]).norm(dim=2)  # (B, k) float64, exact
        order = exact.argsort(dim=1)[:, :2]
        dists.append(exact.gather(1, order))
        idxs.append(cand.gather(1, order))
    if not dists:
        return np.zeros((0, 2)), np.zeros((0, 2), dtype=np.int64)
    return torch.cat(dists).numpy(), torch.cat(idxs).numpy().astype(np.int64)


def calibrate_threshold(train_vecs: np.ndarray, heldout_vecs: np.ndarray, *, percentile: float = THRESHOLD_PERCENTILE,
                        **kwargs) -> float:
    """The ``percentile``-th percentile of held-out real images' nearest-training-image distance.

    Args:
        train_vecs: ``(M, D)`` training vectors (pixels or features).
        heldout_vecs: ``(H, D)`` vectors of real images *not* in training (e.g. the validation split).
        percentile: in [0, 100]; default 1.
        **kwargs: ``chunk`` / ``device`` for ``nearest_two``.
    """
    if not 0 <= percentile <= 100:
        raise ConfigError(f"percentile must be in [0, 100]; got {percentile}")
    d = nearest_two(heldout_vecs, train_vecs, **kwargs)[0][:, 0]
    # Held-out images identical to a training image are leaks, not new images: PneumoniaMNIST's
    # official val holds 8 of 524 exact duplicates of train images (measured), which would pin a
    # 1 % threshold to 0. Calibrate on the genuinely new ones.
    d = d[d > 0]
    return float(np.percentile(d, percentile)) if len(d) else 0.0


# -- report ------------------------------------------------------------------------------------------------


@dataclass
class SpaceResult:
    """Per-synthetic-image nearest-neighbour facts in one space (``"pixel"`` or ``"feature"``)."""

    nn_index: np.ndarray  # (N,) index of the nearest training image
    nn_dist: np.ndarray  # (N,) distance to it
    second_dist: np.ndarray  # (N,) distance to the second-nearest
    threshold: float  # absolute threshold used (0 = exact copies only)
    ratio: float = COPY_RATIO

    @property
    def ratio_flag(self) -> np.ndarray:
        return self.nn_dist < self.ratio * self.second_dist

    @property
    def threshold_flag(self) -> np.ndarray:
        return self.nn_dist <= self.threshold

    @property
    def is_copy(self) -> np.ndarray:
        return self.ratio_flag | self.threshold_flag


def _fractions(flags: np.ndarray, labels: np.ndarray, names: list[str]) -> dict[str, float | None]:
    return {n: (float(flags[labels == c].mean()) if (labels == c).any() else None) for c, n in enumerate(names)}


@dataclass
class CopyReport:
    """Copy detection for one synthetic set against its generator's training images."""

    spaces: dict[str, SpaceResult]
    labels: np.ndarray  # (N,) synthetic labels
    class_names: list[str]
    n_train: int
    extractor: dict | None = None
    meta: dict = field(default_factory=dict)

    @property
    def is_copy(self) -> np.ndarray:
        """(N,) bool: flagged as a copy in any space."""
        return np.logical_or.reduce([s.is_copy for s in self.spaces.values()])

    def summary(self) -> dict:
        """JSON-ready numbers: copy rate overall and per class, per space and combined."""
        out = {KEY_N_SYNTHETIC: int(len(self.labels)), KEY_N_TRAIN: self.n_train, "ratio": COPY_RATIO,
               KEY_COPY_FRACTION: float(self.is_copy.mean()) if len(self.labels) else 0.0,
               KEY_COPY_COUNT: int(self.is_copy.sum()),
               KEY_COPY_FRACTION_PER_CLASS: _fractions(self.is_copy, self.labels, self.class_names),
               "extractor": self.extractor, **self.meta}
        for name, s in self.spaces.items():
            out[name] = {
                KEY_COPY_FRACTION: float(s.is_copy.mean()), KEY_COPY_COUNT: int(s.is_copy.sum()),
                KEY_RATIO_COPY_FRACTION: float(s.ratio_flag.mean()),
                KEY_THRESHOLD_COPY_FRACTION: float(s.threshold_flag.mean()),
                KEY_THRESHOLD: s.threshold, KEY_MEDIAN_NN_DISTANCE: float(np.median(s.nn_dist)),
                KEY_COPY_FRACTION_PER_CLASS: _fractions(s.is_copy, self.labels, self.class_names),
            }
        return out

    def closest_pairs(self, space: str = "pixel", top_k: int = 16) -> np.ndarray:
        """``(P, 2)`` int64 (synthetic index, training index), closest first, P ≤ top_k."""
        s = self.spaces[space]
        order = np.argsort(s.nn_dist, kind="stable")[:top_k]
        return np.stack([order, s.nn_index[order]], axis=1).astype(np.int64)


def copy_report(synthetic_images: np.ndarray, synthetic_labels: np.ndarray, train_images: np.ndarray, *,
                synthetic_feats: np.ndarray | None = None, train_feats: np.ndarray | None = None,
                heldout_images: np.ndarray | None = None, heldout_feats: np.ndarray | None = None,
                class_names: tuple[str, ...] | None = None, ratio: float = COPY_RATIO,
                percentile: float = THRESHOLD_PERCENTILE, extractor=None, chunk: int = 512,
                device: str = "auto") -> CopyReport:
    """Flag synthetic images that copy a training image, in pixel and (optionally) feature space.

    Args:
        synthetic_images: ``(N, H, W, C)`` uint8 generated images.
        synthetic_labels: ``(N,)`` their class labels (for per-class copy rates).
        train_images: ``(M, H, W, C)`` uint8, the images the generator was trained on.
        synthetic_feats, train_feats: optional ``(N, D)`` / ``(M, D)`` features (same extractor)
            for the feature-space test.
        heldout_images, heldout_feats: real images not used for training, to calibrate the
            absolute thresholds; without them the threshold is 0 (exact copies only).
        class_names: names for per-class rates (default "0", "1"...).
        ratio: ratio-test factor (default ⅓, Gu et al. 2025).
        percentile: calibration percentile of held-out NN distances (default 1).
        extractor: the feature extractor (or its ``describe()`` dict), recorded in the report.
        chunk, device: passed to ``nearest_two``.
    """
    labels = np.asarray(synthetic_labels, dtype=np.int64)
    if len(labels) != len(synthetic_images):
        raise DataFormatError(f"{len(labels)} labels for {len(synthetic_images)} synthetic images")
    if synthetic_images.shape[1:] != train_images.shape[1:]:
        raise DataFormatError(f"synthetic images {synthetic_images.shape[1:]} and training images "
                              f"{train_images.shape[1:]} differ in (H, W, C); resize one set first")
    if (synthetic_feats is None) != (train_feats is None):
        raise ConfigError("give both synthetic_feats and train_feats (or neither) for the feature-space test")
    if not 0 < ratio < 1:
        raise ConfigError(f"ratio must be in (0, 1); got {ratio}")
    nn_kw = {"chunk": chunk, "device": device}
    vectors = {"pixel": (images_to_pixel_vectors(synthetic_images), images_to_pixel_vectors(train_images),
                         None if heldout_images is None else images_to_pixel_vectors(heldout_images))}
    if synthetic_feats is not None:
        vectors["feature"] = (np.asarray(synthetic_feats), np.asarray(train_feats), heldout_feats)
    spaces = {}
    for name, (fake, train, held) in vectors.items():
        thr = 0.0 if held is None else calibrate_threshold(train, held, percentile=percentile, **nn_kw)
        d, i = nearest_two(fake, train, **nn_kw)
        spaces[name] = SpaceResult(nn_index=i[:, 0], nn_dist=d[:, 0], second_dist=d[:, 1], threshold=thr, ratio=ratio)
    k = int(max(labels.max(initial=-1) + 1, len(class_names or ())))
    names = list(class_names) if class_names else [str(c) for c in range(k)]
    facts = extractor.describe() if hasattr(extractor, "describe") else extractor
    return CopyReport(spaces=spaces, labels=labels, class_names=names, n_train=len(train_images), extractor=facts,
                      meta={"threshold_percentile": percentile if heldout_images is not None else None})


# -- figure --------------------------------------------------------------------------------------------------


def closest_pairs_png(synthetic: np.ndarray, real: np.ndarray, pairs: np.ndarray, path: str | os.PathLike,
                      top_k: int = 16, *, per_row: int = 4, scale: int = 2) -> Path:
    """Save the top-k closest (synthetic, real) pairs as one PNG, each pair side by side.

    Args:
        synthetic: ``(N, H, W, C)`` uint8 synthetic images.
        real: ``(M, H, W, C)`` uint8 training images.
        pairs: ``(P, 2)`` (synthetic index, real index), closest first (``CopyReport.closest_pairs``).
        path: output PNG (written atomically).
        top_k: pairs to draw.
        per_row: pairs per row of the figure.
        scale: nearest-neighbour upscaling so 28 px images stay visible.
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)[:top_k]
    if len(pairs) == 0:
        raise ConfigError("no pairs to draw; pass CopyReport.closest_pairs(...) with top_k ≥ 1")
    tiles = np.stack([img for s, r in pairs for img in (synthetic[s], real[r])])  # (2P, H, W, C): syn, real, ...
    grid = make_grid(tiles, nrow=2 * min(per_row, len(pairs)))
    return save_png(path, grid, scale=scale)


# -- calibrated copy detector (issue 12) -------------------------------------------------------------------
#
# The detector above ORs a fixed ratio test with an absolute pixel-distance threshold; smoothing an
# image shrinks every pixel distance, so smooth but new images crossed that threshold (16 % in a
# simulation) and no null rate was reported. This detector keeps only scale-free scores, the ratio
# r = d(x, NN1) / d(x, NN2) to the k-shot training images, in pixel space and (optionally) feature
# space, and sets each space's threshold on the held-out real set H (new, real images that no model
# saw) so that genuinely new images are flagged at a stated rate α:
#
# - each of the m spaces gets α/m (Bonferroni), so the OR over spaces stays ≤ α;
# - threshold = the j-th smallest H score, j = ⌊(α/m)·(|H| + 1)⌋ (a split-conformal quantile): a new
#   image exchangeable with H falls strictly below it with probability ≤ j/(|H|+1) ≤ α/m;
# - the null rate is measured honestly by leave-one-out: each H image is scored against the
#   threshold calibrated on the other |H| − 1, and the OR over spaces is counted;
# - an image identical to a training image (d(x, NN1) = 0) is always a copy.

DEFAULT_ALPHA = 0.01
MAX_SHIFT = 1  # pixel space compares each image with every training image shifted by up to 1 px (3 × 3 = 9)


def _shifted_stack(images: np.ndarray, max_shift: int) -> np.ndarray:
    """``(S, M, D)`` pixel vectors of every training image translated by (dy, dx) ∈ [−s, s]², edges repeated.

    A copy shifted by a pixel is far from its source in plain L2 (a 1-px shift of a chest X-ray moved
    the ratio score only to ~0.5 while the calibrated threshold sat near 0.66), so the pixel distance to
    a training image is the smallest over these translations.
    """
    s = max_shift
    padded = np.pad(images, ((0, 0), (s, s), (s, s), (0, 0)), mode="edge")
    h, w = images.shape[1:3]
    return np.stack([images_to_pixel_vectors(np.ascontiguousarray(padded[:, s + dy : s + dy + h, s + dx : s + dx + w]))
                     for dy in range(-s, s + 1) for dx in range(-s, s + 1)])


def _nearest_two_shifted(queries: np.ndarray, stack: np.ndarray, chunk: int = 512,
                         device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Like ``nearest_two``, with each training image's distance the minimum over its translations."""
    configure_torch_cpu()
    dev = resolve_device(device)
    s, m, _ = stack.shape
    ref = torch.from_numpy(np.ascontiguousarray(stack.reshape(s * m, -1), dtype=np.float64)).to(dev)
    dists, idxs = [], []
    for start in range(0, len(queries), chunk):
        q = torch.from_numpy(np.ascontiguousarray(queries[start : start + chunk], dtype=np.float64)).to(dev)
        # float64 and the direct difference norm (no matrix-product shortcut): copies sit near 0
        d = torch.cdist(q, ref, compute_mode="donot_use_mm_for_euclid_dist").reshape(len(q), s, m).amin(1)  # (B, M)
        top = d.topk(2, dim=1, largest=False)
        dists.append(top.values.cpu())
        idxs.append(top.indices.cpu())
    if not dists:
        return np.zeros((0, 2)), np.zeros((0, 2), dtype=np.int64)
    return torch.cat(dists).numpy(), torch.cat(idxs).numpy().astype(np.int64)


def _binomial(k: int, n: int, confidence: float) -> dict:
    """Share k/n with its Clopper–Pearson (exact) interval."""
    from scipy.stats import binomtest

    if n == 0:
        return {"rate": None, "ci": None, "count": 0, "n": 0}
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return {"rate": k / n, "ci": [float(ci.low), float(ci.high)], "count": int(k), "n": int(n)}


def min_alpha(n_heldout: int, n_spaces: int = 2) -> float:
    """The smallest α a held-out set of ``n_heldout`` images can calibrate over ``n_spaces`` spaces."""
    return n_spaces / (n_heldout + 1)


def _conformal_rank(alpha_test: float, n: int) -> int:
    return int(np.floor(alpha_test * (n + 1)))


@dataclass
class CalibratedCopyDetector:
    """Ratio-test copy detector calibrated on H; ``evaluate`` scores a synthetic set.

    Build it with ``calibrate_copy_detector``. Arrays (training vectors) are kept for scoring and
    are not part of ``summary()``.
    """

    alpha: float
    thresholds: dict[str, float]  # space → flag when d1/d2 < threshold
    null: dict  # leave-one-out null flag rate on H: {rate, ci, count, n}
    n_train: int
    confidence: float
    train_vectors: dict[str, np.ndarray] = field(repr=False)
    heldout_scores: dict[str, np.ndarray] = field(repr=False)
    nn_kwargs: dict = field(default_factory=dict, repr=False)
    extractor: dict | None = None
    max_shift: int = MAX_SHIFT

    @property
    def alpha_per_space(self) -> float:
        return self.alpha / len(self.thresholds)

    def summary(self) -> dict:
        return {"alpha": self.alpha, "alpha_per_space": self.alpha_per_space, "thresholds": dict(self.thresholds),
                "null": dict(self.null), "n_heldout": int(self.null["n"]), "n_train": self.n_train,
                "score": "d(x, NN1) / d(x, NN2) to the k-shot training images (pixel distance: minimum over "
                         "translations of each training image up to max_shift px)", "max_shift": self.max_shift,
                "extractor": self.extractor,
                "calibration": "split-conformal quantile per space at α/m (Bonferroni); null rate by leave-one-out"}

    def score(self, images: np.ndarray, feats: np.ndarray | None = None) -> dict[str, tuple[np.ndarray, ...]]:
        """Per space ``(ratio (N,), nn1 distance (N,), nn1 index (N,))`` of each image against the training set."""
        vecs = _space_vectors(images, feats, set(self.train_vectors))
        out = {}
        for name, q in vecs.items():
            d, i = _nearest(name, q, self.train_vectors[name], self.nn_kwargs)
            out[name] = (_ratio_score(d), d[:, 0], i[:, 0])
        return out

    def flags(self, images: np.ndarray, feats: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(is_copy (N,) bool, index of the training image it copies (N,))`` (−1 where not flagged)."""
        scores = self.score(images, feats)
        flagged = np.zeros(len(images), bool)
        source = np.full(len(images), -1, np.int64)
        for name, (ratio, d1, idx) in scores.items():
            hit = (ratio < self.thresholds[name]) | (d1 == 0)
            source[hit & ~flagged] = idx[hit & ~flagged]
            flagged |= hit
        return flagged, source

    def evaluate(self, synthetic_images: np.ndarray, synthetic_labels: np.ndarray | None = None,
                 synthetic_feats: np.ndarray | None = None, *, class_names: list[str] | None = None) -> dict:
        """Flag rate of a synthetic set beside the null rate, and the k-shot images that were copied.

        Returns JSON-ready: ``flag_rate`` {rate, ci, count, n}, ``null`` (same, on H), ``excess_over_null``,
        ``p_above_alpha`` (one-sided binomial test of the flag count against α) and ``copies_above_null``
        (that p < 0.05), ``train_copied`` {rate, ci, count, n} = k-shot images with ≥ 1 flagged copy,
        ``flag_rate_per_space``, ``flag_rate_per_class``, plus the calibration (``summary()``).
        """
        from scipy.stats import binomtest

        flagged, source = self.flags(synthetic_images, synthetic_feats)
        n, k = len(flagged), int(flagged.sum())
        p = float(binomtest(k, n, self.alpha, alternative="greater").pvalue) if n else None
        out = {**self.summary(), "flag_rate": _binomial(k, n, self.confidence), "p_above_alpha": p,
               "copies_above_null": bool(p is not None and p < 0.05),
               "excess_over_null": (k / n - self.null["rate"]) if n else None,
               "train_copied": _binomial(len(np.unique(source[flagged])), self.n_train, self.confidence)}
        if synthetic_labels is not None:
            labels = np.asarray(synthetic_labels, dtype=np.int64)
            names = list(class_names) if class_names else [str(c) for c in range(int(labels.max(initial=-1)) + 1)]
            out["flag_rate_per_class"] = _fractions(flagged, labels, names)
        return out


def _space_vectors(images: np.ndarray, feats: np.ndarray | None, spaces: set[str] | None = None) -> dict:
    vecs = {"pixel": images_to_pixel_vectors(images)}
    if feats is not None:
        vecs["feature"] = np.asarray(feats, dtype=np.float32)
    if spaces is not None and set(vecs) != spaces:
        raise ConfigError(f"the detector was calibrated on spaces {sorted(spaces)} but got {sorted(vecs)}; "
                          f"pass features exactly when the detector was calibrated with them")
    return vecs


def _nearest(space: str, queries: np.ndarray, train: np.ndarray, nn_kw: dict) -> tuple[np.ndarray, np.ndarray]:
    if space == "pixel" and train.ndim == 3:  # (S, M, D) shifted stack
        return _nearest_two_shifted(queries, train, **nn_kw)
    return nearest_two(queries, train, **nn_kw)


def _ratio_score(d: np.ndarray) -> np.ndarray:
    """d1/d2 per row; 1 where both are 0 (an image with two identical training copies is scored by d1 = 0)."""
    return np.divide(d[:, 0], d[:, 1], out=np.ones(len(d)), where=d[:, 1] > 0)


def _train_vectors(train_images: np.ndarray, train_feats: np.ndarray | None, max_shift: int) -> dict[str, np.ndarray]:
    vecs = _space_vectors(train_images, train_feats)
    if max_shift > 0:
        vecs["pixel"] = _shifted_stack(np.asarray(train_images), max_shift)
    return vecs


def calibrate_copy_detector(train_images: np.ndarray, heldout_images: np.ndarray, *,
                            train_feats: np.ndarray | None = None, heldout_feats: np.ndarray | None = None,
                            alpha: float = DEFAULT_ALPHA, confidence: float = 0.95, max_shift: int = MAX_SHIFT,
                            extractor=None, chunk: int = 512, device: str = "auto") -> CalibratedCopyDetector:
    """Calibrate the ratio thresholds on H against the k-shot training images (see the section comment).

    Args:
        train_images: ``(M, H, W, C)`` uint8, the k-shot images the generator trained on.
        heldout_images: ``(|H|, H, W, C)`` uint8 held-out real images (no duplicates of training images:
            ``make_heldout_design`` guarantees that).
        train_feats, heldout_feats: optional features (same extractor, never trained on H) for the
            feature-space test; give both or neither.
        alpha: target null flag rate (default 0.01); needs |H| ≥ m/α − 1 for m spaces (``min_alpha``).
        confidence: level of the binomial intervals.
        max_shift: pixel-space translations tolerated, in pixels (default 1; 0 = plain L2).
        extractor: recorded in the summary.
    """
    if (train_feats is None) != (heldout_feats is None):
        raise ConfigError("give both train_feats and heldout_feats (or neither) for the feature-space test")
    if train_images.shape[1:] != heldout_images.shape[1:]:
        raise DataFormatError(f"training images {train_images.shape[1:]} and held-out images "
                              f"{heldout_images.shape[1:]} differ in (H, W, C); use one dataset size")
    train_vecs, held_vecs = _train_vectors(train_images, train_feats, max_shift), _space_vectors(heldout_images, heldout_feats)
    if len(train_images) < 2:
        raise ConfigError(f"the ratio test needs ≥ 2 training images; got {len(train_images)}")
    m, n = len(train_vecs), len(heldout_images)
    if not 0 < alpha < 1 or _conformal_rank(alpha / m, n - 1) < 1:
        raise ConfigError(f"alpha={alpha} cannot be calibrated on {n} held-out images over {m} spaces; "
                          f"use alpha ≥ {min_alpha(n - 1, m):.3g} or a larger held-out set")
    nn_kw = {"chunk": chunk, "device": device}
    thresholds, scores, loo_flags = {}, {}, np.zeros(n, bool)
    for name in train_vecs:
        d, _ = _nearest(name, held_vecs[name], train_vecs[name], nn_kw)
        s = _ratio_score(d)
        ordered = np.sort(s)
        j = _conformal_rank(alpha / m, n)
        thresholds[name], scores[name] = float(ordered[j - 1]), s
        # leave-one-out: without image i, the j'-th smallest of the others (j' from n − 1 images)
        j_loo = _conformal_rank(alpha / m, n - 1)
        rank = np.searchsorted(ordered, s, side="left")  # images strictly below s_i
        loo_threshold = np.where(rank < j_loo, ordered[np.minimum(j_loo, n - 1)], ordered[j_loo - 1])
        loo_flags |= (s < loo_threshold) | (d[:, 0] == 0)
    facts = extractor.describe() if hasattr(extractor, "describe") else extractor
    return CalibratedCopyDetector(alpha=alpha, thresholds=thresholds, null=_binomial(int(loo_flags.sum()), n, confidence),
                                  n_train=len(train_images), confidence=confidence, train_vectors=train_vecs,
                                  heldout_scores=scores, nn_kwargs=nn_kw, extractor=facts, max_shift=max_shift)


def calibrated_copy_report(synthetic_images: np.ndarray, synthetic_labels: np.ndarray | None, train_images: np.ndarray,
                           heldout_images: np.ndarray, *, synthetic_feats: np.ndarray | None = None,
                           train_feats: np.ndarray | None = None, heldout_feats: np.ndarray | None = None,
                           class_names: list[str] | None = None, **kwargs) -> dict:
    """One call: calibrate on H, then ``evaluate`` the synthetic set (kwargs go to ``calibrate_copy_detector``)."""
    det = calibrate_copy_detector(train_images, heldout_images, train_feats=train_feats, heldout_feats=heldout_feats,
                                  **kwargs)
    return det.evaluate(synthetic_images, synthetic_labels, synthetic_feats, class_names=class_names)


def restore_copy_detector(train_images: np.ndarray, train_feats: np.ndarray | None, calibration: dict,
                          heldout_scores: dict[str, np.ndarray], *, chunk: int = 512,
                          device: str = "auto") -> CalibratedCopyDetector:
    """A detector calibrated earlier (``summary()`` and ``heldout_scores`` of ``calibrate_copy_detector`` on the
    same training images and features), rebuilt without re-measuring H: a seed's generators share one
    calibration. Scores the same as the original detector."""
    c = calibration
    if set(c["thresholds"]) != ({"pixel", "feature"} if train_feats is not None else {"pixel"}):
        raise ConfigError(f"the calibration covers spaces {sorted(c['thresholds'])}; pass train_feats exactly when "
                          "the detector was calibrated with them")
    if c["n_train"] != len(train_images):
        raise ConfigError(f"the calibration used {c['n_train']} training images, not {len(train_images)}; "
                          "recalibrate on these training images")
    return CalibratedCopyDetector(
        alpha=c["alpha"], thresholds=dict(c["thresholds"]), null=dict(c["null"]), n_train=c["n_train"],
        confidence=c["confidence"], train_vectors=_train_vectors(train_images, train_feats, c["max_shift"]),
        heldout_scores={k: np.asarray(v) for k, v in heldout_scores.items()}, nn_kwargs={"chunk": chunk, "device": device},
        extractor=c["extractor"], max_shift=c["max_shift"])
