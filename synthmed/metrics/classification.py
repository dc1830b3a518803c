"""Classification metrics (scikit-learn): accuracy, balanced accuracy, macro-F1, per-class report,
ROC-AUC (binary and one-vs-rest), confusion matrix; JSON, PNG and table output.

Result keys are constants here; the report and the study import them instead of retyping strings.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from synthmed.errors import DataFormatError
from synthmed.utils.io import write_bytes_atomic, write_json_atomic

KEY_N = "n"
KEY_CLASS_NAMES = "class_names"
KEY_ACCURACY = "accuracy"
KEY_BALANCED_ACCURACY = "balanced_accuracy"
KEY_MACRO_F1 = "macro_f1"
KEY_ROC_AUC = "roc_auc"
KEY_ROC_AUC_PER_CLASS = "roc_auc_per_class"
KEY_PER_CLASS = "per_class"
KEY_CONFUSION = "confusion_matrix"
SCALAR_KEYS = (KEY_ACCURACY, KEY_BALANCED_ACCURACY, KEY_MACRO_F1, KEY_ROC_AUC)
METRICS_FILE = "metrics.json"


def _check(y_true: np.ndarray, proba: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != k:
        raise DataFormatError(f"proba must be (N, {k}) for {k} class names; got shape {p.shape}")
    if y.ndim != 1 or len(y) != len(p):
        raise DataFormatError(f"y_true must be (N,) with N = {len(p)} rows of proba; got shape {y.shape}")
    if len(y) == 0:
        raise DataFormatError("cannot compute metrics on 0 images; pass a non-empty test set")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= k:
        raise DataFormatError(f"y_true must hold integer labels in [0, {k - 1}]; got {y.dtype} values {y.min()}..{y.max()}")
    if not np.all(np.isfinite(p)):
        raise DataFormatError("proba holds NaN/Inf; the classifier diverged (lower its learning rate)")
    return y.astype(np.int64), p


def _auc_or_none(is_pos: np.ndarray, score: np.ndarray) -> float | None:
    """ROC-AUC of one binary problem; None when y has a single class (AUC is undefined)."""
    from sklearn.metrics import roc_auc_score

    if is_pos.all() or not is_pos.any():
        return None
    return float(roc_auc_score(is_pos, score))


def roc_auc(y_true: np.ndarray, proba: np.ndarray) -> tuple[float | None, list[float | None]]:
    """ROC-AUC: binary → on the positive-class probability; K > 2 → one-vs-rest macro average.

    A class absent from ``y_true`` has no defined one-vs-rest AUC: it gets None and the macro
    average runs over the classes present (sklearn's ``multi_class="ovr"`` raises instead).

    Returns:
        (AUC or None when fewer than two classes are present, per-class one-vs-rest AUCs)
    """
    k = proba.shape[1]
    per_class = [_auc_or_none(y_true == c, proba[:, c]) for c in range(k)]
    if k == 2:
        return per_class[1], per_class
    present = [a for a in per_class if a is not None]
    return (float(np.mean(present)) if present else None), per_class


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, class_names: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Every classification metric of one prediction set, JSON-ready.

    Args:
        y_true: ``(N,)`` int labels in ``[0, K)``.
        proba: ``(N, K)`` class probabilities (rows sum to 1); the prediction is the argmax.
        class_names: the K class names, in label order.

    Returns:
        ``{"n", "class_names", "accuracy", "balanced_accuracy", "macro_f1", "roc_auc",
        "roc_auc_per_class", "per_class": {name: {precision, recall, f1, support}},
        "confusion_matrix": K x K list (rows = true, columns = predicted)}``. Undefined values
        (AUC with one class present) are None.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    names = [str(c) for c in class_names]
    k = len(names)
    y, p = _check(y_true, proba, k)
    labels = np.arange(k)
    pred = p.argmax(axis=1)
    prec, rec, f1, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    present = support > 0
    auc, auc_per_class = roc_auc(y, p)
    return {
        KEY_N: int(len(y)),
        KEY_CLASS_NAMES: names,
        KEY_ACCURACY: float(accuracy_score(y, pred)),
        # mean recall over the classes present (sklearn's balanced_accuracy_score, which warns on absent classes)
        KEY_BALANCED_ACCURACY: float(rec[present].mean()),
        KEY_MACRO_F1: float(f1.mean()),  # over all K classes: a class never predicted nor present scores 0
        KEY_ROC_AUC: auc,
        KEY_ROC_AUC_PER_CLASS: dict(zip(names, auc_per_class)),
        KEY_PER_CLASS: {
            n: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]), "support": int(support[i])}
            for i, n in enumerate(names)
        },
        KEY_CONFUSION: confusion_matrix(y, pred, labels=labels).tolist(),
    }


def evaluate_classifier(clf, test) -> dict[str, Any]:
    """Metrics of a trained classifier on a labelled test set.

    Args:
        clf: a ``TrainedClassifier`` (anything with ``predict_proba`` and ``class_names``).
        test: ``LabeledImages`` with the classifier's classes.
    """
    names = tuple(getattr(clf, "class_names", test.class_names))
    if tuple(test.class_names) != names:
        raise DataFormatError(
            f"test set classes {list(test.class_names)} differ from the classifier's {list(names)}; "
            "evaluate on the dataset the classifier was trained on"
        )
    return classification_metrics(test.labels, clf.predict_proba(test.images), names)


def write_metrics(metrics: dict[str, Any], out_dir: str | os.PathLike, name: str = METRICS_FILE) -> Path:
    """Write ``metrics`` as JSON to ``out_dir/name`` atomically; returns the path."""
    return write_json_atomic(Path(out_dir) / name, metrics)


def plot_confusion_matrix(cm, class_names, path: str | os.PathLike, title: str | None = None) -> Path:
    """Draw a confusion matrix (counts, rows = true class) and write it as PNG atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from sklearn.metrics import ConfusionMatrixDisplay

    cm = np.asarray(cm)
    k = len(class_names)
    side = max(4.0, 2.5 + 0.6 * k)  # inches; wide enough for a one-line title
    fig = Figure(figsize=(side, side), dpi=100)  # a bare Figure: no pyplot global state, Agg backend
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ConfusionMatrixDisplay(cm, display_labels=list(class_names)).plot(
        ax=ax, cmap="Blues", colorbar=False, values_format="d", xticks_rotation=45 if k > 3 else "horizontal"
    )
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return write_bytes_atomic(path, buf.getvalue())


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def format_metrics_table(metrics: dict[str, Any], title: str = "test metrics") -> str:
    """A plain-text table (rich) of the headline and per-class metrics, for the CLI to print."""
    from rich.console import Console
    from rich.table import Table

    head = Table(title=f"{title} (n={metrics[KEY_N]})", show_header=True)
    head.add_column("metric")
    head.add_column("value", justify="right")
    for key in SCALAR_KEYS:
        head.add_row(key, _fmt(metrics[key]))
    per = Table(show_header=True)
    for col in ("class", "precision", "recall", "f1", "support", "auc (ovr)"):
        per.add_column(col, justify="left" if col == "class" else "right")
    for name, row in metrics[KEY_PER_CLASS].items():
        per.add_row(name, _fmt(row["precision"]), _fmt(row["recall"]), _fmt(row["f1"]), str(row["support"]),
                    _fmt(metrics[KEY_ROC_AUC_PER_CLASS].get(name)))
    console = Console(file=io.StringIO(), width=100, color_system=None, force_terminal=False)
    console.print(head)
    console.print(per)
    return console.file.getvalue()
