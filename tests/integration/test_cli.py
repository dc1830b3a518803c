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


def synthmed(*args, env=None, timeout=900):
    return subprocess.run([sys.executable, "-m", "synthmed.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def one_line_error(res) -> str:
    """The CLI failed with exactly one ``error: ...`` line on stderr and no traceback; return it."""
    assert res.returncode == 1, (res.returncode, res.stderr[-2000:])
    err = res.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and err.startswith("error: "), err[-2000:]
    return err


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
    assert cfg["dataset"]["name"] == "pneumoniamnist" and [g["family"] for g in cfg["generators"]] == ["cgan", "cvae", "ddpm"]
    assert cfg["seeds"] == [0, 1, 2, 3, 4]  # the default answers: five paired draws


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
    res = synthmed("sample", out, "--n-per-class", "3", "--bn-stats", "recompute", "--out", tmp_path / "re")
    assert res.returncode == 0, res.stderr[-2000:]
    with np.load(tmp_path / "re" / "samples.npz") as z:  # the EMA weights with their own BatchNorm statistics
        assert z["images"].shape == (6, 28, 28, 1)
    err = one_line_error(synthmed("sample", out, "--sampler", "unipc", "--out", tmp_path / "bad"))
    assert "cgan sampling takes no sampler (its knobs: bn_stats)" in err and not (tmp_path / "bad").exists()


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


# -- issue 15: fresh machine, offline, error suggestions ------------------------------------------
def test_run_offline_without_data_is_one_line_with_file_folder_url_md5(tmp_path):
    import os

    from medmnist import INFO

    env = {**os.environ, "SYNTHMED_DATA_DIR": str(tmp_path / "data")}
    env.pop("SYNTHMED_OFFLINE", None)
    res = synthmed("run", "--offline", "--out", tmp_path / "run", "--no-progress", env=env, timeout=300)
    err = one_line_error(res)
    for part in ("pneumoniamnist.npz", str(tmp_path / "data"), INFO["pneumoniamnist"]["url"], INFO["pneumoniamnist"]["MD5"]):
        assert part in err
    assert not (tmp_path / "run").exists()


def _data_layer_messages(tmp_path, monkeypatch) -> list[str]:
    """The one-line messages of every data-layer error a user can run into."""
    from synthmed.data import load_dataset, make_split
    from synthmed.data.check import check_samples
    from synthmed.data.medmnist import download_file
    from synthmed.errors import SynthmedError

    (tmp_path / "pneumoniamnist.npz").write_bytes(b"PK\x03\x04 truncated")
    (tmp_path / "ham10000_28.npz").write_bytes(b"PK\x03\x04 truncated")
    np.savez(tmp_path / "junk.npz", x=np.arange(3))
    tiny = load_dataset("folder", path=_class_folders(tmp_path / "folders"), size=8)
    attempts = [
        lambda: load_dataset("bloodmnist", data_dir=tmp_path),  # offline (the suite's default)
        lambda: load_dataset("bloodmnist", data_dir=tmp_path, download=False),
        lambda: load_dataset("pneumoniamnist", data_dir=tmp_path),  # corrupt
        lambda: load_dataset("ham10000", data_dir=tmp_path),  # corrupt
        lambda: load_dataset("ham10000", size=64, data_dir=tmp_path),  # missing, never downloaded
        lambda: load_dataset("ham10000", size=128, data_dir=tmp_path),
        lambda: load_dataset("folder"),
        lambda: load_dataset("folder", path=tmp_path / "absent"),
        lambda: load_dataset("nih-chestxray14"),
        lambda: load_dataset("pneumonimnist", data_dir=tmp_path),
        lambda: load_dataset("folder", path=tmp_path / "folders", classes=["nope"]),
        lambda: make_split(tiny, shots=50),
        lambda: make_split(tiny, shots=1, protocol="official"),
        lambda: check_samples(tmp_path / "junk.npz", tiny),
        lambda: check_samples(tmp_path / "absent.npz", tiny),
        lambda: download_file((tmp_path / "absent.npz").as_uri(), tmp_path / "dl" / "x.npz", "0" * 32),
        lambda: download_file((tmp_path / "junk.npz").as_uri(), tmp_path / "dl" / "x.npz", "0" * 32),
    ]
    messages = []
    monkeypatch.delenv("SYNTHMED_OFFLINE", raising=False)
    for i, attempt in enumerate(attempts):
        if i == 0:
            monkeypatch.setenv("SYNTHMED_OFFLINE", "1")
        with pytest.raises(SynthmedError) as err:
            attempt()
        monkeypatch.delenv("SYNTHMED_OFFLINE", raising=False)
        messages.append(str(err.value))
    return messages


def _class_folders(root: Path) -> Path:
    from PIL import Image

    for k, name in enumerate(("a", "b")):
        (root / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((8, 8), 40 * i + 100 * k, np.uint8)).save(root / name / f"{i}.png")
    return root


def test_every_suggestion_in_a_data_error_is_a_real_flag_command_or_variable(tmp_path, monkeypatch):
    """Parse the --flags, `synthmed <command>`s and $VARIABLEs out of the data layer's messages and
    check the CLI accepts each flag and command and the package reads each variable."""
    import re

    import typer.main

    from synthmed.cli import app
    from synthmed.data.files import OFFLINE_ENV
    from synthmed.data.medmnist import MIRROR_ENV
    from synthmed.data.registry import DATA_DIR_ENV

    root = typer.main.get_command(app)
    commands = {}
    stack = [((), root)]
    while stack:
        path, cmd = stack.pop()
        commands[" ".join(path)] = cmd
        stack += [((*path, name), sub) for name, sub in getattr(cmd, "commands", {}).items()]
    flags = {opt for cmd in commands.values() for p in cmd.params for opt in p.opts if opt.startswith("--")}
    messages = _data_layer_messages(tmp_path, monkeypatch)
    assert all("\n" not in m for m in messages)
    suggested = {f for m in messages for f in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", m)}
    assert suggested, "the messages suggest flags (--path, --shots, --offline, ...)"
    assert suggested <= flags, f"flags the CLI does not have: {sorted(suggested - flags)}"
    for m in messages:
        for words in re.findall(r"synthmed ((?:[a-z-]+ ?){1,2})", m):
            words = words.split()
            assert words[0] in commands, f"no command 'synthmed {words[0]}' (from: {m})"
            if len(words) > 1 and words[0] in commands and hasattr(commands[words[0]], "commands"):
                assert " ".join(words) in commands, f"no command 'synthmed {' '.join(words)}' (from: {m})"
    variables = {v for m in messages for v in re.findall(r"\$([A-Z_]+)", m)}
    assert variables and variables <= {DATA_DIR_ENV, OFFLINE_ENV, MIRROR_ENV}


def test_fresh_machine_run_fetches_the_dataset_from_a_local_server_then_runs(tmp_path, monkeypatch, data_dir):
    """`synthmed run` with no data and a local HTTP server standing in for Zenodo: the file is fetched
    into the data folder (MD5 checked against medmnist INFO, patched to the served file's), then the study runs."""
    import functools
    import hashlib
    import http.server
    import threading

    from medmnist import INFO
    from typer.testing import CliRunner

    from synthmed.cli import app

    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(data_dir / "pneumoniamnist.npz", served / "pneumoniamnist.npz")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        monkeypatch.delenv("SYNTHMED_OFFLINE", raising=False)
        monkeypatch.setenv("SYNTHMED_MEDMNIST_URL", f"http://127.0.0.1:{httpd.server_address[1]}")
        monkeypatch.setenv("SYNTHMED_DATA_DIR", str(tmp_path / "fresh-data"))
        monkeypatch.setitem(INFO["pneumoniamnist"], "MD5", hashlib.md5((served / "pneumoniamnist.npz").read_bytes()).hexdigest())
        study = tmp_path / "study.yaml"
        study.write_text("name: fresh\ngenerators: []\nconditions: [real]\nmetrics: {fidelity: false, memorization: false}\n")
        res = CliRunner().invoke(app, ["run", str(study), "--profile", "smoke", "--out", str(tmp_path / "run"),
                                       "--threads", "1", "--no-progress"])
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert res.exit_code == 0, res.output[-2000:]
    assert (tmp_path / "fresh-data" / "pneumoniamnist.npz").read_bytes() == (served / "pneumoniamnist.npz").read_bytes()
    assert (tmp_path / "run" / "report.html").exists()


# -- issue 15: robustness ------------------------------------------------------------------------
def test_truncated_dataset_file_is_one_line(tmp_path, data_dir):
    good = (data_dir / "pneumoniamnist.npz").read_bytes()
    (tmp_path / "pneumoniamnist.npz").write_bytes(good[: len(good) // 2])
    err = one_line_error(synthmed("data", "show", "pneumoniamnist", "--data-dir", tmp_path, "--out", tmp_path / "x.png"))
    assert "pneumoniamnist.npz is corrupt" in err and "re-download" in err and str(tmp_path) not in err


def test_evaluate_rejects_a_non_image_npz_before_any_training(tmp_path, data_dir):
    import time

    junk = tmp_path / "junk.npz"
    np.savez(junk, x=np.arange(10.0))
    t0 = time.perf_counter()
    res = synthmed("evaluate", junk, "--data-dir", data_dir, "--out", tmp_path / "e", "--no-progress", timeout=180)
    err = one_line_error(res)
    assert time.perf_counter() - t0 < 120  # the inputs are read first, not after the controls have trained
    assert "junk.npz" in err and "images" in err and str(tmp_path) not in err
    assert not (tmp_path / "e").exists()


def test_evaluate_names_labels_outside_the_class_range(tmp_path, data_dir):
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((8, 28, 28, 1), np.uint8), labels=np.array([2, 3, 4, 5] * 2))
    res = synthmed("evaluate", bad, "--data-dir", data_dir, "--out", tmp_path / "e", "--no-progress", timeout=180)
    err = one_line_error(res)
    assert "2, 3, 4, 5" in err and "0..1" in err and "normal" in err and "0 images" not in err
    assert not (tmp_path / "e").exists()


def test_config_error_inside_the_run_leaves_no_empty_out_folder(tmp_path, data_dir):
    study = tmp_path / "study.yaml"
    study.write_text("generators:\n  - family: nope\n")
    err = one_line_error(synthmed("run", study, "--out", tmp_path / "run", "--data-dir", data_dir, timeout=300))
    assert "nope" in err and not (tmp_path / "run").exists()


# -- issue 15: what a person sees ----------------------------------------------------------------
def test_data_show_out_without_extension_writes_a_png(tmp_path, data_dir):
    res = synthmed("data", "show", "pneumoniamnist", "--data-dir", data_dir, "--out", tmp_path / "grid")
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not (tmp_path / "grid").exists()
    err = one_line_error(synthmed("data", "show", "pneumoniamnist", "--data-dir", data_dir, "--out", tmp_path / "g.jpg"))
    assert ".png" in err and not (tmp_path / "g.jpg").exists()


def test_data_list_is_one_unwrapped_row_per_dataset_at_80_columns(data_dir):
    import os

    from synthmed.data import dataset_names

    res = synthmed("data", "list", "--data-dir", data_dir, env={**os.environ, "COLUMNS": "80"})
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    for name in dataset_names():  # each dataset on one row, its name in full
        rows = [line for line in lines if line.split() and line.split()[0] == name]
        assert len(rows) == 1, (name, res.stdout)
    assert any(line.split()[:1] == ["pneumoniamnist"] and "yes" in line.split() for line in lines)


def test_skin_profile_is_offered_in_help_and_resolves_to_the_skin_study():
    res = synthmed("run", "--help", env={**__import__("os").environ, "COLUMNS": "200"})
    assert res.returncode == 0 and "skin" in res.stdout
    res = synthmed("run", "--profile", "skin", "--print-default")
    assert res.returncode == 0, res.stderr
    import yaml

    cfg = yaml.safe_load(res.stdout)
    assert cfg["dataset"]["name"] == "ham10000" and cfg["split"]["shots"] == 20
    assert [g["family"] for g in cfg["generators"]] == ["cgan", "cvae", "ddpm"]
    from synthmed.study import load_study_config

    assert cfg["conditions"] == load_study_config().conditions  # the skin study inherits the default's conditions
