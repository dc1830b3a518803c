"""Metric–utility agreement (issue 14): does a fidelity figure predict the downstream gain?

Across generators × draws, the Spearman rank correlation between each fidelity figure of a generator's
synthetic set and the gain of that set's usage condition over the best control at the same draw. The
best control, the primary metric and the exclusion of failed generators are the verdict's
(``results.verdict_family``): a user sees whether FID (or precision, faithfulness, ...) would have
picked the useful generator on their data.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from synthmed.runs.layout import CONTROL, FIDELITY
from synthmed.runs.results import PRIMARY, verdict_family

# figure (a fidelity result row's metric) -> (label, which direction is better)
FIGURES: dict[str, tuple[str, str]] = {
    "fd_ratio": ("FD ratio to floor", "lower"),
    "precision": ("precision", "higher"),
    "recall": ("recall", "higher"),
    "density": ("density", "higher"),
    "coverage": ("coverage", "higher"),
    "faithfulness_bacc": ("class faithfulness", "higher"),
    "copy_rate": ("copy rate", "lower"),
}
MIN_POINTS = 4  # Spearman's rho and its Fisher-z interval need n - 3 >= 1
Z_95 = 1.959963984540054  # the standard normal's 97.5 % quantile


def _fisher_ci(rho: float, n: int) -> tuple[float, float]:
    """95 % CI of Spearman's rho by Fisher's z with the Bonett–Wright (2000) standard error
    sqrt((1 + rho²/2) / (n - 3)). Hand-written (three lines): scipy gives Spearman no interval."""
    z = np.arctanh(np.clip(rho, -1 + 1e-12, 1 - 1e-12))
    half = Z_95 * np.sqrt((1 + rho**2 / 2) / (n - 3))
    return float(np.tanh(z - half)), float(np.tanh(z + half))


def _reading(label: str, n: int, rho: float | None, lo: float | None, hi: float | None) -> str:
    if rho is None:
        return f"{label}: no rank correlation (n = {n})"
    if lo > 0:
        return f"{label} predicts the gain here (n = {n}; CI above 0)"
    if hi < 0:
        return f"{label} runs against the gain here: the better it looks, the smaller the gain (n = {n}; CI below 0)"
    return f"{label} does not predict the gain here (n = {n}; CI includes 0)"


def _one_figure(figure: str, gains: dict[tuple[str, int], float], fid: dict[tuple[str, int, str], float]) -> dict:
    from scipy import stats

    label, better = FIGURES.get(figure, (figure, "higher"))
    keys = sorted(k for k in gains if (*k, figure) in fid)
    x, y = [fid[(*k, figure)] for k in keys], [gains[k] for k in keys]
    out: dict[str, Any] = {"figure": figure, "label": label, "better": better, "n": len(keys), "rho": None,
                           "rho_raw": None, "ci_low": None, "ci_high": None, "p": None, "note": None}
    if len(keys) < MIN_POINTS:
        out["note"] = f"too few points (n = {len(keys)}; need {MIN_POINTS})"
    elif len(set(x)) < 2 or len(set(y)) < 2:
        out["note"] = f"the {'figure' if len(set(x)) < 2 else 'gain'} is the same at every point: no ranking"
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.spearmanr(x, y)
        sign = -1.0 if better == "lower" else 1.0
        rho = float(res.statistic)
        lo, hi = _fisher_ci(rho, len(keys))
        lo, hi = (lo, hi) if sign > 0 else (-hi, -lo)
        out.update(rho_raw=rho, rho=sign * rho, ci_low=lo, ci_high=hi, p=float(res.pvalue))
    out["reading"] = _reading(label, out["n"], out["rho"], out["ci_low"], out["ci_high"]) + (
        f": {out['note']}" if out["note"] else "")
    return out


def metric_utility_agreement(rows: list[dict[str, Any]], metric: str = PRIMARY, usage: str = "real+synthetic",
                             figures: tuple[str, ...] = tuple(FIGURES)) -> dict[str, Any]:
    """Spearman rank correlation between each fidelity figure and the downstream gain, over generators × draws.

    A point is one (generator, draw) that has the figure's fidelity row, a ``metric`` score under
    ``usage`` and the best control's score at the same draw; its gain is the usage score minus the best
    control's score (paired by draw). The best control and the left-out failed generators are the
    verdict's (``verdict_family``: the control with the highest mean; health ``failed`` on any draw
    excludes the generator). Rows cut by a time cap stay in, as in the verdict, and are counted in ``n_cut``.

    ``rho`` is oriented so that positive = the figure agrees with usefulness (a figure where lower is
    better, FD ratio or copy rate, has its raw rho negated; ``rho_raw`` keeps scipy's sign); ``ci_low``,
    ``ci_high``: its 95 % CI by Fisher's z with the Bonett–Wright standard error (deterministic; it treats
    the points as independent, which draws of one generator are not, so it is optimistic when few
    generators dominate the ranking; and pooled over draws, a figure that moves with the draw can agree
    through the draw alone); ``p``: scipy's two-sided p-value. Fewer than ``MIN_POINTS`` points,
    or a figure/gain equal at every point: ``rho`` None and a ``note``.

    Returns ``{metric, usage, control, excluded, points: [{generator, seed, gain, cut_by_time}], n_cut,
    figures: [{figure, label, better, n, rho, rho_raw, ci_low, ci_high, p, note, reading}]}``."""
    fam = verdict_family(rows, metric)
    control, by, failed = fam["control"], fam["by"], fam["failed"]
    ctrl = by.get((CONTROL, control), {}) if control else {}
    gains = {(g, s): v - ctrl[s] for (g, c), vals in by.items() if c == usage and g != CONTROL and g not in failed
             for s, v in vals.items() if s in ctrl}
    fid = {(r["generator"], r["seed"], r["metric"]): r["value"] for r in rows if r["condition"] == FIDELITY}
    cut = {(r["generator"], r["seed"]) for r in rows  # the point's own rows, or its draw's best-control row
           if r.get("cut_by_time") and (r["generator"] != CONTROL or r["condition"] == control)}
    points = [{"generator": g, "seed": s, "gain": gains[(g, s)], "cut_by_time": bool({(g, s), (CONTROL, s)} & cut)}
              for g, s in sorted(gains)]
    return {"metric": metric, "usage": usage, "control": control, "excluded": sorted(failed), "points": points,
            "n_cut": sum(p["cut_by_time"] for p in points),
            "figures": [_one_figure(f, gains, fid) for f in figures]}


__all__ = ["FIGURES", "MIN_POINTS", "metric_utility_agreement"]
