"""Pure helpers of The model page: evaluation sections, confusion matrices, feedback tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

HEADLINE = ("macro_f1", "macro_recall", "accuracy")


def _is_report(value: Any) -> bool:
    return isinstance(value, dict) and any(key in value for key in HEADLINE)


def metric_sections(metrics: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The evaluation reports in the model's metrics: the top level, or one per data set when nested."""
    sections = [("evaluation", metrics)] if _is_report(metrics) else []
    sections += [(str(name), value) for name, value in metrics.items() if _is_report(value)]
    return sections


def per_class_frame(report: dict[str, Any]) -> pd.DataFrame | None:
    """Precision, recall, F1 and support per label, when the report has them."""
    per_class = report.get("per_class")
    if not isinstance(per_class, dict) or not per_class:
        return None
    return pd.DataFrame(per_class).T


def confusion_frame(matrix: Any, labels: Sequence[str]) -> pd.DataFrame | None:
    """Long form (true, predicted, count) of a square confusion matrix in label order, or None."""
    if not isinstance(matrix, list) or len(matrix) != len(labels):
        return None
    if not all(isinstance(row, list) and len(row) == len(labels) for row in matrix):
        return None
    return pd.DataFrame(
        [
            {"true": true_label, "predicted": predicted_label, "count": matrix[i][j]}
            for i, true_label in enumerate(labels)
            for j, predicted_label in enumerate(labels)
        ]
    )


def feedback_frame(stats: dict[str, Any]) -> pd.DataFrame:
    """Feedback as (predicted, correct, count) rows."""
    return pd.DataFrame(stats.get("pairs") or [], columns=["predicted", "correct", "count"])
