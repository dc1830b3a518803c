"""All calibrated instruments for one synthetic set in one call (the study wires this in).

Pure function over uint8 NHWC images: features and class probabilities come from two callables
(e.g. ``lambda x: extract_features(extractor, x)`` and ``classifier.predict_proba``), each computed
once per image set and shared by fidelity, faithfulness and memorization. The extractor and the
classifier must never have trained on H or R (train them on E; see ``make_heldout_design``).

Half of the work involves no synthetic image: the features of H, R and the k-shot images, the floors
(H vs R at matched size with its half-samples; the classifier on H) and the copy detector's calibration
on H. ``prepare_reference`` computes that half once per seed (the study's ``reference`` stage) and
``instrument_report(..., prepared=...)`` scores each generator against it; without ``prepared`` it
prepares its own, so both paths give the same numbers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthmed.errors import ConfigError
from synthmed.metrics import faithfulness as FA
from synthmed.metrics import fidelity as FI
from synthmed.metrics import memorization as M

Images = np.ndarray  # (N, H, W, C) uint8
PREPARED_ARRAYS, PREPARED_JSON = "reference.npz", "reference.json"


@dataclass
class PreparedReference:
    """The seed-level half of ``instrument_report``: everything that depends on H, R and the k-shot images only."""

    settings: dict  # n_subsets, n_boot, seed, per_class, alpha (as asked), synthetic_counts (the floors' sizes)
    feats: dict[str, np.ndarray]  # "h", "r", "t": features of H, R and the k-shot training images
    heldout_proba: np.ndarray  # (|H|, K) the judge's probabilities on H
    floor: FI.MatchedFloor | None  # None when H/R are too small (matched_fidelity then reports why)
    floors_per_class: dict[str, FI.MatchedFloor]
    faithfulness_floor: dict
    calibration: dict  # the copy detector's (restore_copy_detector)
    heldout_scores: dict[str, np.ndarray]
    alpha_note: str | None

    def check(self, **settings) -> None:
        """Refuse a reference prepared with other instrument settings (its floors would not be comparable)."""
        mine = {k: self.settings[k] for k in settings}
        if mine != settings:
            raise ConfigError(f"the prepared reference was made with {mine}, not {settings}; re-run its reference "
                              "stage with the fidelity stage's metric settings")

    def save(self, folder: Path) -> None:
        """``reference.npz`` (arrays) and ``reference.json`` (the rest): plain files, nothing pickled."""
        from synthmed.utils.io import write_json_atomic, write_npz_atomic

        arrays = {f"feats_{k}": v for k, v in self.feats.items()}
        arrays["heldout_proba"] = self.heldout_proba
        arrays.update({f"scores_{k}": v for k, v in self.heldout_scores.items()})
        floors = {"overall": self.floor, **{f"class_{i}": f for i, f in enumerate(self.floors_per_class.values())}}
        for key, f in floors.items():
            if f is not None:
                arrays.update({f"floor_{key}_{a}": v for a, v in f.to_arrays().items()})
        write_npz_atomic(Path(folder) / PREPARED_ARRAYS, **arrays)
        write_json_atomic(Path(folder) / PREPARED_JSON, {
            "settings": self.settings, "faithfulness_floor": self.faithfulness_floor, "calibration": self.calibration,
            "alpha_note": self.alpha_note, "floors_per_class": list(self.floors_per_class),
            "floors": [k for k, f in floors.items() if f is not None]})

    @classmethod
    def load(cls, folder: Path) -> PreparedReference:
        meta = json.loads((Path(folder) / PREPARED_JSON).read_text())
        with np.load(Path(folder) / PREPARED_ARRAYS, allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}

        def floor(key: str) -> FI.MatchedFloor | None:
            prefix = f"floor_{key}_"
            return FI.MatchedFloor.from_arrays({k[len(prefix):]: v for k, v in a.items() if k.startswith(prefix)}) \
                if key in meta["floors"] else None

        return cls(settings=meta["settings"], feats={k: a[f"feats_{k}"] for k in ("h", "r", "t")},
                   heldout_proba=a["heldout_proba"], floor=floor("overall"),
                   floors_per_class={n: floor(f"class_{i}") for i, n in enumerate(meta["floors_per_class"])},
                   faithfulness_floor=meta["faithfulness_floor"], calibration=meta["calibration"],
                   heldout_scores={k[len("scores_"):]: v for k, v in a.items() if k.startswith("scores_")},
                   alpha_note=meta["alpha_note"])


def prepare_reference(heldout: tuple[Images, np.ndarray], reference: tuple[Images, np.ndarray], train_images: Images,
                      class_names: Sequence[str], synthetic_counts: Sequence[int], *,
                      featurize: Callable[[Images], np.ndarray], predict_proba: Callable[[Images], np.ndarray],
                      alpha: float = M.DEFAULT_ALPHA, n_subsets: int = FI.HALF_SAMPLES, n_boot: int = FA.BOOTSTRAP,
                      per_class: bool = True, seed: int = 0, extractor=None) -> PreparedReference:
    """The seed-level half of ``instrument_report`` (same arguments), for synthetic sets of
    ``synthetic_counts[c]`` images of class c (the floors are size-matched to them)."""
    (h_img, h_y), (r_img, r_y) = heldout, reference
    feats = {k: np.asarray(featurize(x)) for k, x in (("h", h_img), ("r", r_img), ("t", train_images))}
    h_proba = np.asarray(predict_proba(h_img))
    kw = {"n_subsets": n_subsets, "seed": seed}
    try:
        floor = FI.matched_floor(feats["r"], feats["h"], int(np.sum(synthetic_counts)), **kw)
    except ConfigError:
        floor = None  # too small: matched_fidelity says why when the synthetic set is scored
    per = FI.matched_floor_per_class(feats["r"], r_y, feats["h"], h_y, synthetic_counts, class_names=class_names,
                                     **kw) if per_class else {}
    alpha_used, alpha_note = usable_alpha(alpha, len(h_img))
    det = M.calibrate_copy_detector(train_images, h_img, train_feats=feats["t"], heldout_feats=feats["h"],
                                    alpha=alpha_used, extractor=extractor)
    calibration = {"alpha": det.alpha, "thresholds": det.thresholds, "null": det.null, "n_train": det.n_train,
                   "confidence": det.confidence, "max_shift": det.max_shift, "extractor": det.extractor}
    settings = {"n_subsets": n_subsets, "n_boot": n_boot, "seed": seed, "per_class": per_class, "alpha": alpha,
                "synthetic_counts": [int(c) for c in synthetic_counts]}
    return PreparedReference(settings, feats, h_proba, floor, per,
                             FA.faithfulness_floor(h_proba, h_y, class_names, n_boot=n_boot, seed=seed), calibration,
                             det.heldout_scores, alpha_note)


def instrument_report(synthetic: tuple[Images, np.ndarray], heldout: tuple[Images, np.ndarray],
                      reference: tuple[Images, np.ndarray], train_images: Images, class_names: list[str] | tuple[str, ...],
                      *, featurize: Callable[[Images], np.ndarray], predict_proba: Callable[[Images], np.ndarray],
                      alpha: float = M.DEFAULT_ALPHA, n_subsets: int = FI.HALF_SAMPLES, n_boot: int = FA.BOOTSTRAP,
                      per_class: bool = True, seed: int = 0, extractor=None, inception_score: bool = True,
                      prepared: PreparedReference | None = None) -> dict:
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
        prepared: ``prepare_reference(heldout, reference, train_images, ...)`` with the same settings,
            computed once per seed; without it, it is prepared here.

    A held-out set too small for ``alpha`` (the copy detector needs |H| ≥ 2/α − 1) does not fail: the
    smallest usable α is used and ``memorization["alpha_note"]`` says so.

    Returns:
        ``{"fidelity", "fidelity_per_class" (if per_class), "faithfulness", "memorization", "headline"}``;
        ``headline`` holds the few numbers a verdict block shows: FD ratio and its floor-ratio interval,
        how many metrics sit at the floor, the faithfulness verdict, flag rate vs null rate.
    """
    (s_img, s_y), (h_img, h_y), (r_img, r_y) = synthetic, heldout, reference
    settings = {"n_subsets": n_subsets, "n_boot": n_boot, "seed": seed, "per_class": per_class, "alpha": alpha}
    if prepared is None:
        counts = np.bincount(np.asarray(s_y, dtype=np.int64), minlength=len(class_names))
        prepared = prepare_reference(heldout, reference, train_images, class_names, counts, featurize=featurize,
                                     predict_proba=predict_proba, extractor=extractor, **settings)
    prepared.check(**settings)
    feats, s_feats, s_proba = prepared.feats, np.asarray(featurize(s_img)), np.asarray(predict_proba(s_img))
    logits = {k: np.log(np.clip(p, 1e-12, None)) for k, p in (("s", s_proba), ("h", prepared.heldout_proba))} \
        if inception_score else {}
    fidelity = FI.matched_fidelity(feats["r"], feats["h"], s_feats, n_subsets=n_subsets, seed=seed, extractor=extractor,
                                   synthetic_logits=logits.get("s"), heldout_logits=logits.get("h"), floor=prepared.floor)
    faith = FA.class_faithfulness(s_proba, s_y, None, None, class_names, n_boot=n_boot, seed=seed,
                                  floor=prepared.faithfulness_floor)
    detector = M.restore_copy_detector(train_images, feats["t"], prepared.calibration, prepared.heldout_scores)
    memo = detector.evaluate(s_img, s_y, s_feats, class_names=list(class_names))
    if prepared.alpha_note:
        memo["alpha_note"] = prepared.alpha_note
    out = {"fidelity": fidelity, "faithfulness": faith, "memorization": memo}
    if per_class:
        out["fidelity_per_class"] = FI.matched_fidelity_per_class(
            feats["r"], r_y, feats["h"], h_y, s_feats, s_y, class_names=class_names, n_subsets=n_subsets,
            seed=seed, extractor=extractor, floors=prepared.floors_per_class)
    out["headline"] = _headline(fidelity, faith, memo, prepared.calibration["alpha"])
    return out


def _headline(fidelity: dict, faith: dict, memo: dict, alpha_used: float) -> dict:
    fd = fidelity["metrics"][FI.KEY_FID]
    return {
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
