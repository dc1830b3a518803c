"""Health rules on hand-made instrument results (the real-data calibration is in tests/unit/test_health_real.py)."""

from synthmed.metrics.health import STATUS_FAILED, STATUS_OK, STATUS_WARNING, HealthRules, assess_health


def _fid(ratio=1.2, recall=0.6, coverage=0.7):
    return {"metrics": {"fid": {"synthetic": 3.0 * ratio, "floor": 3.0, "ratio": ratio},
                        "recall": {"synthetic": recall}, "coverage": {"synthetic": coverage}}}


def test_a_run_near_the_floor_is_ok():
    h = assess_health(_fid(), {"verdict": "faithful", "reason": "ok"}, {"stopped_by": "max_steps", "steps_done": 10},
                      family="cgan")
    assert h["status"] == STATUS_OK and h["checks"] == [] and h["advice"] is None
    assert "passed" in h["reason"] and h["unchecked"] == []


def test_a_large_fd_ratio_alone_is_not_a_failure_by_default():
    # the real default cgan scored 31x the floor while covering 74 % of real images (see the module docstring)
    h = assess_health(_fid(ratio=31.0, recall=0.81, coverage=0.74), {"verdict": "faithful"}, family="cgan")
    assert h["status"] == STATUS_OK and "FD >" not in h["rule_text"]


def test_far_from_real_is_failed_with_the_ratio_and_advice_when_a_bound_is_set():
    h = assess_health(_fid(ratio=20.0), family="wgan-gp", rules=HealthRules(max_fd_ratio=10.0))
    assert h["status"] == STATUS_FAILED
    assert "wgan-gp failed to learn" in h["reason"] and "20.0×" in h["reason"]
    assert "max_steps" in h["advice"]
    assert h["unchecked"] == ["faithfulness", "training"]


def test_no_coverage_and_no_recall_is_failed_but_low_coverage_alone_is_not():
    h = assess_health(_fid(recall=0.0, coverage=0.01))
    assert h["status"] == STATUS_FAILED and [c["rule"] for c in h["checks"]] == ["covers nothing real"]
    assert assess_health(_fid(recall=0.6, coverage=0.01))["status"] == STATUS_OK


def test_near_zero_recall_alone_is_collapse():
    # the measured case: one image per class for every z, recall 0.01, coverage 0.50
    h = assess_health(_fid(recall=0.01, coverage=0.50), {"verdict": "partly faithful"}, family="cgan")
    assert h["status"] == STATUS_FAILED and [c["rule"] for c in h["checks"]] == ["collapsed"]
    assert "repeat a few images" in h["reason"] and "mode collapse" in h["advice"]
    assert "recall < 0.05 (collapsed)" in h["rule_text"]
    assert assess_health(_fid(recall=0.37, coverage=0.68))["status"] == STATUS_OK  # the lowest working default
    assert assess_health(_fid(recall=0.01, coverage=0.5), rules=HealthRules(collapse_recall=None))["status"] == STATUS_OK


def test_label_blind_is_failed():
    h = assess_health(_fid(), {"verdict": "label-blind", "reason": "consistent with chance"})
    assert h["status"] == STATUS_FAILED and "label-blind" in h["reason"]


def test_a_time_cap_is_a_warning_not_a_failure():
    h = assess_health(_fid(), training={"stopped_by": "max_minutes", "steps_done": 1530})
    assert h["status"] == STATUS_WARNING and "max_minutes" in h["reason"] and "1530" in h["reason"]


def test_rules_are_stated_and_adjustable():
    h = assess_health(_fid(ratio=5.0), rules=HealthRules(max_fd_ratio=4.0))
    assert h["status"] == STATUS_FAILED and h["rules"]["max_fd_ratio"] == 4.0 and "4×" in h["rule_text"]
