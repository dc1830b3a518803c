"""Statistics over seeds, checked against hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synthmed.errors import ConfigError, DataFormatError
from synthmed.metrics import stats as S

T_975_DF4 = 2.776445  # Student t quantile t_{0.975, 4} from the table


def test_summarize_t_interval_known_numbers():
    s = S.summarize([1, 2, 3, 4, 5])
    # mean 3, std = sqrt(10/4), half-width = t * std / sqrt(5)
    half = T_975_DF4 * math.sqrt(2.5) / math.sqrt(5)
    assert (s["mean"], s["n"], s["method"]) == (3.0, 5, "t")
    assert s["std"] == pytest.approx(math.sqrt(2.5))
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((3 - half, 3 + half), abs=1e-5)


def test_summarize_bootstrap_is_seeded_and_inside_the_data_range():
    a = S.summarize([1, 2, 3, 4, 5], method="bootstrap", seed=1)
    b = S.summarize([1, 2, 3, 4, 5], method="bootstrap", seed=1)
    assert a == b and a["method"] == "bootstrap"
    assert 1 <= a["ci_low"] < 3 < a["ci_high"] <= 5


def test_summarize_degenerate_cases_say_so():
    one = S.summarize([0.7])
    assert one["ci_low"] is None and one["std"] is None and "n=1" in one["note"]
    flat = S.summarize([0.5, 0.5, 0.5])
    assert (flat["ci_low"], flat["ci_high"], flat["std"]) == (0.5, 0.5, 0.0) and "zero variance" in flat["note"]
    with pytest.raises(DataFormatError, match="empty"):
        S.summarize([])
    with pytest.raises(ConfigError, match="'t' or 'bootstrap'"):
        S.summarize([1, 2], method="normal")


def test_paired_t_known_numbers():
    a = [0.80, 0.82, 0.79, 0.85, 0.81]
    b = [0.78, 0.80, 0.78, 0.81, 0.80]
    c = S.paired_comparison(a, b)
    # differences 0.02, 0.02, 0.01, 0.04, 0.01: mean 0.02, sd sqrt(0.0006/4), se = sd/sqrt(5), t = 3.6515
    se = math.sqrt(0.0006 / 4) / math.sqrt(5)
    assert c["mean_diff"] == pytest.approx(0.02)
    assert (c["ci_low"], c["ci_high"]) == pytest.approx((0.02 - T_975_DF4 * se, 0.02 + T_975_DF4 * se), abs=1e-6)
    assert c["p_value"] == pytest.approx(0.021743, abs=1e-5)  # two-sided, t = 3.6515 on 4 df
    assert (c["n"], c["test"]) == (5, "t")


def test_wilcoxon_exact_p_for_five_positive_differences():
    c = S.paired_comparison([1, 2, 3, 4, 5], [0, 0, 0, 0, 0], test="wilcoxon")
    assert c["p_value"] == pytest.approx(2 / 2**5)  # all ranks positive: 1/32 per tail, two-sided


def test_paired_degenerate_cases():
    one = S.paired_comparison([0.7], [0.6])
    assert one["p_value"] is None and one["ci_low"] is None and "n=1" in one["note"]
    same = S.paired_comparison([0.7, 0.8], [0.7, 0.8])
    assert same["p_value"] == 1.0 and (same["ci_low"], same["ci_high"]) == (0.0, 0.0)
    constant = S.paired_comparison([0.7, 0.8, 0.9], [0.6, 0.7, 0.8])
    assert constant["p_value"] is None and constant["ci_low"] == pytest.approx(0.1) and "zero variance" in constant["note"]
    with pytest.raises(DataFormatError, match="one value per seed"):
        S.paired_comparison([1, 2], [1, 2, 3])


def test_gap_closed_and_its_guard():
    assert S.gap_closed(0.75, 0.70, 0.90) == pytest.approx(0.25)
    assert S.gap_closed(0.65, 0.70, 0.90) == pytest.approx(-0.25)
    assert S.gap_closed(0.75, 0.70, 0.70) is None


def test_describe_comparison_sentences():
    a = [0.80, 0.82, 0.79, 0.85, 0.81]
    b = [0.78, 0.80, 0.78, 0.81, 0.80]
    beats = S.describe_comparison("real+synthetic (ddpm)", "real", S.paired_comparison(a, b), "macro-F1")
    assert beats == "real+synthetic (ddpm) beats real by +2.0 macro-F1 points, 95 % CI [0.5, 3.5] (paired t, n=5, p=0.022)"
    flat = S.describe_comparison("real+duplicate", "real", S.paired_comparison([0.7, 0.6, 0.65], [0.66, 0.64, 0.64]),
                                 "accuracy")
    assert flat.startswith("real+duplicate does not beat real: +0.3 accuracy points, 95 % CI [-9.7, 10.4]")
    wil = S.describe_comparison("a", "b", S.paired_comparison([1, 2, 3, 4, 5], [0] * 5, test="wilcoxon"), "FID",
                                points=False)
    assert "does not beat" in wil and "Wilcoxon signed-rank, n=5, p=0.062" in wil  # p floor at n=5
    single = S.describe_comparison("a", "b", S.paired_comparison([0.7], [0.6]), "accuracy")
    assert single.startswith("cannot tell whether a beats b") and "n=1" in single


# -- gap closed for every sign, Holm, minimum detectable effect, verdicts --------------------------------


def test_gap_closed_keeps_the_gain_sign_when_the_ceiling_is_below_real():
    assert S.gap_closed(0.75, 0.70, 0.60) == pytest.approx(0.5)  # a gain stays positive (was −0.5)
    assert S.gap_closed(0.65, 0.70, 0.60) == pytest.approx(-0.5)
    detail = S.gap_closed_detail(0.75, 0.70, 0.60)
    assert detail["gap"] == pytest.approx(-0.1) and "below real" in detail["note"]
    assert S.gap_closed_detail(0.75, 0.70, 0.90)["note"] == ""


def test_holm_bonferroni_known_values():
    out = S.holm_bonferroni([0.01, 0.04, 0.03, 0.005, None])
    # sorted 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 → max so far 0.06
    assert out["adjusted"][:4] == pytest.approx([0.03, 0.06, 0.06, 0.02]) and out["adjusted"][4] is None
    assert out["reject"] == [True, False, False, True, False] and out["m"] == 4
    assert out["level"][3] == pytest.approx(0.05 / 4) and out["level"][0] == pytest.approx(0.05 / 3)
    assert out["level"][1] == pytest.approx(0.05 / 4)  # not rejected: Bonferroni level


def test_minimum_detectable_effect_has_the_stated_power():
    from scipy import stats

    n, sd, alpha = 5, 0.02, 0.05 / 3
    mde = S.minimum_detectable_effect(n, sd, alpha=alpha)
    rng = np.random.default_rng(0)
    d = rng.normal(mde, sd, size=(40_000, n))  # simulate paired differences at the MDE
    t = d.mean(1) / (d.std(1, ddof=1) / np.sqrt(n))
    power = np.mean(np.abs(t) > stats.t.ppf(1 - alpha / 2, n - 1))
    assert power == pytest.approx(0.8, abs=0.01)
    large = S.minimum_detectable_effect(2000, 1.0)  # normal limit: (z_.975 + z_.8) / √n
    assert large == pytest.approx((1.959964 + 0.841621) / np.sqrt(2000), rel=0.01)
    assert S.minimum_detectable_effect(1, 0.1) is None and S.minimum_detectable_effect(5, 0.0) is None


def test_family_verdicts_helps_does_not_help_cannot_tell():
    best = [0.80, 0.82, 0.78, 0.81, 0.79]
    pairs = {"clear": ([b + g for b, g in zip(best, [0.050, 0.055, 0.045, 0.052, 0.048])], best),
             "null": ([b + g for b, g in zip(best, [0.001, -0.002, 0.000, 0.002, -0.001])], best),
             "noisy": ([b + g for b, g in zip(best, [0.08, -0.06, 0.05, -0.04, 0.02])], best)}
    out = S.family_verdicts(pairs)
    assert [out[k]["verdict"] for k in pairs] == ["helps", "does not help", "cannot tell"]
    assert out["clear"]["reject"] and out["clear"]["ci_low"] > 0
    assert out["noisy"]["mde"] > out["clear"]["mde"]  # noisier paired differences ⇒ larger detectable effect
    for v in out.values():  # Holm-consistent intervals: the CI excludes 0 exactly when Holm rejects
        assert (v["ci_low"] > 0 or v["ci_high"] < 0) == v["reject"]
    assert S.gain_verdict(None, None) == "cannot tell"
