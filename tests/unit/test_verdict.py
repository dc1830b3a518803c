"""The study's verdict from tidy rows: best control, Holm over the generator family, failed generators
excluded, time-capped rows marked; the report's verdict block says when it cannot answer."""

from __future__ import annotations

import numpy as np
import pytest

from synthmed.metrics.instruments import usable_alpha
from synthmed.metrics.memorization import min_alpha
from synthmed.metrics.stats import family_verdicts
from synthmed.report.verdict import verdict_block
from synthmed.runs import collect_results, generator_verdicts

SEEDS = range(5)


def _rows(values: dict[tuple[str, str], list[float]], metric="roc_auc", health: dict[str, int] | None = None):
    rows = [{"dataset": "d", "generator": g, "condition": c, "seed": s, "metric": metric, "value": v}
            for (g, c), vals in values.items() for s, v in zip(SEEDS, vals)]
    rows += [{"dataset": "d", "generator": g, "condition": "fidelity", "seed": 0, "metric": "health", "value": h}
             for g, h in (health or {}).items()]
    return rows


REAL = [0.80, 0.82, 0.78, 0.85, 0.81]
CLASSIC = [0.83, 0.84, 0.80, 0.86, 0.84]  # the best control by mean
DUP = [0.81, 0.82, 0.79, 0.85, 0.82]
GOOD = [c + d for c, d in zip(CLASSIC, [0.05, 0.06, 0.055, 0.05, 0.06])]
FLAT = [c + d for c, d in zip(CLASSIC, [0.01, -0.02, 0.015, -0.01, 0.0])]


def _study(health=None):
    return _rows({("-", "real"): REAL, ("-", "real+classic"): CLASSIC, ("-", "real+duplicate"): DUP,
                  ("good", "real+synthetic"): GOOD, ("good", "synthetic"): REAL,
                  ("flat", "real+synthetic"): FLAT, ("flat", "synthetic"): REAL}, health=health)


def test_verdict_uses_the_best_control_and_holm_over_the_whole_family():
    out = generator_verdicts(_study())
    assert out["control"] == "real+classic" and out["m"] == 4 and out["n_draws"] == 5
    good = out["generators"]["good"]
    assert good["condition"] == "real+synthetic" and good["verdict"] == "helps"
    assert good["gain"] == pytest.approx(np.mean(GOOD) - np.mean(CLASSIC))
    # the same numbers as family_verdicts over the same four pairs (Holm, paired by draw)
    fam = family_verdicts({"real+synthetic (flat)": (FLAT, CLASSIC), "synthetic (flat)": (REAL, CLASSIC),
                           "real+synthetic (good)": (GOOD, CLASSIC), "synthetic (good)": (REAL, CLASSIC)})
    assert good["p_holm"] == pytest.approx(fam["real+synthetic (good)"]["p_holm"])
    assert out["generators"]["flat"]["verdict"] in ("cannot tell", "does not help")
    assert out["generators"]["flat"]["mde"] > 0


def test_failed_generator_is_kept_out_of_the_family_and_named():
    out = generator_verdicts(_study(health={"good": 2, "flat": 0}))
    assert out["m"] == 2 and out["excluded"] == ["good"] and "excluded (training failed): good" in out["note"]
    assert out["generators"]["good"]["verdict"] == "excluded" and out["generators"]["good"]["failed"]


def test_one_draw_cannot_answer():
    rows = [r for r in _study() if r["seed"] == 0]
    block = verdict_block(rows, {"stages": []})
    assert not block["answers"] and "cannot answer" in block["headline"] and "n = 1" in block["headline"]
    assert {line["verdict"] for line in block["lines"]} == {"cannot tell"}


def test_rows_cut_by_a_time_cap_are_marked():
    def rec(kind, gen, stopped=None, metrics=None):
        return {"kind": kind, "labels": {"generator": gen, "condition": "real+synthetic", "seed": 0},
                "summary": {"stopped_by": stopped, "metrics": metrics or {"roc_auc": 0.8}}}

    rows = collect_results([rec("generator", "slow", "max_minutes"), rec("classify", "slow"),
                            rec("generator", "fast", "max_steps"), rec("classify", "fast")], "d")
    cut = {r["generator"]: r["cut_by_time"] for r in rows}
    assert cut == {"slow": True, "fast": False}


def test_tiny_heldout_set_uses_the_smallest_usable_alpha_with_a_note():
    assert usable_alpha(0.01, 1000) == (0.01, None)
    assert usable_alpha(0.01, 200) == (0.01, None), "|H| = 200 calibrates α = 1 % exactly (rank 1 of 199 + 1)"
    alpha, note = usable_alpha(0.01, 50)
    assert alpha == pytest.approx(min_alpha(49)) and "smallest usable" in note and "|H| = 50" in note
    # the fallback must be one the detector accepts (it calibrates leave-one-out on |H| - 1 images)
    from synthmed.metrics.memorization import calibrate_copy_detector

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (54, 8, 8, 1), dtype=np.uint8)
    feats = rng.normal(size=(54, 4))
    det = calibrate_copy_detector(images[:4], images[4:], train_feats=feats[:4], heldout_feats=feats[4:], alpha=alpha)
    assert det.summary()["alpha"] == pytest.approx(alpha)


def test_five_draws_answer_with_a_corrected_interval_and_the_mde():
    block = verdict_block(_study(health={"good": 0, "flat": 0}), {"stages": []})
    assert block["answers"] and "paired over 5 k-shot draws" in block["headline"]
    line = {ln["generator"]: ln for ln in block["lines"]}
    assert line["good"]["verdict"] == "helps" and "family-wise 95 % CI" in line["good"]["details"][0]
    assert "MDE at n = 5" in line["good"]["details"][0] and "macro_f1" not in line["good"]["details"][0]
    assert "Holm–Bonferroni over 4 comparison(s)" in block["note"]
