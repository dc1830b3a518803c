"""All calibrated instruments for one synthetic set in one call (the study wires this in).

Pure function over uint8 NHWC images: features and class probabilities come from two callables
(e.g. ``lambda x: extract_features(extractor, x)`` and ``classifier.predict_proba``), each computed
once per image set and shared by fidelity, faithfulness and memorization. The extractor and the
classifier must never have trained on H or R (train them on E; see ``make_heldout_design``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from synthmed.metrics import faithfulness as FA
from synthmed.metrics import fidelity as FI
from synthmed.metrics import memorization as M

Images = np.ndarray  # (N, H, W, C) uint8


def instrument_report(synthetic: tuple[Images, np.ndarray], heldout: tuple[Images, np.ndarray],
                      reference: tuple[Images, np.ndarray], train_images: Images, class_names: list[str] | tuple[str, ...],
                      *, featurize: Callable[[Images], np.ndarray], predict_proba: Callable[[Images], np.ndarray],
                      alpha: float = M.DEFAULT_ALPHA, n_subsets: int = FI.HALF_SAMPLES, n_boot: int = FA.BOOTSTRAP,
                      per_class: bool = True, seed: int = 0, extractor=None, inception_score: bool = True) -> dict:
    """Fidelity vs the floor, class faithfulness vs the floor, and copies vs the null rate.

    Args:
        synthetic, heldout, reference: ``(images, labels)`` of S, H and R.
        train_images: the k-shot images the generator trained on (the copy detector's reference).
        class_names: the K class names.
        featurize: images → ``(N, D)`` features; predict_proba: images → ``(N, K)`` probabilities.
        alpha: copy detector null rate; n_subsets: fidelity half-samples; n_boot: faithfulness bootstrap.
        per_class: also per-class fidelity with per-class floors.
        seed: for size matching, half-sampling and the bootstrap.
        extractor: recorded with the fidelity and memorization numbers.
        inception_score: also the (demoted) Inception Score on the judge's class probabilities, kept in
            ``fidelity["inception_score"]`` with its note that it is capped at K.

    A held-out set too small for ``alpha`` (the copy detector needs |H| ≥ 2/α − 1) does not fail: the
    smallest usable α is used and ``memorization["alpha_note"]`` says so.

    Returns:
        ``{"fidelity", "fidelity_per_class" (if per_class), "faithfulness", "memorization", "headline"}``;
        ``headline`` holds the few numbers a verdict block shows: FD ratio and its floor-ratio interval,
        how many metrics sit at the floor, the faithfulness verdict, flag rate vs null rate.
    """
    (s_img, s_y), (h_img, h_y), (r_img, r_y) = synthetic, heldout, reference
    feats = {k: np.asarray(featurize(x)) for k, x in (("s", s_img), ("h", h_img), ("r", r_img), ("t", train_images))}
    proba = {"s": np.asarray(predict_proba(s_img)), "h": np.asarray(predict_proba(h_img))}
    logits = {k: np.log(np.clip(p, 1e-12, None)) for k, p in proba.items()} if inception_score else {}
    fidelity = FI.matched_fidelity(feats["r"], feats["h"], feats["s"], n_subsets=n_subsets, seed=seed,
                                   extractor=extractor, synthetic_logits=logits.get("s"), heldout_logits=logits.get("h"))
    faith = FA.class_faithfulness(proba["s"], s_y, proba["h"], h_y, class_names, n_boot=n_boot, seed=seed)
    alpha_used, alpha_note = usable_alpha(alpha, len(h_img))
    detector = M.calibrate_copy_detector(train_images, h_img, train_feats=feats["t"], heldout_feats=feats["h"],
                                         alpha=alpha_used, extractor=extractor)
    memo = detector.evaluate(s_img, s_y, feats["s"], class_names=list(class_names))
    if alpha_note:
        memo["alpha_note"] = alpha_note
    out = {"fidelity": fidelity, "faithfulness": faith, "memorization": memo}
    if per_class:
        out["fidelity_per_class"] = FI.matched_fidelity_per_class(
            feats["r"], r_y, feats["h"], h_y, feats["s"], s_y, class_names=class_names, n_subsets=n_subsets,
            seed=seed, extractor=extractor)
    fd = fidelity["metrics"][FI.KEY_FID]
    out["headline"] = {
        "fd_ratio": fd["ratio"], "fd_floor_ratio_ci": fd["floor_ratio_ci"],
        "metrics_at_floor": sum(m["at_floor"] for m in fidelity["metrics"].values()),
        "metrics_total": len(fidelity["metrics"]), "faithfulness": faith["verdict"],
        "flag_rate": memo["flag_rate"]["rate"], "flag_rate_ci": memo["flag_rate"]["ci"],
        "null_rate": memo["null"]["rate"], "copies_above_null": memo["copies_above_null"],
        "train_copied": memo["train_copied"]["rate"], "n_synthetic": fidelity["n_synthetic"],
        "n_heldout": fidelity["n_heldout"], "n_reference": fidelity["n_reference"], "alpha": alpha_used,
        "faithfulness_bacc": faith["synthetic"]["balanced_accuracy"]["value"],
        "faithfulness_bacc_floor": faith["floor"]["balanced_accuracy"]["value"],
    }
    return out


def usable_alpha(alpha: float, n_heldout: int, n_spaces: int = 2) -> tuple[float, str | None]:
    """``alpha``, or the smallest α ``n_heldout`` held-out images can calibrate (with a note saying so)."""
    # the detector calibrates leave-one-out, on |H| - 1 images per threshold (memorization.calibrate_copy_detector);
    # the margin absorbs float rounding at the bound
    bound = M.min_alpha(n_heldout - 1, n_spaces)
    if alpha >= bound * (1 - 1e-12):
        return alpha, None
    smallest = bound * (1 + 1e-9)
    return smallest, (f"|H| = {n_heldout} is too small to calibrate the copy detector at α = {alpha:g} "
                      f"(needs |H| ≥ {int(np.ceil(n_spaces / alpha))}); used the smallest usable α = {smallest:.4f}")
