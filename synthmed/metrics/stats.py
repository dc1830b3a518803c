"""Statistics over seeds: mean ± CI, paired comparisons, "gap closed", and plain-words sentences.

A condition is run over N seeds (default 5); every summary states n and the method, and
degenerate cases (n = 1, zero variance) say so instead of printing a NaN.

- ``summarize``: mean, sample std (ddof=1) and a 95 % CI: Student t (default) or a percentile
  bootstrap (``scipy.stats.bootstrap``).
- ``paired_comparison``: condition vs baseline on the *same* seeds: mean paired difference, its
  t-interval, and a p-value from the paired t-test (``scipy.stats.ttest_rel``) or the Wilcoxon
  signed-rank test (``scipy.stats.wilcoxon``). Note that with n = 5 the exact two-sided Wilcoxon
  p-value cannot go below 2/2⁵ = 0.0625, so it never reaches 0.05 at five seeds.
- ``gap_closed``: (cond − real) / |all_real − real|: 0 = no better than the k-shot baseline,
  1 = a gain as large as the gap to training on the full real split; the sign is the gain's sign.
- ``holm_bonferroni``, ``minimum_detectable_effect``, ``gain_verdict``, ``family_verdicts``: the
  corrected verdicts "helps / does not help / cannot tell" over a family of comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from synthmed.errors import ConfigError, DataFormatError

KEY_MEAN, KEY_STD, KEY_N, KEY_METHOD, KEY_NOTE = "mean", "std", "n", "method", "note"
KEY_CI_LOW, KEY_CI_HIGH = "ci_low", "ci_high"
KEY_MEAN_DIFF, KEY_P_VALUE, KEY_TEST, KEY_CONFIDENCE = "mean_diff", "p_value", "test", "confidence"

CONFIDENCE = 0.95  # the usual 95 % interval
ALPHA = 0.05  # significance level used in the plain-words sentence
BOOTSTRAP_RESAMPLES = 10_000  # scipy's default; percentile CIs are stable to ~0.1 pt at this count
TEST_NAMES = {"t": "paired t", "wilcoxon": "Wilcoxon signed-rank"}


def _values(values: Sequence[float], what: str = "values") -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(v) == 0:
        raise DataFormatError(f"{what} is empty; run at least one seed")
    if not np.isfinite(v).all():
        raise DataFormatError(f"{what} contains NaN or Inf: {v.tolist()}")
    return v


def _flat(v: np.ndarray) -> bool:
    """True when all values are equal up to float rounding (0.7 − 0.6 ≠ 0.8 − 0.7 in binary)."""
    return bool(np.ptp(v) <= 1e-12 * max(1.0, float(np.abs(v).max())))


def _t_interval(mean: float, std: float, n: int, confidence: float) -> tuple[float, float]:
    """Student-t interval mean ± t_{(1+c)/2, n−1} · std/√n; a point when std = 0."""
    from scipy import stats

    if std == 0:
        return mean, mean
    lo, hi = stats.t.interval(confidence, df=n - 1, loc=mean, scale=std / math.sqrt(n))
    return float(lo), float(hi)


def summarize(values: Sequence[float], *, method: Literal["t", "bootstrap"] = "t", confidence: float = CONFIDENCE,
              seed: int = 0, n_resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """Mean, std and confidence interval of one metric over seeds.

    Args:
        values: one number per seed.
        method: ``"t"`` (Student t interval, default) or ``"bootstrap"`` (percentile bootstrap of
            the mean; with 5 seeds it is narrower than t and optimistic, so t stays the default).
        confidence: interval level in (0, 1), default 0.95.
        seed: bootstrap seed.
        n_resamples: bootstrap resamples.

    Returns:
        ``{mean, std, n, ci_low, ci_high, method, note}``; for n = 1 std and the CI are None and
        ``note`` says why.
    """
    if method not in ("t", "bootstrap"):
        raise ConfigError(f"method must be 't' or 'bootstrap'; got {method!r}")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1); got {confidence}")
    v = _values(values)
    n, mean = len(v), float(v.mean())
    if n == 1:
        return {KEY_MEAN: mean, KEY_STD: None, KEY_N: 1, KEY_CI_LOW: None, KEY_CI_HIGH: None, KEY_METHOD: "none",
                KEY_NOTE: "n=1: no spread or confidence interval; run more seeds"}
    std = 0.0 if _flat(v) else float(v.std(ddof=1))
    note = "zero variance across seeds: the interval is a point" if std == 0 else ""
    if method == "t" or std == 0:
        lo, hi = _t_interval(mean, std, n, confidence)
    else:
        from scipy import stats

        res = stats.bootstrap((v,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                              method="percentile", random_state=np.random.default_rng(seed))
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return {KEY_MEAN: mean, KEY_STD: std, KEY_N: n, KEY_CI_LOW: lo, KEY_CI_HIGH: hi, KEY_METHOD: method, KEY_NOTE: note}


def paired_comparison(a: Sequence[float], b: Sequence[float], *, test: Literal["t", "wilcoxon"] = "t",
                      confidence: float = CONFIDENCE) -> dict:
    """Compare condition ``a`` with baseline ``b`` over the same seeds (paired by position).

    The CI is always the t-interval of the mean paired difference a − b; ``test`` picks how the
    p-value is computed (paired t-test or Wilcoxon signed-rank, both two-sided).

    Returns:
        ``{mean_diff, ci_low, ci_high, p_value, n, test, confidence, note}``; with n = 1, or when every
        difference is equal (zero variance), p_value (and for n = 1 the CI) is None and ``note``
        says why.
    """
    from scipy import stats

    if test not in TEST_NAMES:
        raise ConfigError(f"test must be one of {sorted(TEST_NAMES)}; got {test!r}")
    va, vb = _values(a, "a"), _values(b, "b")
    if len(va) != len(vb):
        raise DataFormatError(f"paired comparison needs one value per seed in both: got {len(va)} and {len(vb)}")
    d = va - vb
    n, mean = len(d), float(d.mean())
    out = {KEY_MEAN_DIFF: mean, KEY_CI_LOW: None, KEY_CI_HIGH: None, KEY_P_VALUE: None, KEY_N: n, KEY_TEST: test,
           KEY_CONFIDENCE: confidence, KEY_NOTE: ""}
    if n == 1:
        out[KEY_NOTE] = "n=1: no confidence interval or p-value; run more seeds"
        return out
    std = 0.0 if _flat(d) else float(d.std(ddof=1))
    out[KEY_CI_LOW], out[KEY_CI_HIGH] = _t_interval(mean, std, n, confidence)
    if std == 0:
        same = abs(mean) <= 1e-12
        out[KEY_NOTE] = ("identical results on every seed" if same else
                         "the difference is the same on every seed (zero variance): no p-value")
        out[KEY_P_VALUE] = 1.0 if same else None
        return out
    if test == "t":
        out[KEY_P_VALUE] = float(stats.ttest_rel(va, vb).pvalue)
    else:
        out[KEY_P_VALUE] = float(stats.wilcoxon(va, vb).pvalue)
    return out


def gap_closed(cond: float, real: float, all_real: float, *, eps: float = 1e-12) -> float | None:
    """Share of the k-shot → full-data gap that a condition closes: (cond − real) / |all_real − real|.

    Defined for every sign: the numerator's sign always says whether the condition beats the k-shot
    baseline (> 0) or not (< 0), and 1 means a gain as large as the gap. When the all-real ceiling
    scores *below* the baseline (an under-trained ceiling), the old (cond − real)/(all_real − real)
    flipped sign, so a gain read as a loss; here it stays a gain, in units of |gap| (see
    ``gap_closed_detail`` for the note saying the ceiling is broken). None when |gap| ≤ eps.
    """
    gap = float(all_real) - float(real)
    if abs(gap) <= eps:
        return None
    return (float(cond) - float(real)) / abs(gap)


def gap_closed_detail(cond: float, real: float, all_real: float, *, eps: float = 1e-12) -> dict:
    """``{"value", "gap", "note"}``: ``gap_closed`` plus the gap and a note when it cannot be read as a share."""
    gap = float(all_real) - float(real)
    value = gap_closed(cond, real, all_real, eps=eps)
    note = ("no gap: all-real scores the same as real" if value is None else
            "the all-real ceiling scores below real (under-trained ceiling): value is the gain in units of |gap|"
            if gap < 0 else "")
    return {"value": value, "gap": gap, "note": note}


# -- multiple comparisons, power, verdicts (issue 12) ------------------------------------------------------

POWER = 0.8
MIN_USEFUL_GAIN = 0.01  # one point of ROC-AUC/macro-F1: a corrected CI entirely below it "does not help"
VERDICT_HELPS, VERDICT_NO, VERDICT_UNSURE = "helps", "does not help", "cannot tell"


def holm_bonferroni(p_values: Sequence[float | None], *, alpha: float = ALPHA) -> dict:
    """Holm's step-down correction over a family of p-values (None = no test; left out of the family).

    Hand-written (10 lines) rather than adding statsmodels for ``multipletests(method="holm")``.
    Sorted p_(1) ≤ … ≤ p_(m) are tested at α/m, α/(m−1), …, α; testing stops at the first failure.

    Returns:
        ``{"adjusted": [...], "reject": [...], "level": [...], "m": m, "alpha": α}`` in input order:
        Holm-adjusted p-values (max over i ≤ rank of (m − i + 1)·p_(i), capped at 1), the decision,
        and the significance level each hypothesis is judged at for its confidence interval: its Holm
        step level α/(m − rank + 1) when rejected, else the Bonferroni level α/m (so an interval from
        the same t-test excludes 0 exactly when Holm rejects).
    """
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1); got {alpha}")
    present = [i for i, p in enumerate(p_values) if p is not None]
    m = len(present)
    adjusted, reject, level = [None] * len(p_values), [False] * len(p_values), [None] * len(p_values)
    running = 0.0
    for rank, i in enumerate(sorted(present, key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        adjusted[i] = running
        reject[i] = running < alpha
        level[i] = alpha / (m - rank) if reject[i] else alpha / m
    return {"adjusted": adjusted, "reject": reject, "level": level, "m": m, "alpha": alpha}


def minimum_detectable_effect(n: int, sd_diff: float | None, *, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """Smallest mean paired difference a two-sided paired t-test at ``alpha`` detects with ``power``.

    Solves power(δ) = P(|T| > t_{1−α/2, n−1}) = ``power`` with T ~ noncentral t(n − 1, δ√n / sd) for δ
    (scipy's ``nct``). None when n < 2 or the SD is unknown/zero (nothing to scale by).
    """
    from scipy import optimize, stats

    if n < 2 or sd_diff is None or not sd_diff > 0:
        return None
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ConfigError(f"alpha and power must be in (0, 1); got {alpha}, {power}")
    crit = stats.t.ppf(1 - alpha / 2, n - 1)

    def gap(d: float) -> float:  # d = effect in SD units
        ncp = d * math.sqrt(n)
        achieved = stats.nct.sf(crit, n - 1, ncp) + stats.nct.cdf(-crit, n - 1, ncp)
        return (1.0 if math.isnan(achieved) else achieved) - power  # nct's sf is NaN far in the tail (power → 1)

    hi = 1.0
    while gap(hi) < 0 and hi < 1e6:  # bracket the root: power rises with the effect
        hi *= 2
    return float(optimize.brentq(gap, 1e-9, hi) * sd_diff)


def gain_verdict(ci_low: float | None, ci_high: float | None, *, min_useful_gain: float = MIN_USEFUL_GAIN) -> str:
    """helps: the corrected CI of the gain lies above 0; does not help: it lies below ``min_useful_gain``
    (a useful gain is ruled out); cannot tell: otherwise, or no interval."""
    if ci_low is None or ci_high is None:
        return VERDICT_UNSURE
    if ci_low > 0:
        return VERDICT_HELPS
    if ci_high < min_useful_gain:
        return VERDICT_NO
    return VERDICT_UNSURE


def family_verdicts(pairs: dict[str, tuple[Sequence[float], Sequence[float]]], *, alpha: float = ALPHA,
                    power: float = POWER, min_useful_gain: float = MIN_USEFUL_GAIN) -> dict[str, dict]:
    """One verdict per hypothesis of a family, Holm-corrected.

    Args:
        pairs: ``{name: (condition values, best-control values)}``, paired by position (seed/draw).
        alpha: family-wise error rate (default 0.05).
        power: for the minimum detectable effect (default 0.8).
        min_useful_gain: the gain below which "does not help" can be concluded.

    Returns:
        ``{name: {gain, ci_low, ci_high, confidence, p_value, p_holm, reject, n, sd_diff, mde, verdict}}``:
        the CI is the paired t-interval at the Holm-consistent level (``holm_bonferroni``); ``mde`` is
        the minimum detectable effect at the Bonferroni level α/m, n and the observed SD of paired
        differences; ``verdict`` is ``gain_verdict`` of that CI.
    """
    comps = {name: paired_comparison(a, b) for name, (a, b) in pairs.items()}
    holm = holm_bonferroni([c[KEY_P_VALUE] for c in comps.values()], alpha=alpha)
    m = max(holm["m"], 1)
    out = {}
    for j, (name, c) in enumerate(comps.items()):
        a, b = (np.asarray(x, dtype=np.float64) for x in pairs[name])
        n, d = c[KEY_N], a - b
        sd = float(d.std(ddof=1)) if n > 1 else None
        level = holm["level"][j] if holm["level"][j] is not None else alpha / m
        lo = hi = None
        if n > 1:
            lo, hi = _t_interval(c[KEY_MEAN_DIFF], 0.0 if _flat(d) else sd, n, 1 - level)
        out[name] = {"gain": c[KEY_MEAN_DIFF], KEY_CI_LOW: lo, KEY_CI_HIGH: hi, KEY_CONFIDENCE: 1 - level,
                     KEY_P_VALUE: c[KEY_P_VALUE], "p_holm": holm["adjusted"][j], "reject": holm["reject"][j],
                     KEY_N: n, "sd_diff": sd, "mde": minimum_detectable_effect(n, sd, alpha=alpha / m, power=power),
                     "verdict": gain_verdict(lo, hi, min_useful_gain=min_useful_gain), KEY_NOTE: c[KEY_NOTE]}
    return out


def _fmt(x: float, scale: float, signed: bool = False) -> str:
    return f"{x * scale:+.1f}" if signed else f"{x * scale:.1f}"


def describe_comparison(name_a: str, name_b: str, comparison: dict, metric: str, points: bool = True,
                        *, alpha: float = ALPHA) -> str:
    """One sentence a reader can quote, e.g.

    "real+synthetic (ddpm) beats real by +3.1 macro-F1 points, 95 % CI [1.2, 5.0] (paired t, n=5, p=0.01)".

    ``a`` "beats" ``b`` when the whole CI lies above 0 and the p-value (when there is one) is
    below ``alpha``; otherwise it "does not beat" it, and the numbers still show the direction.

    Args:
        name_a, name_b: condition names (a = the condition, b = the baseline).
        comparison: a ``paired_comparison`` result.
        metric: metric name for the sentence, e.g. "macro-F1".
        points: values are fractions in [0, 1]; show them ×100 as "points".
    """
    scale, unit = (100.0, f"{metric} points") if points else (1.0, metric)
    n, p = comparison[KEY_N], comparison[KEY_P_VALUE]
    lo, hi, diff = comparison[KEY_CI_LOW], comparison[KEY_CI_HIGH], comparison[KEY_MEAN_DIFF]
    test = TEST_NAMES.get(comparison[KEY_TEST], comparison[KEY_TEST])
    if lo is None:
        return (f"cannot tell whether {name_a} beats {name_b}: difference {_fmt(diff, scale, True)} {unit} "
                f"from n={n} ({comparison.get(KEY_NOTE) or 'no confidence interval'})")
    beats = lo > 0 and (p is None or p < alpha)
    level = f"{100 * comparison.get(KEY_CONFIDENCE, CONFIDENCE):g}"
    p_txt = "" if p is None else (", p<0.001" if p < 0.001 else f", p={p:.2g}")
    head = f"{name_a} beats {name_b} by" if beats else f"{name_a} does not beat {name_b}:"
    return (f"{head} {_fmt(diff, scale, True)} {unit}, {level} % CI [{_fmt(lo, scale)}, {_fmt(hi, scale)}] "
            f"({test}, n={n}{p_txt})")
