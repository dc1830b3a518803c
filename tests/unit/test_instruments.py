"""One-call instrument report on real PneumoniaMNIST: a perfect generator and a label-blind copier."""

from __future__ import annotations

import json

import numpy as np

from synthmed.metrics.instruments import instrument_report

NAMES = ("normal", "pneumonia")


def _run(synthetic, sets):
    from _instrument_data import features, proba

    return instrument_report(synthetic, (sets["H"].images, sets["H"].labels), (sets["R"].images, sets["R"].labels),
                             sets["train"].images, NAMES, featurize=features, predict_proba=proba, n_subsets=15,
                             n_boot=150, per_class=False)


def test_perfect_generator_headline(data_dir):
    from _instrument_data import design

    sets, _ = design()
    out = _run((sets["H2"].images, sets["H2"].labels), sets)
    head = out["headline"]
    assert head["metrics_at_floor"] == head["metrics_total"] == 6
    assert head["fd_floor_ratio_ci"][0] <= head["fd_ratio"] <= head["fd_floor_ratio_ci"][1]
    assert head["faithfulness"] == "faithful" and not head["copies_above_null"]
    assert head["n_synthetic"] == head["n_heldout"] == head["n_reference"] == 300
    json.dumps(out)  # plain JSON all the way down


def test_label_blind_copier_headline(data_dir):
    from _instrument_data import design

    sets, _ = design()
    train = sets["train"]
    rng = np.random.default_rng(0)
    images = np.repeat(train.images, 3, axis=0)  # 300 near-copies of the 100 k-shot images
    images = np.clip(images + rng.normal(0, 2, images.shape), 0, 255).astype(np.uint8)
    labels = rng.permutation(np.repeat(train.labels, 3))  # ... with their labels shuffled
    head = _run((images, labels), sets)["headline"]
    assert head["copies_above_null"] and head["flag_rate"] >= 0.95 and head["train_copied"] == 1.0
    assert head["faithfulness"] == "label-blind"
