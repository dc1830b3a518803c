"""bench/bench_instruments.py's pure logic: the change factor, the >2× list and the old-vs-new table."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[2] / "bench" / "bench_instruments.py"
_spec = importlib.util.spec_from_file_location("bench_instruments", _PATH)
B = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(B)


def test_change_factor_known_answers():
    assert B.change_factor(0.3, 0.1) == pytest.approx(3.0)
    assert B.change_factor(0.1, 0.3) == pytest.approx(3.0)  # symmetric
    assert B.change_factor(0.0, 0.0) == 1.0
    assert B.change_factor(0.16, 0.0) == math.inf
    assert B.change_factor(None, 0.2) is None


def _side(copy_rate, fd_ratio, precision_ratio, recall_ratio=1.0):
    return {"copy_rate": copy_rate, "ratio": {"fid": fd_ratio, "precision": precision_ratio, "recall": recall_ratio}}


def test_big_changes_lists_only_more_than_twofold():
    rows = [{"generator": "ddpm", "seed": 0, "old": _side(0.296, 1.5, 0.9), "new": _side(0.01, 3.5, 0.95)},
            {"generator": "cgan", "seed": 0, "old": _side(0.02, 2.0, 0.5), "new": _side(0.01, 1.0, 1.0)},
            {"generator": "cvae", "seed": 0, "old": _side(0.2, 1.0, 1.0), "new": None}]  # stage not finished: skipped
    rows[0]["old"]["copy_count"], rows[0]["new"]["copy_count"] = [296, 1000], [10, 1000]
    got = {(c["generator"], c["quantity"]): c for c in B.big_changes(rows)}
    # ddpm: copy 29.6 % → 1 % (29.6×), FD ratio 1.5 → 3.5 (2.33×); precision 0.9 → 0.95 is no change.
    # cgan: every pair is exactly 2× (not more than 2×), so nothing is listed.
    copy = "copy rate (296/1000 → 10/1000 images)"
    assert set(got) == {("ddpm", copy), ("ddpm", "FD floor ratio")}
    assert got[("ddpm", copy)]["factor"] == pytest.approx(29.6)
    assert got[("ddpm", copy)]["direction"] == "old higher"
    assert got[("ddpm", "FD floor ratio")]["direction"] == "new higher"


def test_generator_table_has_an_old_and_a_new_row():
    side = {"reference": "R (1000)", "floor_design": "H vs R", "synthetic": {"fid": 2.0, "precision": 0.5,
            "recall": 0.4, "coverage": 0.3}, "floor": {"fid": 1.0, "precision": 0.8, "recall": 0.7, "coverage": 0.9},
            "ratio": {"fid": 2.0}, "faithfulness": 0.9, "faithfulness_floor": 0.95, "copy_rate": 0.012,
            "null_rate_text": "1.0 %"}
    old = {**side, "reference": "train pool (4708)", "faithfulness": None, "synthetic": {"fid": 1.0, "precision": 0.5,
           "recall": 0.4}, "floor": {"fid": 0.5, "precision": 0.8, "recall": 0.7}}
    table = B.generator_table({"old": old, "new": side}).splitlines()
    assert len(table) == 4
    assert table[2].startswith("| old | train pool (4708) |") and "— (not measured)" in table[2]
    assert table[3].startswith("| new | R (1000) |") and "0.9 (0.95)" in table[3] and "1.2 %" in table[3]
    pending = B.generator_table({"old": old, "new": None}).splitlines()[3]
    assert "fidelity stage not finished" in pending and pending.count("|") == table[3].count("|")


def test_roughness_known_answers():
    flat = np.full((1, 4, 4, 1), 128, np.uint8)
    checker = (np.indices((4, 4)).sum(0) % 2 * 255).astype(np.uint8)[None, :, :, None]
    assert B.roughness(np.concatenate([flat, checker])) == pytest.approx([0.0, 1.0])
