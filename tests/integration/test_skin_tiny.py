"""The skin study's shape (7 classes, k = 20, a 598-image pool) end to end at tiny budgets on the real
ham10000_28 file: its held-out set is too small for the copy detector at α = 1 %, so the study must
fall back to the smallest usable α with a note instead of failing (a bug found by running it)."""

from __future__ import annotations

import json

import pytest

from synthmed.study import load_study_config, run_study

TINY = {
    "generators": [{"family": "cgan", "config": {"tiny": True, "max_steps": 3}}],
    "synthetic": {"total": 70},
    "classifier": {"tiny": True, "max_steps": 4},
    "metrics": {"extractor_steps": 4},
    "seeds": [0],  # one draw: the skin profile itself inherits the default's five
    "conditions": ["real", "real+synthetic", "real+duplicate"],
}


@pytest.mark.integration
def test_skin_profile_runs_end_to_end_with_a_small_held_out_set(tmp_path, data_dir):
    if not (data_dir / "ham10000_28.npz").exists():
        pytest.skip("ham10000_28.npz not in SYNTHMED_DATA_DIR")
    cfg = load_study_config(TINY, profile="skin")
    run_study(cfg, tmp_path / "run", data_dir=str(data_dir), progress=False, threads=1)
    fid = json.loads(next((tmp_path / "run" / "stages").glob("fidelity-*/fidelity.json")).read_text())
    text = json.dumps(fid)
    assert "smallest usable" in text, "the α fallback is stated"
    assert (tmp_path / "run" / "report.html").exists()
