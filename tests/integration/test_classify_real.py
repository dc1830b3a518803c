"""The baseline classifier on the real 50-shot PneumoniaMNIST split, metrics on the real test set."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthmed.classify import ClassifierConfig, train_classifier
from synthmed.metrics.classification import SCALAR_KEYS, evaluate_classifier

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]


def test_resnet18_few_steps_on_real_50shot_gives_metrics_on_the_real_test_set(pneumonia_50shot):
    train, val, test = pneumonia_50shot["train"], pneumonia_50shot["val"], pneumonia_50shot["test"]
    clf = train_classifier(train, val, ClassifierConfig(model="resnet18", max_steps=6, eval_every=3, seed=0))
    assert clf.steps_done <= 6 and len(clf.history) >= 1
    m = evaluate_classifier(clf, test)
    assert m["n"] == len(test) == 624
    for key in SCALAR_KEYS:
        assert 0.0 <= m[key] <= 1.0, key
    assert set(m["per_class"]) == {"normal", "pneumonia"}
    assert sum(r["support"] for r in m["per_class"].values()) == 624
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (2, 2) and cm.sum() == 624
    assert cm.sum(axis=1).tolist() == np.bincount(test.labels, minlength=2).tolist()


def test_run_classify_writes_metrics_plot_split_and_checkpoint(data_dir, tmp_path):
    pytest.importorskip("synthmed.data.splits", reason="the data/split layer is not in this tree yet")
    from synthmed.classify import TrainedClassifier
    from synthmed.study import commands

    m = commands.classify("pneumoniamnist", shots=50, model="resnet18", seed=0, out_dir=tmp_path, data_dir=data_dir,
                          progress=False, max_steps=4, eval_every=2)
    for name in ("metrics.json", "confusion_matrix.png", "split.json", "classifier.pt"):
        assert (tmp_path / name).exists(), name
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["run"]["n_train"] == 100 and saved["run"]["steps_done"] <= 4
    assert np.array(saved["confusion_matrix"]).sum() == saved["run"]["n_test"] == m["n"]
    split = json.loads((tmp_path / "split.json").read_text())
    assert len(split["indices"]["train"]) == 100
    clf = TrainedClassifier.load(tmp_path / "classifier.pt")
    assert clf.checksum == saved["run"]["classifier_checksum"]
