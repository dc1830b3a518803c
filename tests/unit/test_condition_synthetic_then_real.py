"""``synthetic-then-real``: two phases inside one step budget; the fine-tune phase starts from the
pre-trained weights; opt-in (in the ``usage`` profile, not in the default study)."""

import json

import numpy as np
import pytest
import torch

from synthmed.classify import ClassifierConfig, tiny_classifier_config, train_classifier
from synthmed.classify.models import build_classifier
from synthmed.conditions import build_condition, get_condition
from synthmed.conditions.base import split_steps
from synthmed.errors import ConfigError, SynthmedError
from synthmed.study.config import load_study_config
from synthmed.study.stages.classify import classify_in_phases

NAME = "synthetic-then-real"


@pytest.fixture(scope="module")
def sets(pneumonia_50shot):
    """Real 50-shot train (100 images); 60 held-out val images stand in for the synthetic set."""
    d = pneumonia_50shot
    rng = np.random.default_rng(0)
    syn = d["val"].subset(rng.choice(len(d["val"]), 60, replace=False))
    return d["train"], syn, d["val"].subset(np.arange(40)), d["test"].subset(np.arange(60))


def _cfg(**kw):
    return ClassifierConfig(**{**tiny_classifier_config(), "device": "cpu", "patience": None, **kw})


@pytest.mark.parametrize("total", [2, 3, 7, 300, 301])
@pytest.mark.parametrize("frac", [0.01, 0.3, 0.5, 0.99])
def test_split_sums_to_the_budget_and_follows_the_fraction(total, frac):
    steps = split_steps(total, [frac, 1 - frac])
    assert sum(steps) == total and min(steps) >= 1
    assert abs(steps[0] - frac * total) <= 2  # within rounding of the asked share (one step reserved per phase)


def test_split_known_answers_and_too_small_budget():
    assert split_steps(300, [0.5, 0.5]) == [150, 150]
    assert split_steps(300, [0.3, 0.7]) == [90, 210]
    assert split_steps(301, [0.5, 0.5]) == [151, 150]
    with pytest.raises(SynthmedError, match="at least 2"):
        split_steps(1, [0.5, 0.5])


def test_phases_are_synthetic_then_real_with_the_option_split(sets):
    real, syn, _, _ = sets
    c = build_condition(NAME, real=real, synthetic=syn, options={"pretrain_fraction": 0.25})
    assert [p.name for p in c.phases] == ["pretrain", "finetune"]
    assert c.phases[0].train is syn and c.phases[1].train is real and c.train is real
    assert [p.share for p in c.phases] == [0.25, 0.75]
    assert (c.n_real, c.n_extra) == (len(real), len(syn)) and c.facts == {"pretrain_fraction": 0.25}
    with pytest.raises(ConfigError, match="pretrain_fraction"):
        build_condition(NAME, real=real, synthetic=syn, options={"pretrain_fraction": 1.0})
    with pytest.raises(SynthmedError, match="needs synthetic images"):
        build_condition(NAME, real=real)


def _conv1(state):
    return next(v for k, v in state.items() if k.endswith("conv1.weight")).clone()


def test_finetune_starts_from_the_pretrained_weights(sets, one_torch_thread):
    real, syn, val, _ = sets
    cfg = _cfg(max_steps=3)
    torch.manual_seed(cfg.seed)
    init = _conv1(build_classifier(cfg.model, 2, 1, 28, cfg.stem).state_dict())  # the seed's fresh init
    pre = train_classifier(syn, None, cfg)
    w1 = _conv1(pre.net.state_dict())
    assert not torch.allclose(w1, init, atol=1e-4)  # phase 1 moved the weights
    # with a vanishing learning rate phase 2 ends where it starts: from the pre-trained weights, not a fresh init
    ft = train_classifier(real, None, _cfg(max_steps=1, lr=1e-12), init_state=pre.net.state_dict())
    assert torch.allclose(_conv1(ft.net.state_dict()), w1, atol=1e-8)
    fresh = train_classifier(real, None, _cfg(max_steps=1, lr=1e-12))
    assert torch.allclose(_conv1(fresh.net.state_dict()), init, atol=1e-8)


def test_phased_training_spends_exactly_the_budget_and_records_the_split(sets, tmp_path, one_torch_thread):
    real, syn, val, test = sets
    c = build_condition(NAME, real=real, synthetic=syn, options={"pretrain_fraction": 0.5})
    clf, metrics, _, phases = classify_in_phases(tmp_path, c, 6, val, test, _cfg(eval_every=3), desc="t",
                                                 progress=False, tensorboard=False)
    assert [(p["phase"], p["max_steps"], p["n_train"]) for p in phases] == [("pretrain", 3, 60), ("finetune", 3, 100)]
    assert sum(p["steps_done"] for p in phases) == 6
    assert (tmp_path / "classifier.pt").is_file() and (tmp_path / "metrics.json").is_file()
    assert len(json.loads((tmp_path / "phase-1-pretrain" / "history.json").read_text())) >= 1
    assert 0 <= metrics["accuracy"] <= 1 and clf.steps_done == 3  # the final classifier is the fine-tune phase's


def test_opt_in_usage_profile_only():
    assert get_condition(NAME).in_default is False
    assert NAME in load_study_config(profile="usage").conditions
    assert NAME not in load_study_config(profile="default").conditions
    assert NAME in load_study_config({"conditions": ["real", NAME]}).conditions  # a study may name it
