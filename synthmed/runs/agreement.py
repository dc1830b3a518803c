"""Metric–utility agreement (issue 14): does a fidelity figure predict the downstream gain?

Across generators × draws, the Spearman rank correlation between each fidelity figure of a generator's
synthetic set and the gain of that set's usage condition over the best control at the same draw. The
best control, the primary metric and the exclusion of failed generators are the verdict's
(``results.verdict_family``): a user sees whether FID (or precision, faithfulness, ...) would have
picked the useful generator on their data. Pooled over draws, a figure can agree through the draw alone
(a hard k-shot draw lowers every generator's gain and moves every figure), so each figure also gets a
within-draw agreement, the answer to "would this figure have picked the more useful generator?".
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any

import numpy as np

from synthmed.metrics.stats import holm_bonferroni
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
PERMUTATIONS = 2000  # within-draw permutations for p_within (all of them, exactly, when there are no more)
ALPHA = 0.05  # a p below this after Holm over the figures: the figure picks (or runs against) the more useful generator


def _fisher_ci(rho: float, n: int) -> tuple[float, float]:
    """95 % CI of Spearman's rho by Fisher's z with the Bonett–Wright (2000) standard error
    sqrt((1 + rho²/2) / (n - 3)). Hand-written (a few lines): scipy gives Spearman no interval.

    At a perfect ranking (|rho| = 1) Fisher's z is infinite and the interval would shrink to the point
    [1, 1], a certainty that n points cannot give (five points rank perfectly by chance once in 60). There
    the far end is computed half a step of the ranking lattice below 1 (a continuity correction: one
    adjacent swap gives 1 - 12 / (n(n² - 1)), the midpoint is 1 - 6 / (n(n² - 1))), and the near end stays
    at ±1. This keeps the interval in step with the permutation p: at 4 points (exact p 1/12) it spans 0,
    at 5 (exact p 1/60) it does not."""
    if abs(rho) >= 1 - 1e-12:
        lo, hi = _fisher_ci(1 - 6 / (n * (n * n - 1)), n)
        return (lo, 1.0) if rho > 0 else (-1.0, -lo)
    z = np.arctanh(rho)
    half = Z_95 * np.sqrt((1 + rho**2 / 2) / (n - 3))
    return float(np.tanh(z - half)), float(np.tanh(z + half))


def _decision(rho: float, p_holm: float) -> int:
    """+1 / −1: the figure agrees / runs against the gain, at Holm-corrected ``ALPHA``; 0: no clear sign."""
    return int(np.sign(rho)) if p_holm < ALPHA else 0


def _pooled_reading(out: dict) -> str:
    label, n, rho, p, ph = (out[k] for k in ("label", "n", "rho", "p", "p_holm"))
    if rho is None:
        return f"{label}: no rank correlation (n = {n})"
    tests = f"n = {n}; p = {p:.2g}, Holm {ph:.2g}"
    return {1: f"{label} predicts the gain here ({tests})",
            -1: f"{label} runs against the gain here: the better it looks, the smaller the gain ({tests})",
            0: f"{label} does not clearly predict the gain here ({tests})"}[_decision(rho, ph)]


def _reading(out: dict) -> str:
    """One sentence: the within-draw result first when there is one, then the pooled one; each decided on its
    p-value after Holm's correction over the figures (seven figures are seven chances to find agreement)."""
    label, rho, lo, hi, rw, pw = (out[k] for k in ("label", "rho", "ci_low", "ci_high", "rho_within", "p_within"))
    if rw is None:
        text = _pooled_reading(out) + (f": {out['note']}" if out["note"] else "")
        return text + (f"; no within-draw comparison: {out['note_within']}" if out["note_within"] else "")
    within = _decision(rw, out["p_within_holm"])
    verb = {1: "picks the more useful generator", -1: "runs against the gain, picking the less useful generator",
            0: "does not clearly pick the more useful generator"}[within]
    text = (f"within a draw, {label} {verb} (ρ = {rw:+.2f}, p = {pw:.2g}, Holm {out['p_within_holm']:.2g}, "
            f"{out['draws']} draws)")
    if rho is None:
        return text + f"; pooled over draws no rank correlation ({out['note']})"
    pooled = _decision(rho, out["p_holm"])
    text += f"; pooled over draws ρ = {rho:+.2f}, CI [{lo:+.2f}, {hi:+.2f}], Holm p {out['p_holm']:.2g}"
    if not pooled or pooled == within:
        return text
    # the pooled test (Holm) gives a sign but the within-draw test does not agree: a weaker within-draw rho (0.1 is a
    # plain margin, not a test) points at the draws; an as-strong one at a within-draw test with little power
    weaker = np.sign(rw) != pooled or abs(rw) < abs(rho) - 0.1
    return text + (", partly the draws' difficulty" if weaker
                   else ", as strong as within a draw, where few draws leave the test weak")


def _draw_ranks(values: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    """Each value's rank among its draw's generators, minus the draw's mean rank (ties share the average rank;
    a draw whose values are all equal gives zeros). Ranking inside each draw weighs the draws equally: with the
    same generators at every draw and no ties, the Pearson correlation of these is the mean of the per-draw Spearmans."""
    from scipy import stats

    res = np.zeros(len(values))
    for idx in groups:
        if np.ptp(values[idx]) > 0:
            r = stats.rankdata(values[idx])
            res[idx] = r - r.mean()
    return res


def _within_permutations(groups: list[np.ndarray]) -> tuple[np.ndarray, bool]:
    """Rows of source indices, each shuffling the points only within their draw (``groups`` are contiguous and in
    order): all of them when there are at most ``PERMUTATIONS``, else ``PERMUTATIONS`` drawn with a fixed seed."""
    if math.prod(math.factorial(len(g)) for g in groups) <= PERMUTATIONS:
        return np.array([np.concatenate(c) for c in itertools.product(*map(itertools.permutations, groups))]), True
    rng = np.random.default_rng(0)
    return np.concatenate([rng.permuted(np.tile(g, (PERMUTATIONS, 1)), axis=1) for g in groups], axis=1), False


def _rank_permutation_test(ax: np.ndarray, ay: np.ndarray, groups: list[np.ndarray]) -> tuple[float, float]:
    """``(rho, p)``: the correlation of the centred ranks ``ax`` and ``ay`` (``_draw_ranks``) and its two-sided p
    from shuffling ``ax`` within each group (a shuffle of the figure only shuffles its centred ranks)."""
    perms, exact = _within_permutations(groups)
    norm = np.sqrt((ax @ ax) * (ay @ ay))
    null, rho = ax[perms] @ ay / norm, float(ax @ ay / norm)
    hits = int(np.sum(np.abs(null) >= abs(rho) - 1e-12))  # the identity is among exact's rows, not the drawn ones
    return rho, hits / len(perms) if exact else (hits + 1) / (len(perms) + 1)


def _permutation_p(x: list[float], y: list[float]) -> float:
    """Two-sided p of Spearman's rho from permuting the figure among all points (every permutation when there
    are at most ``PERMUTATIONS``, as for the within-draw p): Spearman's rho is the correlation of the centred
    (average) ranks, i.e. the within-draw test with every point in one group. scipy's ``spearmanr`` p comes
    from a t approximation that is poor at the few points a study has: it gives 1e-24 for five perfectly
    ranked points, whose exact p is 2/120."""
    everyone = [np.arange(len(x))]
    return _rank_permutation_test(_draw_ranks(np.asarray(x, float), everyone),
                                  _draw_ranks(np.asarray(y, float), everyone), everyone)[1]


def _within_draw(keys: list[tuple[str, int]], x: list[float], y: list[float], sign: float) -> dict:
    """Rank correlation of the figure and the gain within draws (each ranked among its draw's generators and
    centred), with a two-sided p-value from permuting the figure among the generators of each draw.

    Why: draw difficulty confounds the pooled rho (a hard draw can raise every generator's FD ratio and lower
    every gain); ranking within a draw asks whether the figure picks the more useful generator, and ranking
    (not centring the raw values) weighs every draw equally, so one draw whose generators lie far apart cannot
    carry the figure (on the five-draw default, centring gave FD ratio +0.57, ranking +0.20). Hand-written:
    no maintained library offers a stratified permutation test; scipy.stats.permutation_test with
    ``permutation_type='pairings'`` and one sample per draw permutes each draw on its own, but it needs every
    draw to hold the same number of generators (it sizes all samples by the first), which a generator missing
    one draw's figure breaks. The tests check it against scipy where scipy applies."""

    out: dict[str, Any] = {"rho_within": None, "rho_within_raw": None, "p_within": None, "n_within": 0,
                           "draws": 0, "note_within": None}
    seeds = [s for _, s in keys]
    order = sorted((i for i, s in enumerate(seeds) if seeds.count(s) >= 2), key=lambda i: (seeds[i], keys[i]))
    kept = [seeds[i] for i in order]
    groups = [np.flatnonzero(np.array(kept) == s) for s in dict.fromkeys(kept)]
    out.update(n_within=len(order), draws=len(groups))
    if len(groups) < 2:
        out["note_within"] = f"{len(groups)} draw{'s' * (len(groups) != 1)} with 2 or more generators; need 2"
        return out
    ax = _draw_ranks(np.asarray(x, float)[order], groups)
    ay = _draw_ranks(np.asarray(y, float)[order], groups)
    if not ax.any() or not ay.any():
        what = "figure" if not ax.any() else "gain"
        out["note_within"] = f"the {what} is the same for every generator within each draw"
        return out
    rho, p = _rank_permutation_test(ax, ay, groups)
    out.update(rho_within_raw=rho, rho_within=sign * rho, p_within=p)
    return out


def _one_figure(figure: str, gains: dict[tuple[str, int], float], fid: dict[tuple[str, int, str], float]) -> dict:
    from scipy import stats

    label, better = FIGURES.get(figure, (figure, "higher"))
    sign = -1.0 if better == "lower" else 1.0
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
            rho = float(stats.spearmanr(x, y).statistic)
        lo, hi = _fisher_ci(rho, len(keys))
        lo, hi = (lo, hi) if sign > 0 else (-hi, -lo)
        out.update(rho_raw=rho, rho=sign * rho, ci_low=lo, ci_high=hi, p=_permutation_p(x, y))
    out.update(_within_draw(keys, x, y, sign))
    return out


def _with_holm(figures: list[dict]) -> list[dict]:
    """Each figure's pooled and within-draw p after Holm's correction over the figures that have one
    (``p_holm``, ``p_within_holm``; None where the figure has no test), and its reading decided on them."""
    pooled = holm_bonferroni([f["p"] for f in figures])["adjusted"]
    within = holm_bonferroni([f["p_within"] for f in figures])["adjusted"]
    out = [{**f, "p_holm": ph, "p_within_holm": pw} for f, ph, pw in zip(figures, pooled, within)]
    return [{**f, "reading": _reading(f)} for f in out]


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
    through the draw alone; at a perfect ranking the far end is taken half a ranking step below 1, see
    ``_fisher_ci``); ``p``: its two-sided p-value from permuting the figure among all points (all
    permutations when there are at most ``PERMUTATIONS``, else ``PERMUTATIONS`` with seed 0; scipy's t
    approximation is far too small at a handful of points). Fewer than ``MIN_POINTS`` points,
    or a figure/gain equal at every point: ``rho`` None and a ``note``.

    Within a draw (the question a user asks: would this figure have picked the more useful generator?):
    ``rho_within`` is Spearman's rho between the figure and the gain after each draw's mean over its
    generators is taken off both, oriented as ``rho`` (``rho_within_raw`` unoriented); ``p_within`` its
    two-sided p-value from permuting the figure among the generators of each draw (all permutations when
    there are at most ``PERMUTATIONS``, else ``PERMUTATIONS`` with seed 0); ``n_within`` the points and
    ``draws`` the draws that hold 2 or more generators (the others drop out). Fewer than 2 such draws, or a
    figure/gain the same for every generator within each draw: ``rho_within`` None and a ``note_within``.
    ``p_holm`` and ``p_within_holm``: those p-values after Holm's correction over the figures that have one (a
    table of seven figures is seven chances to find agreement); ``reading`` decides on them and leads with the
    within-draw result when there is one.

    Returns ``{metric, usage, control, excluded, points: [{generator, seed, gain, cut_by_time}], n_cut,
    permutations, figures: [{figure, label, better, n, rho, rho_raw, ci_low, ci_high, p, note, rho_within,
    rho_within_raw, p_within, n_within, draws, note_within, p_holm, p_within_holm, reading}]}``."""
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
            "n_cut": sum(p["cut_by_time"] for p in points), "permutations": PERMUTATIONS,
            "figures": _with_holm([_one_figure(f, gains, fid) for f in figures])}


__all__ = ["FIGURES", "MIN_POINTS", "PERMUTATIONS", "metric_utility_agreement"]
