"""The local executor's workers: stages side by side change no number (issue 13).

A stage's numbers depend only on its config, its inputs and the torch thread count, never on which
process runs it, in what order, or how fast the machine is. So the smoke study re-run from scratch with
two one-thread workers must give the same results.json, bit for bit, as the in-order one-thread run."""

from synthmed.runs import STAGES_DIR
from synthmed.study import LocalExecutor, load_study_config, run_study
from synthmed.study.executor import default_threads, default_workers


def test_two_workers_rerun_gives_bit_identical_results(smoke_run, tmp_path, data_dir):
    first, cfg, _ = smoke_run
    manifest = run_study(cfg, tmp_path / "again", executor=LocalExecutor(workers=2), data_dir=str(data_dir),
                         progress=False, report=False, threads=1)
    assert manifest["stages_cached"] == 0 and manifest["stages_run"] == len(manifest["stages"])
    assert (tmp_path / "again" / "results.json").read_bytes() == (first / "results.json").read_bytes()
    # every stage's own record finished and names the same stage folders (same keys) as the first run
    assert sorted(p.name for p in (tmp_path / "again" / STAGES_DIR).iterdir()) == \
        sorted(p.name for p in (first / STAGES_DIR).iterdir())


def test_a_failing_stage_stops_the_pool_with_its_own_one_line_error(tmp_path, data_dir):
    import pytest

    from synthmed.errors import SynthmedError

    bad = load_study_config({"dataset": {"classes": ["no-such-class"]}}, profile="smoke")
    with pytest.raises(SynthmedError, match="no-such-class") as e:
        run_study(bad, tmp_path / "bad", executor=LocalExecutor(workers=2), data_dir=str(data_dir),
                  progress=False, report=False, threads=1)
    assert "\n" not in str(e.value)


def test_worker_defaults_share_the_cores():
    import os

    w = default_workers("cpu")
    assert w == (2 if (os.cpu_count() or 1) >= 2 else 1)
    assert default_threads(w) * w <= max(os.cpu_count() or 1, w)
