"""Classification metrics on hand-computed cases; plots, JSON and the table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synthmed.errors import DataFormatError
from synthmed.metrics.classification import (
    classification_metrics,
    format_metrics_table,
    plot_confusion_matrix,
    write_metrics,
)


@pytest.fixture
def binary_case():
    # pred = [0, 1, 0, 1, 1]; AUC: 5 of the 6 (positive, negative) pairs are ordered right
    y = np.array([0, 0, 1, 1, 1])
    pos = np.array([0.1, 0.6, 0.4, 0.8, 0.9])
    return y, np.stack([1 - pos, pos], axis=1)


@pytest.fixture
def three_class_case():
    y = np.array([0, 1, 2, 2])
    proba = np.array([[0.7, 0.2, 0.1], [0.3, 0.4, 0.3], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7]])  # pred 0, 1, 1, 2
    return y, proba


def test_binary_metrics_match_hand_computed_values(binary_case):
    m = classification_metrics(*binary_case, ["normal", "pneumonia"])
    assert m["n"] == 5
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m["macro_f1"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m["roc_auc"] == pytest.approx(5 / 6)
    assert m["confusion_matrix"] == [[1, 1], [1, 2]]
    assert m["per_class"]["normal"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert m["per_class"]["pneumonia"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})


def test_three_class_metrics_match_hand_computed_values(three_class_case):
    from sklearn.metrics import roc_auc_score

    y, proba = three_class_case
    m = classification_metrics(y, proba, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["balanced_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    # one-vs-rest: a = 1, b = 2/3, c = (1 + 0.5 (tie) + 1 + 1) / 4
    assert m["roc_auc_per_class"] == pytest.approx({"a": 1.0, "b": 2 / 3, "c": 0.875})
    assert m["roc_auc"] == pytest.approx((1 + 2 / 3 + 0.875) / 3)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, proba, multi_class="ovr", average="macro"))


def test_class_absent_from_y_true_gets_no_auc_and_is_left_out_of_the_macro_auc():
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1]])
    m = classification_metrics(y, proba, ["a", "b", "c"])
    assert m["roc_auc_per_class"]["c"] is None
    assert m["roc_auc"] == pytest.approx(np.mean([m["roc_auc_per_class"]["a"], m["roc_auc_per_class"]["b"]]))
    assert m["per_class"]["c"]["support"] == 0
    assert m["balanced_accuracy"] == pytest.approx((1 / 2 + 1 / 2) / 2)  # over the classes present


def test_auc_is_none_when_only_one_class_is_present():
    m = classification_metrics(np.array([1, 1]), np.array([[0.2, 0.8], [0.6, 0.4]]), ["n", "p"])
    assert m["roc_auc"] is None
    assert m["accuracy"] == pytest.approx(0.5)


@pytest.mark.parametrize("y, proba, match", [
    (np.array([0, 1]), np.array([[0.5, 0.5]]), "N = 1"),
    (np.array([0, 3]), np.array([[0.5, 0.5], [0.5, 0.5]]), r"\[0, 1\]"),
    (np.array([0, 1]), np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]]), r"\(N, 2\)"),
    (np.array([0, 1]), np.array([[np.nan, 0.5], [0.5, 0.5]]), "NaN"),
])
def test_bad_metric_inputs_raise_one_line_errors(y, proba, match):
    with pytest.raises(DataFormatError, match=match):
        classification_metrics(y, proba, ["n", "p"])


def test_metrics_json_png_and_table_are_written(tmp_path, three_class_case):
    m = classification_metrics(*three_class_case, ["a", "b", "c"])
    path = write_metrics(m, tmp_path)
    assert json.loads(path.read_text())["confusion_matrix"] == m["confusion_matrix"]
    png = plot_confusion_matrix(m["confusion_matrix"], m["class_names"], tmp_path / "cm.png", title="t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp"))
    table = format_metrics_table(m)
    assert "macro_f1" in table and "0.778" in table and "balanced_accuracy" in table
