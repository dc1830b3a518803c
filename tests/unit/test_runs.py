"""The run-folder contract: result rows from stage records, and the summary whose roles (baseline,
controls, ceiling, order) come from the condition registry."""

import json

import pytest

from synthmed.errors import DataNotFoundError
from synthmed.runs import (
    CONTROL,
    collect_results,
    load_results,
    manifest_stages,
    read_manifest,
    summarize_conditions,
    write_manifest,
    write_results,
)


def _classify(cond, gen, seed, auc):
    return {"kind": "classify", "labels": {"generator": gen, "condition": cond, "seed": seed},
            "summary": {"metrics": {"roc_auc": auc, "per_class": {"a": {"f1": 0.5}}}}}


def test_rows_come_from_classify_and_fidelity_records_in_order(tmp_path):
    records = [{"kind": "split", "labels": {"seed": 0}, "summary": {}}, _classify("real", CONTROL, 0, 0.7),
               {"kind": "fidelity", "labels": {"generator": "cgan", "seed": 0}, "summary": {"scalars": {"fid": 12.0}}}]
    rows = collect_results(records, "pneumoniamnist_28")
    assert rows == [
        {"dataset": "pneumoniamnist_28", "generator": "-", "seed": 0, "condition": "real", "metric": "roc_auc", "value": 0.7,
         "cut_by_time": False},
        {"dataset": "pneumoniamnist_28", "generator": "-", "seed": 0, "condition": "real", "metric": "f1[a]", "value": 0.5,
         "cut_by_time": False},
        {"dataset": "pneumoniamnist_28", "generator": "cgan", "seed": 0, "condition": "fidelity", "metric": "fid",
         "value": 12.0, "cut_by_time": False}]
    write_results(tmp_path, rows)
    assert load_results(tmp_path) == rows
    assert (tmp_path / "results.csv").read_text().splitlines()[0] == "dataset,generator,condition,seed,metric,value,cut_by_time"


def test_summary_compares_with_baseline_best_control_and_ceiling():
    aucs = {("real", CONTROL): [0.60, 0.62], ("real+classic", CONTROL): [0.64, 0.66],
            ("real+duplicate", CONTROL): [0.61, 0.61], ("all-real", CONTROL): [0.80, 0.82],
            ("real+synthetic", "cgan"): [0.70, 0.72]}
    rows = collect_results([_classify(c, g, s, v) for (c, g), vals in aucs.items() for s, v in enumerate(vals)], "d")
    summary = summarize_conditions(rows, "roc_auc")
    # controls first in the registry's display order, then conditions that use a generator
    assert [(r["generator"], r["condition"]) for r in summary] == [
        ("-", "real"), ("-", "real+classic"), ("-", "real+duplicate"), ("-", "all-real"), ("cgan", "real+synthetic")]
    syn = summary[-1]
    assert syn["mean"] == pytest.approx(0.71)
    assert syn["vs_real"]["against"] == "real" and syn["vs_real"]["mean_diff"] == pytest.approx(0.10)
    assert syn["vs_control"]["against"] == "real+classic"  # the best control by mean
    assert syn["gap_closed"] == pytest.approx((0.71 - 0.61) / (0.81 - 0.61))
    assert "vs_real" not in summary[0] and "vs_control" not in summary[1]  # controls: vs the baseline only


def test_manifest_round_trip_and_missing_manifest(tmp_path):
    with pytest.raises(DataNotFoundError, match="no manifest.json"):
        read_manifest(tmp_path)
    write_manifest(tmp_path, {"stages": [{"kind": "split", "name": "s"}, {"kind": "classify", "name": "c"}]})
    assert json.loads((tmp_path / "manifest.json").read_text())["stages"][0]["name"] == "s"
    assert [s["name"] for s in manifest_stages(read_manifest(tmp_path), "classify")] == ["c"]
