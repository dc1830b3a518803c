"""Metric–utility agreement from tidy rows: Spearman between each fidelity figure and the gain over the
verdict's best control, oriented so that positive = agrees; too few points, failed generators and
time-capped rows handled as the verdict handles them; the within-draw agreement (within-draw ranks, i.e. the mean per-draw Spearman, with a
within-draw permutation p) separates ranking the generators from tracking the draw; the report section
renders the table."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from synthmed.report import template_env
from synthmed.runs import generator_verdicts, metric_utility_agreement

SEEDS = range(4)
CLASSIC = [0.80, 0.82, 0.78, 0.85]  # the best control by mean
REAL = [0.78, 0.80, 0.76, 0.83]
GENS = {"a": 0.01, "b": 0.03, "c": 0.05}  # gain of real+synthetic over real+classic: a < b < c, plus a per-draw step


def _row(gen, cond, seed, metric, value, cut=False):
    return {"dataset": "d", "generator": gen, "condition": cond, "seed": seed, "metric": metric, "value": value,
            "cut_by_time": cut}


def _gain(gen: str, seed: int) -> float:
    return GENS[gen] + 0.001 * seed  # strictly increasing in (generator, seed) order


def _study(health: dict[str, int] | None = None, cut: tuple[str, int] | None = None, seeds=SEEDS):
    rows = []
    for s in seeds:
        rows += [_row("-", "real", s, "roc_auc", REAL[s]), _row("-", "real+classic", s, "roc_auc", CLASSIC[s])]
        for g in GENS:
            rank = _gain(g, s)  # a figure perfectly monotone with the gain
            rows += [_row(g, "real+synthetic", s, "roc_auc", CLASSIC[s] + _gain(g, s), cut == (g, s)),
                     _row(g, "synthetic", s, "roc_auc", REAL[s] - 0.1),
                     _row(g, "fidelity", s, "precision", 10 * rank),          # higher is better, agrees
                     _row(g, "fidelity", s, "recall", -rank),                 # higher is better, disagrees
                     _row(g, "fidelity", s, "fd_ratio", 5 - 10 * rank),       # lower is better, agrees
                     _row(g, "fidelity", s, "copy_rate", 0.01),               # the same everywhere
                     _row(g, "fidelity", s, "health", (health or {}).get(g, 0))]
    return rows


def _fig(out, name):
    return next(f for f in out["figures"] if f["figure"] == name)


def test_monotone_figures_give_plus_and_minus_one_oriented():
    out = metric_utility_agreement(_study())
    assert out["control"] == "real+classic" == generator_verdicts(_study())["control"]
    assert len(out["points"]) == 12 and out["points"][0]["gain"] == pytest.approx(GENS["a"])
    prec, rec, fd = _fig(out, "precision"), _fig(out, "recall"), _fig(out, "fd_ratio")
    assert prec["n"] == 12 and prec["rho"] == pytest.approx(1.0) and prec["p"] == pytest.approx(1 / 2001)  # none of 2,000
    assert rec["rho"] == pytest.approx(-1.0) and "runs against the gain" in rec["reading"]
    assert fd["better"] == "lower" and fd["rho_raw"] == pytest.approx(-1.0) and fd["rho"] == pytest.approx(1.0)
    assert 0.9 < fd["ci_low"] < 0.99 and fd["ci_high"] == 1.0 and fd["rho_within"] == pytest.approx(1.0)
    # three figures have a within-draw test (copy rate is constant): Holm multiplies the smallest p by 3
    assert fd["reading"] == ("within a draw, FD ratio to floor picks the more useful generator (ρ = +1.00, "
                             "p = 0.0015, Holm 0.0046, 4 draws); pooled over draws ρ = +1.00, CI [+0.98, +1.00], "
                             "Holm p 0.0015")
    const = _fig(out, "copy_rate")
    assert const["rho"] is None and "same at every point" in const["note"]
    assert _fig(out, "coverage")["n"] == 0  # no coverage rows: no points, no exception


def test_oriented_ci_matches_fisher_z_on_a_noisy_figure():
    rows = _study()
    noise = [0.3, -0.2, 0.5, 0.1, -0.4, 0.2, 0.0, -0.1, 0.4, -0.3, 0.25, 0.05]
    fd = [r for r in rows if r["metric"] == "fd_ratio"]
    for r, e in zip(fd, noise):
        r["value"] += 10 * e  # ranks now only partly follow the gain
    f = _fig(metric_utility_agreement(rows), "fd_ratio")
    gains = [_gain(r["generator"], r["seed"]) for r in fd]
    rho = stats.spearmanr([r["value"] for r in fd], gains).statistic
    assert f["rho"] == pytest.approx(-rho) and f["ci_low"] < f["rho"] < f["ci_high"]
    assert -1 < f["ci_low"] and f["ci_high"] < 1


def test_five_perfectly_ranked_points_get_the_exact_p_and_an_interval_wider_than_a_point():
    """Known answer: 5 points rank perfectly by chance in 2 of the 120 orders (either direction), so the two-sided
    permutation p is 2/120, scipy's permutation test agrees, and the CI is not the point [1, 1]; a perfect
    negative ranking mirrors it."""
    rows = _study(seeds=[0, 1])
    rows = [r for r in rows if not (r["seed"] == 1 and r["generator"] in ("b", "c"))]  # 3 + 1 generators' points
    rows += [_row("d", c, 1, m, v) for c, m, v in [("real+synthetic", "roc_auc", CLASSIC[1] + 0.2),
                                                    ("fidelity", "precision", 100.0), ("fidelity", "recall", -100.0),
                                                    ("fidelity", "health", 0)]]
    out = metric_utility_agreement(rows)
    prec, rec = _fig(out, "precision"), _fig(out, "recall")
    assert prec["n"] == 5 and prec["rho"] == pytest.approx(1.0) and prec["p"] == pytest.approx(2 / 120)
    x = [r["value"] for r in sorted((r for r in rows if r["metric"] == "precision"),
                                    key=lambda r: (r["generator"], r["seed"]))]
    ref = stats.permutation_test((x,), lambda a: stats.spearmanr(a, sorted(x)).statistic,
                                 permutation_type="pairings", n_resamples=10_000).pvalue
    assert prec["p"] == pytest.approx(ref)
    assert 0 < prec["ci_low"] < 0.5 and prec["ci_high"] == 1.0  # the far end at rho = 0.95, above 0 as p < 0.05
    assert rec["rho"] == pytest.approx(-1.0) and (rec["ci_low"], rec["ci_high"]) == (-1.0, -prec["ci_low"])


def test_too_few_points_give_none_and_a_note():
    out = metric_utility_agreement(_study(seeds=range(1)))  # 3 generators x 1 draw = 3 points
    f = _fig(out, "precision")
    assert f["n"] == 3 and f["rho"] is None and f["ci_low"] is None and f["p"] is None
    assert "too few points (n = 3; need 4)" in f["note"] and "too few points" in f["reading"]
    assert f["rho_within"] is None and f["p_within"] is None and (f["n_within"], f["draws"]) == (3, 1)
    assert f["note_within"] == "1 draw with 2 or more generators; need 2"
    assert "no within-draw comparison" in f["reading"]


def test_one_draw_with_enough_points_still_gives_no_within_draw_rho():
    rows = _draws(lambda g, s: 0.01 * ORDER[g], {"precision": lambda g, s: ORDER[g]}, seeds=[0], gens="abcde")
    f = _fig(metric_utility_agreement(rows), "precision")
    assert f["rho"] == pytest.approx(1.0) and f["rho_within"] is None and f["draws"] == 1
    assert f["reading"].startswith("precision predicts the gain here (n = 5; p = 0.017, Holm 0.017); "
                                   "no within-draw comparison")  # the only figure with a test: Holm leaves it


def test_failed_generator_is_left_out_as_in_the_verdict():
    rows = _study(health={"c": 2})
    out = metric_utility_agreement(rows)
    assert out["excluded"] == generator_verdicts(rows)["excluded"] == ["c"]
    assert {p["generator"] for p in out["points"]} == {"a", "b"} and _fig(out, "precision")["n"] == 8


def test_rows_cut_by_time_stay_in_and_are_counted():
    out = metric_utility_agreement(_study(cut=("b", 2)))
    assert len(out["points"]) == 12 and out["n_cut"] == 1
    assert [p for p in out["points"] if p["cut_by_time"]] == [
        {"generator": "b", "seed": 2, "gain": pytest.approx(_gain("b", 2)), "cut_by_time": True}]


def test_report_section_renders_the_table():
    out = metric_utility_agreement(_study(health={"c": 2}, cut=("a", 0)))
    html = template_env().get_template("agreement.html.j2").render(agreement=out)
    assert 'id="agreement-table"' in html and html.count("<tr data-figure=") == 7
    assert ("within a draw, precision does not clearly pick the more useful generator (ρ = +1.00, p = 0.12, Holm 0.38, "
            "4 draws); pooled over draws ρ = +1.00, CI [+0.90, +1.00], Holm p 0.0015, as strong as within a draw, "
            "where few draws leave the test weak.") in html  # 2 generators x 4 draws: 16 within-draw shuffles, 2 as extreme
    assert "<th>ρ within</th><th>p within</th><th>p within Holm</th>" in html and "2000 permutations" in html
    assert "<th>p</th><th>p Holm</th>" in html and "Holm-corrected over the figures" in html
    assert "left out, as in the verdict (training failed): c" in html and "1 of 8 points" in html
    assert ">+1.00<" in html  # the oriented rho of fd_ratio / precision
    empty = template_env().get_template("agreement.html.j2").render(agreement=metric_utility_agreement([]))
    assert "nothing to correlate" in empty


def test_the_section_follows_the_fidelity_section_in_the_report():
    src = template_env().loader.get_source(template_env(), "report.html.j2")[0]
    assert src.index('id="fidelity"') < src.index('{% include "agreement.html.j2" %}') < src.index('id="timings"')


STEP = {0: 0.0, 1: 0.1, 2: 0.2, 3: 0.3}  # a per-draw shift of every gain (an easier draw), far above the generator gaps
ORDER = {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4}


def _draws(gain, figures, seeds=range(4), gens="abc"):
    """Rows with a 0.8 best control at every draw, ``gain(g, s)`` over it and ``figures[name](g, s)`` fidelity rows."""
    rows = []
    for s in seeds:
        rows += [_row("-", "real", s, "roc_auc", 0.7), _row("-", "real+classic", s, "roc_auc", 0.8)]
        for g in gens:
            rows.append(_row(g, "real+synthetic", s, "roc_auc", 0.8 + gain(g, s)))
            rows += [_row(g, "fidelity", s, name, fn(g, s)) for name, fn in figures.items()]
    return rows


def _draw_gain(g, s):
    return STEP.get(s, 0.1 * s) + 0.02 * ORDER[g]


def test_a_figure_that_only_tracks_the_draw_agrees_pooled_but_not_within_a_draw():
    # between draws the figure moves with the gain; within every draw it ranks the generators backwards
    tracks_draw = {"precision": lambda g, s: 100 * STEP[s] - ORDER[g]}
    f = _fig(metric_utility_agreement(_draws(_draw_gain, tracks_draw)), "precision")
    assert f["rho"] > 0 and f["ci_low"] > 0  # pooled: "predicts the gain"
    assert f["rho_within"] == pytest.approx(-1.0) and (f["n_within"], f["draws"]) == (12, 4)
    assert f["p_within"] == pytest.approx(2 / 6**4)  # exact: 6^4 shuffles, all-ordered and all-reversed as extreme
    assert f["reading"].startswith("within a draw, precision runs against the gain, picking the less useful generator")
    assert f["reading"].endswith("partly the draws' difficulty")


def test_a_figure_ordered_with_the_gain_inside_every_draw_gives_plus_one_within():
    # within every draw ordered with the gain; between draws against it, so the pooled rho is negative
    ordered = {"precision": lambda g, s: ORDER[g] - 100 * STEP.get(s, 0.1 * s),
               "fd_ratio": lambda g, s: 100 * STEP.get(s, 0.1 * s) - ORDER[g]}  # lower is better: the same ranking
    f = _fig(metric_utility_agreement(_draws(_draw_gain, ordered)), "precision")
    assert f["rho"] < 0 and f["rho_within"] == pytest.approx(1.0) and f["p_within"] == pytest.approx(2 / 6**4)
    assert "precision picks the more useful generator (ρ = +1.00, p = 0.0015, Holm 0.0031, 4 draws)" in f["reading"]
    fd = _fig(metric_utility_agreement(_draws(_draw_gain, ordered)), "fd_ratio")
    assert fd["rho_within_raw"] == pytest.approx(-1.0) and fd["rho_within"] == pytest.approx(1.0)
    assert fd["p_within"] == f["p_within"] and fd["rho"] == pytest.approx(f["rho"])
    # 5 draws: 6^5 shuffles > PERMUTATIONS, so seeded random ones; (hits + 1) / (2000 + 1), the same every call
    five = [_fig(metric_utility_agreement(_draws(_draw_gain, ordered, seeds=range(5))), "precision") for _ in range(2)]
    assert five[0]["rho_within"] == pytest.approx(1.0) and five[0]["p_within"] < 0.005
    assert five[0]["p_within"] == five[1]["p_within"] and five[0]["p_within"] * 2001 == pytest.approx(
        round(five[0]["p_within"] * 2001))


def test_within_draw_p_matches_scipy_pairings_per_draw_and_survives_a_missing_point():
    noise = {(g, s): e for (g, s), e in zip([(g, s) for s in range(4) for g in "abc"],
                                            [0.3, -0.2, 0.5, 0.1, -0.4, 0.2, 0.0, -0.1, 0.4, 0.3, 0.25, -0.05])}
    noisy = {"precision": lambda g, s: ORDER[g] / 10 + noise[(g, s)] + STEP[s]}
    rows = _draws(_draw_gain, noisy)
    f = _fig(metric_utility_agreement(rows), "precision")
    x = np.array([[ORDER[g] / 10 + noise[(g, s)] for g in "abc"] for s in range(4)])  # the per-draw shift cancels
    y = np.array([[0.02 * ORDER[g] for g in "abc"] for _ in range(4)])
    xr = np.array([stats.rankdata(row) - 2.0 for row in x])  # ranks inside each draw, centred (3 generators)
    yr = np.array([stats.rankdata(row) - 2.0 for row in y]).ravel()

    def stat(*draws):  # |correlation| of the pooled within-draw ranks; scipy shuffles each draw on its own
        return abs(np.corrcoef(np.concatenate(draws), yr)[0, 1])

    ref = stats.permutation_test(tuple(xr), stat, permutation_type="pairings", alternative="greater",
                                 n_resamples=10**4, vectorized=False)  # >= 6^4: exact
    assert f["rho_within_raw"] == pytest.approx(np.corrcoef(xr.ravel(), yr)[0, 1])
    assert -1 < f["rho_within"] < 1 and f["p_within"] == pytest.approx(ref.pvalue)
    rows = [r for r in rows if not (r["generator"], r["seed"], r["metric"]) == ("c", 3, "precision")]
    g = _fig(metric_utility_agreement(rows), "precision")  # draws of 3, 3, 3 and 2 generators: scipy's pairings can't
    assert (g["n_within"], g["draws"]) == (11, 4) and g["rho_within"] is not None and 0 < g["p_within"] <= 1


def test_a_figure_constant_within_each_draw_gives_no_within_draw_rho():
    f = _fig(metric_utility_agreement(_draws(_draw_gain, {"precision": lambda g, s: STEP[s]})), "precision")
    assert f["rho"] > 0 and f["rho_within"] is None and f["p_within"] is None
    assert f["note_within"] == "the figure is the same for every generator within each draw"
    assert "no within-draw comparison: the figure is the same" in f["reading"]


def test_p_values_are_holm_corrected_over_the_figures_and_the_reading_decides_on_them():
    # within every draw precision is ordered with the gain (exact p = 2/6^4); recall too but for one swap in draw 0
    # (p = 0.014: significant alone); three figures carry no order. Five tests: Holm multiplies recall's p by 4
    noise = [lambda g, s: [1, 0, 2][(ORDER[g] + s) % 3], lambda g, s: [2, 0, 1][(ORDER[g] + s) % 3],
             lambda g, s: [0, 2, 1][(ORDER[g] + 2 * s) % 3]]
    figs = {"precision": lambda g, s: ORDER[g], "recall": lambda g, s: ORDER[g] if s else [0, 2, 1][ORDER[g]],
            **dict(zip(["density", "coverage", "faithfulness_bacc"], noise))}
    out = metric_utility_agreement(_draws(_draw_gain, figs))
    within = {f["figure"]: f["p_within"] for f in out["figures"] if f["p_within"] is not None}
    assert set(within) == set(figs)
    order = sorted(within, key=within.get)  # Holm by hand: (m - i) * p_(i), running maximum, capped at 1
    expect = {name: min(1.0, max((5 - j) * within[order[j]] for j in range(i + 1))) for i, name in enumerate(order)}
    for f in out["figures"]:
        assert f["p_within_holm"] == (None if f["p_within"] is None else pytest.approx(expect[f["figure"]]))
    prec, rec = _fig(out, "precision"), _fig(out, "recall")
    assert prec["p_within_holm"] == pytest.approx(5 * 2 / 6**4) and "picks the more useful generator" in prec["reading"]
    # recall passes alone but not after the correction: the reading must not claim it
    assert rec["p_within"] < 0.05 <= rec["p_within_holm"] == pytest.approx(4 * rec["p_within"])
    assert "does not clearly pick the more useful generator" in rec["reading"]
