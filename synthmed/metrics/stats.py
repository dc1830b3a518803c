"""Statistics over seeds: mean ± CI, paired comparisons, "gap closed", and plain-words sentences.

A condition is run over N seeds (default 5); every summary states n and the method, and
degenerate cases (n = 1, zero variance) say so instead of printing a NaN.

- ``summarize``: mean, sample std (ddof=1) and a 95 % CI: Student t (default) or a percentile
  bootstrap (``scipy.stats.bootstrap``).
- ``paired_comparison``: condition vs baseline on the *same* seeds: mean paired difference, its
  t-interval, and a p-value from the paired t-test (``scipy.stats.ttest_rel``) or the Wilcoxon
  signed-rank test (``scipy.stats.wilcoxon``). Note that with n = 5 the exact two-sided Wilcoxon
  p-value cannot go below 2/2⁵ = 0.0625, so it never reaches 0.05 at five seeds.
- ``gap_closed``: (cond − real) / (all_real − real): 0 = no better than the k-shot baseline,
  1 = as good as training on the full real split.
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
    """Share of the k-shot → full-data gap that a condition closes: (cond − real) / (all_real − real).

    Returns None when ``all_real`` equals ``real`` (|gap| ≤ eps): there is no gap to close, and
    dividing would print an infinity.
    """
    gap = float(all_real) - float(real)
    if abs(gap) <= eps:
        return None
    return (float(cond) - float(real)) / gap


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
