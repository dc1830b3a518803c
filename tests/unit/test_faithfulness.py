"""Class faithfulness on real PneumoniaMNIST: a domain classifier trained on E scores images against
their intended labels, beside the same on the held-out set H (the floor)."""

from __future__ import annotations

import numpy as np
import pytest

from synthmed.metrics import faithfulness as FA
from synthmed.metrics.classification import classification_metrics

NAMES = ("normal", "pneumonia")


@pytest.fixture(scope="module")
def scored(data_dir):
    from _instrument_data import design, proba

    sets, _ = design()
    return sets, {k: proba(sets[k].images) for k in ("H", "H2")}


def test_fast_scalars_match_classification_metrics():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 3, 200), rng.dirichlet(np.ones(3), 200)
    ref, fast = classification_metrics(y, p, ["a", "b", "c"]), FA._scalars(y, p, 3)
    for key in FA.FAITHFULNESS_METRICS:
        assert fast[key] == pytest.approx(ref[key], abs=1e-12)


def test_perfect_generator_is_faithful_at_the_floor(scored):
    sets, p = scored
    out = FA.class_faithfulness(p["H2"], sets["H2"].labels, p["H"], sets["H"].labels, NAMES, n_boot=200)
    assert out["floor"]["balanced_accuracy"]["value"] > 0.8  # the E-trained classifier tells the classes apart
    assert out["verdict"] == "faithful", out["reason"]
    for key in FA.FAITHFULNESS_METRICS:  # the floor's value sits inside the synthetic interval and vice versa
        s, f = out["synthetic"][key], out["floor"][key]
        assert s["ci"][0] <= f["value"] <= s["ci"][1] and f["ci"][0] <= s["value"] <= f["ci"][1], key


def test_shuffled_labels_are_called_label_blind(scored):
    sets, p = scored
    shuffled = np.random.default_rng(0).permutation(sets["H2"].labels)
    out = FA.class_faithfulness(p["H2"], shuffled, p["H"], sets["H"].labels, NAMES, n_boot=200)
    assert out["verdict"] == "label-blind", out["reason"]
    s, f = out["synthetic"]["balanced_accuracy"], out["floor"]["balanced_accuracy"]
    assert s["ci"][1] < f["value"] - 0.2 and s["ci"][0] <= 0.5  # far below the floor, at chance
    assert out["synthetic"]["roc_auc"]["ci"][0] <= 0.5 <= out["synthetic"]["roc_auc"]["ci"][1]


def test_partly_faithful_and_uninformative(scored):
    sets, p = scored
    half = sets["H2"].labels.copy()
    flip = np.random.default_rng(1).random(len(half)) < 0.25  # a quarter of the labels wrong
    half[flip] = 1 - half[flip]
    out = FA.class_faithfulness(p["H2"], half, p["H"], sets["H"].labels, NAMES, n_boot=200)
    assert out["verdict"] == "partly faithful", out["reason"]
    noise = np.random.default_rng(2).dirichlet([1, 1], len(sets["H"]))
    blind = FA.class_faithfulness(p["H2"], sets["H2"].labels, noise, sets["H"].labels, NAMES, n_boot=200)
    assert blind["verdict"] == "uninformative"


def test_rank_auc_equals_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300).astype(bool)
    score = np.round(rng.random(300) + 0.3 * y, 1)  # rounded: many ties
    assert FA._rank_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-15)
    assert FA._rank_auc(np.ones(5, bool), score[:5]) is None


def test_floor_computed_apart_gives_the_same_faithfulness(scored):
    sets, p = scored
    args = (p["H2"], sets["H2"].labels, p["H"], sets["H"].labels, NAMES)
    floor = FA.faithfulness_floor(p["H"], sets["H"].labels, NAMES, n_boot=150, seed=2)
    assert FA.class_faithfulness(*args, n_boot=150, seed=2) == FA.class_faithfulness(
        p["H2"], sets["H2"].labels, None, None, NAMES, n_boot=150, seed=2, floor=floor)
