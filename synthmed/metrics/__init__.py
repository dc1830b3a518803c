"""Metrics: classification (scikit-learn) here; fidelity and memorisation live in their own modules."""

from synthmed.metrics.classification import (
    classification_metrics,
    evaluate_classifier,
    format_metrics_table,
    plot_confusion_matrix,
    write_metrics,
)

__all__ = ["classification_metrics", "evaluate_classifier", "format_metrics_table", "plot_confusion_matrix",
           "write_metrics"]
