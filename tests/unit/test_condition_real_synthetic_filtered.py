"""``real+synthetic-filtered``: keeps exactly the synthetic images the real-only classifier gives their
intended class with confidence ≥ τ; real held-out images mostly survive, label-swapped ones mostly do not;
the study wires its own ``real`` classify stage of the same seed in as the filter."""

import numpy as np
import pytest

from synthmed.classify import ClassifierConfig, train_classifier
from synthmed.conditions import build_condition, get_condition
from synthmed.conditions.real_synthetic_filtered import filter_mask
from synthmed.data.types import LabeledImages
from synthmed.errors import SynthmedError
from synthmed.study.config import load_study_config
from synthmed.study.expand import expand_study
from synthmed.study.graph import topological_order

NAME = "real+synthetic-filtered"


@pytest.fixture(scope="module")
def trained(pneumonia_50shot):
    """A real-only classifier on the 50-shot PneumoniaMNIST split (60 steps: good enough to filter)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        d = pneumonia_50shot
        clf = train_classifier(d["train"], None, ClassifierConfig(max_steps=60, eval_every=60, device="cpu", seed=0))
    finally:
        torch.set_num_threads(before)
    heldout = d["test"].subset(np.random.default_rng(1).choice(len(d["test"]), 200, replace=False))
    return d["train"], heldout, clf


def _swapped(s: LabeledImages) -> LabeledImages:
    return LabeledImages(images=s.images, labels=1 - s.labels, class_names=s.class_names, name="swapped")


def test_mask_by_hand():
    probs = np.array([[0.95, 0.05], [0.3, 0.7], [0.9, 0.1], [0.05, 0.95]])
    labels = np.array([0, 1, 1, 0])
    assert filter_mask(probs, labels, 0.9).tolist() == [True, False, False, False]
    assert filter_mask(probs, labels, 0.7).tolist() == [True, True, False, False]  # ≥ τ keeps the tie


def test_keeps_exactly_the_confident_samples(trained):
    real, heldout, clf = trained
    few = heldout.subset(np.arange(8))
    p_own = clf.predict_proba(few.images)[np.arange(8), few.labels]  # the hand computation
    tau = float(np.sort(p_own)[4])  # a threshold that keeps exactly the 4 most confident images
    c = build_condition(NAME, real=real, synthetic=few, baseline_classifier=clf, options={"tau": tau, "min_kept": 4})
    expected = np.flatnonzero(p_own >= tau)
    assert len(expected) == 4 and c.n_extra == 4 and len(c.train) == len(real) + 4
    np.testing.assert_array_equal(c.train.images[len(real):], few.images[expected])
    np.testing.assert_array_equal(c.train.labels[len(real):], few.labels[expected])
    per = c.facts["per_class"]
    assert sum(v["kept"] for v in per.values()) == 4 and sum(v["offered"] for v in per.values()) == 8
    assert c.facts["tau"] == tau and c.facts["kept_fraction"] == 0.5 and "note" not in c.facts


def test_real_images_survive_and_label_swapped_ones_are_dropped(trained):
    real, heldout, clf = trained
    kept = build_condition(NAME, real=real, synthetic=heldout, baseline_classifier=clf, options={"tau": 0.7}).facts
    dropped = build_condition(NAME, real=real, synthetic=_swapped(heldout), baseline_classifier=clf,
                              options={"tau": 0.7}).facts
    assert kept["kept_fraction"] > 0.5 > dropped["kept_fraction"]
    # the filter reads the label: it keeps well over twice as many correctly labelled images as swapped ones (the
    # fractions themselves move with the CPU's rounding: 0.675 vs 0.275 on an AMD EPYC, a wider gap on a Xeon)
    assert kept["kept_fraction"] > 2 * dropped["kept_fraction"]


def test_too_few_survivors_is_one_line_and_no_classifier_is_an_error(trained):
    real, heldout, clf = trained
    c = build_condition(NAME, real=real, synthetic=heldout, baseline_classifier=clf,
                        options={"tau": 0.9, "min_kept": len(heldout) + 1})
    assert "\n" not in c.facts["note"] and f"of {len(heldout)} synthetic images" in c.facts["note"]
    with pytest.raises(SynthmedError, match="needs the baseline classifier"):
        build_condition(NAME, real=real, synthetic=heldout)


@pytest.mark.parametrize("with_real", [True, False])
def test_expansion_wires_the_seeds_real_stage_as_the_filter(with_real):
    conds = ["real", NAME] if with_real else [NAME]
    cfg = load_study_config({"conditions": conds, "seeds": [0, 1]}, profile="smoke")
    stages = topological_order(expand_study(cfg))
    real_runs = {s.labels["seed"]: s for s in stages if s.kind == "classify" and s.config["condition"] == "real"}
    filtered = [s for s in stages if s.kind == "classify" and s.config["condition"] == NAME]
    assert sorted(real_runs) == [0, 1] and len(filtered) == 2 * len(cfg.generators)  # one real run per seed, reused
    for s in filtered:
        assert s.inputs["baseline"].key == real_runs[s.labels["seed"]].key
    assert get_condition(NAME).in_default is False and NAME in load_study_config(profile="usage").conditions
    assert NAME not in load_study_config(profile="default").conditions


def test_the_study_sets_tau_and_only_the_filtered_runs_change():
    """synthetic.filter_tau reaches the filtered runs' options (their keys change); every other stage keeps its key."""
    def stages(tau=None):
        syn = {} if tau is None else {"filter_tau": tau}
        cfg = load_study_config({"conditions": ["real", "real+synthetic", NAME], "synthetic": syn}, profile="smoke")
        return {s.name: s for s in topological_order(expand_study(cfg))}

    default, strict = stages(), stages(0.99)
    assert default.keys() == strict.keys()
    for name, s in default.items():
        is_filtered = s.kind == "classify" and s.config["condition"] == NAME
        assert (s.key != strict[name].key) == is_filtered, name
        if is_filtered:
            assert s.config["options"]["tau"] == 0.9 and strict[name].config["options"]["tau"] == 0.99
    with pytest.raises(SynthmedError, match="filter_tau"):
        load_study_config({"synthetic": {"filter_tau": 1.5}}, profile="smoke")
