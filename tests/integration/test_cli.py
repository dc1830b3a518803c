"""The CLI is a thin layer: real commands on the real data slice, one-line errors, no tracebacks."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.integration


def synthmed(*args, env=None):
    return subprocess.run([sys.executable, "-m", "synthmed.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=900)


def test_invalid_study_config_gives_one_clear_line(tmp_path):
    bad = tmp_path / "study.yaml"
    bad.write_text("split:\n  shot: 20\n")
    res = synthmed("run", bad, "--out", tmp_path / "run")
    assert res.returncode == 1
    err = res.stderr.strip()
    assert err.startswith("error:") and "split.shot" in err and "did you mean 'shots'" in err
    assert "Traceback" not in res.stderr and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()  # nothing half-written


def test_missing_dataset_offline_names_the_path(tmp_path):
    import os

    env = {**os.environ, "SYNTHMED_DATA_DIR": str(tmp_path)}
    res = synthmed("classify", "--data", "bloodmnist", "--out", tmp_path / "c", env=env)
    assert res.returncode == 1 and "bloodmnist.npz" in res.stderr and "Traceback" not in res.stderr


def test_print_default_is_valid_yaml_that_runs_back():
    import yaml

    res = synthmed("run", "--print-default")
    assert res.returncode == 0
    cfg = yaml.safe_load(res.stdout)
    assert cfg["dataset"]["name"] == "pneumoniamnist" and len(cfg["generators"]) == 4


def test_evaluate_precomputed_samples_over_two_seeds(smoke_run, tmp_path, data_dir):
    run_dir, _, manifest = smoke_run
    samples = next(s for s in manifest["stages"] if s["kind"] == "samples")
    src = tmp_path / "mine.npz"
    shutil.copy(run_dir / samples["folder"] / "samples.npz", src)
    shutil.copy(run_dir / samples["folder"] / "provenance.json", tmp_path)  # made on split seed 0, as evaluate's
    out = tmp_path / "eval"
    res = synthmed("evaluate", src, "--data-dir", data_dir, "--seeds", "2", "--total", "40",
                   "--conditions", "real,real+synthetic", "--classifier-steps", "2", "--out", out, "--no-progress")
    assert res.returncode == 0, res.stderr[-2000:]
    rows = list(csv.DictReader(open(out / "results.csv")))
    auc = [r for r in rows if r["metric"] == "roc_auc"]
    assert {(r["generator"], r["condition"], r["seed"]) for r in auc} == {
        ("-", "real", "0"), ("-", "real", "1"), ("mine", "real+synthetic", "0"), ("mine", "real+synthetic", "1")}
    assert any(r["metric"] == "fid" and r["generator"] == "mine" for r in rows)
    assert (out / "report.html").exists() and "95 % CI" in res.stdout
    assert "id=\"verdict\"" in (out / "report.html").read_text()


def test_evaluate_refuses_a_generator_trained_on_another_split(smoke_run, tmp_path, data_dir):
    run_dir, _, manifest = smoke_run
    gen = next(s for s in manifest["stages"] if s["kind"] == "generator")  # trained on split seed 0
    res = synthmed("evaluate", run_dir / gen["folder"], "--split-seed", "1", "--data-dir", data_dir, "--seeds", "1",
                   "--total", "4", "--conditions", "real+synthetic", "--classifier-steps", "1", "--out",
                   tmp_path / "e", "--no-progress")
    err = res.stderr.strip()
    assert res.returncode == 1 and "Traceback" not in res.stderr and len(err.splitlines()) == 1
    assert "split seed 0" in err and "split seed 1" in err and "--split-seed 0" in err


def test_evaluate_rejects_samples_of_the_wrong_size(tmp_path, data_dir):
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((10, 32, 32, 1), np.uint8), labels=np.zeros(10, np.int64))
    res = synthmed("evaluate", bad, "--data-dir", data_dir, "--seeds", "1", "--total", "4", "--allow-unknown-provenance",
                   "--conditions", "real+synthetic", "--classifier-steps", "1", "--out", tmp_path / "e", "--no-progress")
    assert res.returncode == 1 and "(32, 32, 1)" in res.stderr and "Traceback" not in res.stderr


def test_train_on_two_processes_then_sample(tmp_path, data_dir):
    out = tmp_path / "ddp"
    res = synthmed("train", "--family", "cgan", "--max-steps", "3", "--devices", "2", "--data-dir", data_dir, "--out", out)
    assert res.returncode == 0, res.stderr[-2000:]
    import json

    run = json.loads((out / "run.json").read_text())
    assert run["world_size"] == 2 and run["steps_done"] == 3
    res = synthmed("sample", out, "--n-per-class", "3", "--out", tmp_path / "samples")
    assert res.returncode == 0, res.stderr[-2000:]
    with np.load(tmp_path / "samples" / "samples.npz") as z:
        assert z["images"].shape == (6, 28, 28, 1) and z["labels"].tolist() == [0, 0, 0, 1, 1, 1]
    assert len(list((tmp_path / "samples" / "pneumonia").glob("*.png"))) == 3


def test_run_a_small_study_from_yaml_with_one_thread(tmp_path, data_dir):
    study = tmp_path / "study.yaml"
    study.write_text("name: tiny\ngenerators: []\nconditions: [real, all-real]\n")
    out = tmp_path / "run"
    res = synthmed("run", study, "--profile", "smoke", "--threads", "1", "--out", out, "--data-dir", data_dir,
                   "--no-progress")
    assert res.returncode == 0, res.stderr[-2000:]
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert {r["condition"] for r in rows if r["metric"] == "roc_auc"} == {"real", "all-real"}
    assert "report:" in res.stdout and (out / "report.html").exists()
