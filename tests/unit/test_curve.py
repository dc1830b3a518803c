"""The utility curve from tidy rows: at each ratio the gain of real+synthetic over the best control at that
ratio (count-matched real+duplicate@r or a fixed control), paired by draw, Holm over the curve; failed
generators left out; the study expands a count-matched control per ratio; the report section renders."""

from __future__ import annotations

import pytest

from synthmed.conditions import parse_sweep_label, sweep_label
from synthmed.report import figures, template_env
from synthmed.runs import utility_curve
from synthmed.study import load_study_config
from synthmed.study.expand import expand_study

SEEDS = range(5)
REAL = [0.70, 0.74, 0.68, 0.77, 0.72]
NOISE = [0.001, -0.002, 0.0015, -0.001, 0.0005]  # per draw: keeps the paired differences from being flat


def _row(gen, cond, seed, value, metric="roc_auc"):
    return {"dataset": "d", "generator": gen, "condition": cond, "seed": seed, "metric": metric, "value": value,
            "cut_by_time": False}


def _study(matched: bool = True, bad_health: bool = False):
    """real; real+classic = real + 0.01; real+duplicate@1x = real + 0.02; real+duplicate@5x = real + 0.005.
    Generator g: real+synthetic@1x = dup@1x + 0.05 (helps); @5x = real+classic - 0.03 (worse)."""
    rows = []
    for s in SEEDS:
        r = REAL[s]
        rows += [_row("-", "real", s, r), _row("-", "real+classic", s, r + 0.01),
                 _row("-", "real+duplicate", s, r + 0.03)]  # the study's own amount: not a control at any ratio
        if matched:
            rows += [_row("-", "real+duplicate@1x", s, r + 0.02), _row("-", "real+duplicate@5x", s, r + 0.005)]
        rows += [_row("g", "real+synthetic@1x", s, r + 0.07 + NOISE[s]), _row("g", "real+synthetic@5x", s, r - 0.02 + NOISE[s]),
                 _row("g", "real+synthetic", s, r + 0.01), _row("g", "fidelity", s, 0, "health")]
        rows += [_row("bad", "real+synthetic@1x", s, r + 0.2), _row("bad", "fidelity", s, 2 if bad_health else 0, "health")]
    return rows


def _point(out, gen, ratio):
    return next(p for p in out["points"] if p["generator"] == gen and p["ratio"] == ratio)


def test_sweep_labels_round_trip():
    assert sweep_label("real+synthetic", 0.25) == "real+synthetic@0.25x"
    assert parse_sweep_label("real+duplicate@10x") == ("real+duplicate", 10.0)
    assert parse_sweep_label("real+synthetic") is None and parse_sweep_label("cgan@0") is None


def test_gain_is_over_the_best_control_at_each_ratio():
    out = utility_curve(_study(bad_health=True))
    assert out["ratios"] == [1.0, 5.0] and out["generators"] == ["g"] and out["excluded"] == ["bad"]
    one, five = _point(out, "g", 1.0), _point(out, "g", 5.0)
    assert one["control"] == "real+duplicate@1x" and one["matched"]  # the count-matched control beats real+classic
    assert one["gain"] == pytest.approx(0.05, abs=1e-9) and one["verdict"] == "helps" and one["n"] == 5
    assert five["control"] == "real+classic" and not five["matched"]  # dup@5x is below real+classic
    assert five["gain"] == pytest.approx(-0.03, abs=1e-9) and five["ci_high"] < 0
    assert out["m"] == 2 and one["p_holm"] >= one["p_value"]  # Holm over the curve's two points
    dup = {d["control"]: d for d in out["duplicate"]}
    assert dup["real+duplicate@1x"]["gain"] == pytest.approx(0.02) and dup["real+duplicate@1x"]["against"] == "real"


def test_failed_generators_are_left_out_and_healthy_ones_kept():
    kept = utility_curve(_study(bad_health=False))
    assert kept["generators"] == ["bad", "g"] and kept["m"] == 3
    assert "excluded" not in kept["note"]
    assert "excluded (training failed): bad" in utility_curve(_study(bad_health=True))["note"]


def test_without_matched_controls_the_curve_says_so():
    out = utility_curve(_study(matched=False))
    assert all(p["control"] == "real+classic" and not p["matched"] for p in out["points"])
    assert "no count-matched control at ratio(s) 1, 5: add real+duplicate" in out["note"]
    none = utility_curve([r for r in _study() if "@" not in r["condition"]])
    assert none["points"] == [] and none["note"] == "no ratio sweep in this run"


def test_study_expands_a_count_matched_duplicate_per_ratio():
    cfg = load_study_config({"seeds": [0], "synthetic": {"ratios": [0.5, 2]}}, profile="smoke")
    stages = [s for s in expand_study(cfg) if s.kind == "classify"]
    dup = {s.labels["condition"]: s for s in stages if s.config["condition"] == "real+duplicate"}
    assert set(dup) == {"real+duplicate", "real+duplicate@0.5x", "real+duplicate@2x"}
    assert dup["real+duplicate@2x"].config["options"] == {"extra_total": None, "extra_ratio": 2.0}
    assert dup["real+duplicate@2x"].labels["generator"] == "-"  # a control: once per draw, not per generator
    assert len({s.key for s in dup.values()}) == 3
    swept = {s.labels["condition"] for s in stages if s.config["condition"] == "real+synthetic"}
    assert {"real+synthetic@0.5x", "real+synthetic@2x"} <= swept
    no_dup = load_study_config({"seeds": [0], "synthetic": {"ratios": [2]}, "conditions": ["real", "real+synthetic"]},
                               profile="smoke")
    assert not any("duplicate" in s.labels.get("condition", "") for s in expand_study(no_dup))


def test_report_section_and_figure_render():
    out = utility_curve(_study(bad_health=True))
    html = template_env().get_template("curve.html.j2").render(curve=out, curve_png=None)
    assert 'id="curve-table"' in html and html.count("<tr data-generator=") == 2
    assert "real+duplicate@1x" in html and "(not count-matched)" in html and "+0.050" in html
    assert "real+duplicate@1x +0.020" in html
    png = figures.utility_curve(out)
    assert png is not None and png[:8] == b"\x89PNG\r\n\x1a\n"
    assert figures.utility_curve(utility_curve([])) is None
    src = template_env().loader.get_source(template_env(), "report.html.j2")[0]
    assert src.index('{% include "agreement.html.j2" %}') < src.index('"curve.html.j2"') < src.index('id="timings"')


def test_bench_curve_prints_the_same_points_as_markdown():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "bench" / "bench_curve.py"
    spec = importlib.util.spec_from_file_location("bench_curve", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    md = bench.markdown(utility_curve(_study(bad_health=True)))
    assert "| g | 1 | real+duplicate@1x | 5 | +0.050 |" in md and "| g | 5 | real+classic (not count-matched) |" in md
    assert "| real+duplicate@1x | +0.020 |" in md and md.startswith("Holm–Bonferroni over the 2 point(s)")
