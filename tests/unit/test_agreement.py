"""Metric–utility agreement from tidy rows: Spearman between each fidelity figure and the gain over the
verdict's best control, oriented so that positive = agrees; too few points, failed generators and
time-capped rows handled as the verdict handles them; the report section renders the table."""

from __future__ import annotations

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
    assert prec["n"] == 12 and prec["rho"] == pytest.approx(1.0) and prec["p"] < 1e-6
    assert rec["rho"] == pytest.approx(-1.0) and "runs against the gain" in rec["reading"]
    assert fd["better"] == "lower" and fd["rho_raw"] == pytest.approx(-1.0) and fd["rho"] == pytest.approx(1.0)
    assert fd["ci_low"] == pytest.approx(1.0) and "predicts the gain here (n = 12; CI above 0)" in fd["reading"]
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


def test_too_few_points_give_none_and_a_note():
    out = metric_utility_agreement(_study(seeds=range(1)))  # 3 generators x 1 draw = 3 points
    f = _fig(out, "precision")
    assert f["n"] == 3 and f["rho"] is None and f["ci_low"] is None and f["p"] is None
    assert "too few points (n = 3; need 4)" in f["note"] and "too few points" in f["reading"]


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
    assert "precision predicts the gain here (n = 8; CI above 0)." in html
    assert "left out, as in the verdict (training failed): c" in html and "1 of 8 points" in html
    assert ">+1.00<" in html  # the oriented rho of fd_ratio / precision
    empty = template_env().get_template("agreement.html.j2").render(agreement=metric_utility_agreement([]))
    assert "nothing to correlate" in empty


def test_the_section_follows_the_fidelity_section_in_the_report():
    src = template_env().loader.get_source(template_env(), "report.html.j2")[0]
    assert src.index('id="fidelity"') < src.index('{% include "agreement.html.j2" %}') < src.index('id="timings"')
