"""The smoke study end to end on the real PneumoniaMNIST slice: results, cache, resume, report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synthmed.study import load_study_config, run_study

pytestmark = pytest.mark.integration
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def test_smoke_study_writes_every_artefact(smoke_run):
    out, cfg, manifest = smoke_run
    for name in ("manifest.json", "config.yaml", "results.csv", "results.json", "report.html"):
        assert (out / name).exists(), name
    rows = json.loads((out / "results.json").read_text())
    got = {(r["generator"], r["condition"]) for r in rows if r["metric"] == "roc_auc"}
    assert got == {("-", "real"), ("-", "real+classic"), ("-", "real+duplicate"), ("-", "all-real"),
                   ("cgan", "synthetic"), ("cgan", "real+synthetic"), ("cvae", "synthetic"), ("cvae", "real+synthetic")}
    assert all(0.0 <= r["value"] <= 1.0 for r in rows if r["metric"] in ("roc_auc", "macro_f1", "accuracy"))
    fid = [r for r in rows if r["condition"] == "fidelity" and r["metric"] == "fid"]
    assert {r["generator"] for r in fid} == {"cgan", "cvae"} and all(r["value"] >= 0 for r in fid)
    fidelity_metrics = {r["metric"] for r in rows if r["condition"] == "fidelity"}
    assert {"fd_ratio", "faithfulness_bacc", "faithfulness_bacc_floor", "copy_rate", "copy_null_rate", "health",
            "density", "coverage", "floor_fid", "is_mean"} <= fidelity_metrics
    assert not any(r["cut_by_time"] for r in rows)  # step budgets decided every stage
    # manifest: provenance of the whole run
    assert manifest["package_versions"]["torch"] and manifest["data_checksums"]
    assert manifest["config"]["name"] == cfg.name and all("wall_s" in s for s in manifest["stages"])
    # the split's test set is the official one (624 images), and 8 val duplicates of train were removed
    split = next(s for s in manifest["stages"] if s["kind"] == "split")
    assert sum(split["summary"]["counts"]["test"].values()) == 624
    assert sum(split["summary"]["counts"]["val"].values()) == 524 - 8
    # classifiers of every condition saw exactly the images the condition promises
    n_train = {s["labels"]["condition"] + s["labels"]["generator"]: s["summary"]["n_train"]
               for s in manifest["stages"] if s["kind"] == "classify"}
    assert n_train["real-"] == 100 and n_train["all-real-"] == 4708
    assert n_train["real+duplicate-"] == 100 + 40 and n_train["real+syntheticcgan"] == 100 + 40
    assert n_train["syntheticcvae"] == 40


def test_held_out_design_feeds_the_instruments(smoke_run):
    out, _, manifest = smoke_run
    split = next(s for s in manifest["stages"] if s["kind"] == "split")
    design = json.loads((out / split["folder"] / "heldout.json").read_text())
    assert design["split_hash"] == split["summary"]["split_hash"]
    assert split["summary"]["heldout"]["sizes"]["heldout"] == 200 and split["summary"]["heldout"]["shrunk"] is False
    h, r, e = (set(design["indices"][k]) for k in ("heldout", "reference", "extractor"))
    assert not (h & r or h & e or r & e)
    # the extractor / faithfulness judge trained on E only (never H, R or the k-shot images)
    ext = next(s for s in manifest["stages"] if s["kind"] == "extractor")
    assert ext["summary"]["trained_on"] == "extractor (E)" and ext["summary"]["n_train"] == len(e)
    for f in (s for s in manifest["stages"] if s["kind"] == "fidelity"):
        data = json.loads((out / f["folder"] / "fidelity.json").read_text())
        assert data["fidelity"]["n_reference"] == 200 and data["memorization"]["null"]["n"] == 200
        assert set(data["fidelity"]["metrics"]) == {"fid", "kid_mean", "precision", "recall", "density", "coverage"}
        assert "floor" in data["faithfulness"] and data["faithfulness"]["verdict"]
        # a generator trained for 3 steps is caught by the health rules and named with advice
        assert data["health"]["status"] == "failed" and data["health"]["advice"]
        assert f["summary"]["health"]["status"] == "failed"


def test_a_generator_trained_on_another_split_is_refused(smoke_run, tmp_path, data_dir):
    from synthmed.errors import ConfigError, SplitError

    out, _, manifest = smoke_run
    gen = next(s for s in manifest["stages"] if s["kind"] == "generator")
    prov = json.loads((out / gen["folder"] / "provenance.json").read_text())
    assert prov["split_hash"] == gen["summary"]["split_hash"] and prov["split_seed"] == 0
    leaky = load_study_config({"split": {"per_seed": False, "seed": 1}, "generators": [], "conditions": ["real+synthetic"],
                               "samples": [{"path": str(out / gen["folder"])}]}, profile="smoke")
    with pytest.raises(SplitError) as err:
        run_study(leaky, tmp_path / "leaky", data_dir=str(data_dir), progress=False, report=False)
    msg = str(err.value)
    assert len(msg.splitlines()) == 1 and prov["split_hash"][:12] in msg and "split seed 0" in msg
    assert "split seed 1" in msg and "--split-seed 0" in msg
    # samples with no provenance: refused unless explicitly allowed; then the report says leakage is possible
    samples = next(s for s in manifest["stages"] if s["kind"] == "samples")
    bare = tmp_path / "bare.npz"
    bare.write_bytes((out / samples["folder"] / "samples.npz").read_bytes())
    unknown = {"generators": [], "conditions": ["real", "real+synthetic"], "samples": [{"path": str(bare)}]}
    with pytest.raises(ConfigError, match="--allow-unknown-provenance"):
        run_study(load_study_config(unknown, profile="smoke"), tmp_path / "unknown", data_dir=str(data_dir),
                  progress=False, report=False)
    unknown["samples"][0]["allow_unknown_provenance"] = True
    run_study(load_study_config(unknown, profile="smoke"), tmp_path / "allowed", data_dir=str(data_dir), progress=False)
    html = (tmp_path / "allowed" / "report.html").read_text()
    assert "imported without provenance: leakage of this study" in html and "cannot be ruled out" in html
    assert "n = 1" in html  # one draw: the verdict says it cannot answer


def test_second_run_does_no_work(smoke_run, data_dir):
    out, cfg, first = smoke_run
    stamps = {p: p.stat().st_mtime_ns for p in (out / "stages").glob("*/stage.json")}
    again = run_study(cfg, out, data_dir=str(data_dir), progress=False)
    assert again["stages_run"] == 0 and again["stages_cached"] == len(first["stages"])
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_a_renamed_generator_reuses_its_stages_under_the_new_name(smoke_run, tmp_path, data_dir):
    import shutil

    out, cfg, first = smoke_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    renamed = cfg.model_copy(update={"generators": [cfg.generators[0].model_copy(update={"label": "renamed"}),
                                                    *cfg.generators[1:]]})
    again = run_study(renamed, copy, data_dir=str(data_dir), progress=False, report=False)
    assert again["stages_run"] == 0  # a label is not part of any key
    gens = {r["generator"] for r in json.loads((copy / "results.json").read_text())}
    assert "renamed" in gens and cfg.generators[0].display not in gens  # rows carry this study's names


def test_report_renders_in_headless_chromium(smoke_run, browser_page):
    out, _, _ = smoke_run
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser_page
    page.goto((out / "report.html").resolve().as_uri())
    assert page.title().startswith("synthmed report")
    assert page.locator("table.downstream").count() >= 2
    assert page.locator("#fidelity-table tr").count() > 1
    broken = page.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length")
    assert broken == 0
    verdict = page.locator("#verdict")
    assert verdict.bounding_box()["y"] < 200  # the verdict block is the first thing on the page
    assert "cannot answer" in page.locator("#verdict-headline").inner_text()  # one draw: n = 1
    lines = page.locator("#verdict li.verdict-line")
    assert lines.count() == 2 and "excluded from the verdict" in lines.first.inner_text()
    assert page.locator("details.sentences").count() >= 1  # the long sentences are folded
    page.screenshot(path="/tmp/verdict-report.png")  # the first screen, as a reviewer sees it
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    assert page.console_errors == []
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000


KILL_STUDY = """
import sys
from synthmed.study import load_study_config, run_study
cfg = load_study_config({"conditions": ["real"], "metrics": {"fidelity": False, "memorization": False},
    "generators": [{"family": "cgan", "config": {"tiny": True, "max_steps": 400, "checkpoint_every": 5}}]},
    profile="smoke")
run_study(cfg, sys.argv[1], data_dir=sys.argv[2], progress=False, report=False)
"""


def test_resume_after_kill_mid_stage(tmp_path, data_dir):
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", KILL_STUDY, str(out), str(data_dir)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    ckpts: list[Path] = []
    while time.time() < deadline and proc.poll() is None:
        ckpts = list((out / "stages").glob("generator-*/checkpoint.pt")) if (out / "stages").exists() else []
        if ckpts:
            break
        time.sleep(0.2)
    assert ckpts, "the generator stage never wrote a checkpoint before the deadline"
    os.kill(proc.pid, signal.SIGKILL)  # kill -9 mid-stage
    proc.wait()
    gen_dir = ckpts[0].parent
    assert not (gen_dir / "stage.json").exists()  # the killed stage is not marked done
    finished = {p: p.stat().st_mtime_ns for p in (out / "stages").glob("*/stage.json")}
    assert finished, "at least the split stage finished before the kill"

    cfg = load_study_config({"conditions": ["real"], "metrics": {"fidelity": False, "memorization": False},
                             "generators": [{"family": "cgan", "config": {"tiny": True, "max_steps": 400,
                                                                          "checkpoint_every": 5}}]}, profile="smoke")
    manifest = run_study(cfg, out, data_dir=str(data_dir), progress=False, report=False)
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # finished stages untouched
    gen = next(s for s in manifest["stages"] if s["kind"] == "generator")
    assert gen["summary"]["resumed"] is True and gen["summary"]["steps_done"] == 400
    assert not list(out.rglob("*.tmp"))
    from synthmed.generators import load_generator

    assert load_generator(gen_dir / "generator.pt").sample([0, 1], seed=0).shape == (2, 28, 28, 1)


def _stat(pid: int) -> tuple[str, int]:
    """A process's state letter and parent pid from /proc; a process that is gone reads as a zombie ("Z")."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return "Z", 0
    return fields[0], int(fields[1])


def _children(pid: int) -> set[int]:
    """The live child processes of ``pid``."""
    stats = {int(p.name): _stat(int(p.name)) for p in Path("/proc").iterdir() if p.name.isdigit()}
    return {c for c, (state, parent) in stats.items() if parent == pid and state != "Z"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_killed_run_takes_its_workers_with_it(tmp_path, data_dir):
    """kill -9 of a `--workers 2` run mid-stage ends its worker processes too (no orphan keeps writing a stage)."""
    script = KILL_STUDY.replace("progress=False,", "progress=False, executor=__import__('synthmed.study', "
                                "fromlist=['make_executor']).make_executor('local', workers=2),")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "run"), str(data_dir)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, workers = time.time() + 300, set()
    while time.time() < deadline and proc.poll() is None:
        stages = tmp_path / "run" / "stages"
        if stages.exists() and list(stages.glob("generator-*/checkpoint.pt")):
            workers = _children(proc.pid)
            break
        time.sleep(0.2)
    assert workers, "no worker process was running a generator stage before the deadline"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any(_stat(w)[0] != "Z" for w in workers):
        time.sleep(0.2)
    orphans = [w for w in workers if _stat(w)[0] != "Z"]
    for w in orphans:  # a failing run of this test must not leave them behind either
        os.kill(w, signal.SIGKILL)
    assert not orphans, "the killed run's workers outlived it"


def _train_count(manifest) -> int:
    """The k-shot training images of the run's (first) split."""
    split = next(s for s in manifest["stages"] if s["kind"] == "split")
    return int(sum(split["summary"]["counts"]["train"].values()))


def test_ratio_sweep_runs_count_matched_controls_and_reaches_the_report(tmp_path, data_dir):
    """synthetic.ratios: real+synthetic at each ratio beside its own real+duplicate, sized to r × the real images,
    and the report's utility curve (one draw: no interval, but every point and its control)."""
    import numpy as np

    gens = [{"family": "cgan", "config": {"tiny": True, "max_steps": 3}}]
    cfg = load_study_config({"generators": gens, "conditions": ["real", "real+duplicate", "real+synthetic"],
                             "synthetic": {"total": 40, "ratios": [0.5, 2]},
                             "metrics": {"fidelity": False, "memorization": False}}, profile="smoke")
    out = tmp_path / "run"
    manifest = run_study(cfg, out, data_dir=str(data_dir), progress=False, threads=1)
    rows = json.loads((out / "results.json").read_text())
    conds = {(r["generator"], r["condition"]) for r in rows if r["metric"] == "roc_auc"}
    assert {("-", "real+duplicate@0.5x"), ("-", "real+duplicate@2x"), ("cgan", "real+synthetic@0.5x"),
            ("cgan", "real+synthetic@2x"), ("-", "real+duplicate"), ("cgan", "real+synthetic")} <= conds
    n_real = _train_count(manifest)
    sizes = {}
    for s in manifest["stages"]:
        if s["kind"] == "samples":
            with np.load(out / s["folder"] / "samples.npz") as z:
                sizes[s["name"]] = len(z["labels"])
    assert sizes == {"sample cgan seed 0": 40, "sample cgan ratio 0.5 seed 0": round(0.5 * n_real),
                     "sample cgan ratio 2 seed 0": 2 * n_real}
    html = (out / "report.html").read_text()
    assert 'id="curve-table"' in html and html.count("<tr data-generator=") == 2 and "utility curve" in html
