"""Pure helpers of The model page: evaluation sections, confusion matrices, feedback tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

HEADLINE = ("macro_f1", "macro_recall", "accuracy")
REPORT_KEYS = (*HEADLINE, "n", "per_class", "confusion_matrix")
# What a reader sees instead of the training's internal names (others: underscores as spaces, capitalised).
READABLE = {
    "macro_f1": "F1, average of the labels",
    "macro_recall": "Recall, average of the labels",
    "accuracy": "Accuracy",
    "n": "Tweets",
    "evaluation": "Evaluation",
    "test": "All sources (test)",
    "airline_test": "Airline tweets (test)",
    "semeval_test": "SemEval (test, general tweets of the training years)",
    "validation": "Validation (all sources)",
    "validation_airline": "Validation (airline tweets)",
    "semeval2016test": "SemEval 2016 (test, general tweets)",
    "tweeteval_val": "TweetEval (validation, general tweets)",
    "selection_score": "Selection score (what chose this model)",
    "behaviour_failures": "Behaviour tests failed",
    "negated_negatives_called_negative": "Negated negatives called negative (of 12)",
    "emoji_only_wrong": "Emoji-only tweets labelled wrong (of 12)",
    "onnx_parity_max_abs": "Largest probability gap, ONNX vs Keras",
    "train_seconds": "Training time (s)",
}


# The sets that chose the model (`models.data.Splits`: the selection split, its airline part, TweetEval val):
# their figures are optimistic; the test sets and SemEval 2016 are the fair estimate.
CHOSEN_ON = frozenset({"validation", "validation_airline", "tweeteval_val"})


def readable(name: str) -> str:
    """A metric or data-set name as a reader sees it (`<set>_ece`: that set's calibration error)."""
    if name not in READABLE and name.endswith("_ece"):
        return f"Calibration error (ECE), {readable(name.removesuffix('_ece'))}"
    return READABLE.get(name) or name.replace("_", " ").capitalize()


def _is_report(value: Any) -> bool:
    return isinstance(value, dict) and any(key in value for key in HEADLINE)


def metric_sections(metrics: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The evaluation reports in the model's metrics, one per data set.

    Three shapes are read: one report at the top level; nested reports (`{set: report}`); and the flat
    keys the training writes into the artifact (`<set>_macro_f1`, `<set>_n`, `<set>_confusion_matrix`...).
    """
    sections = [("evaluation", metrics)] if _is_report(metrics) else []
    sections += [(str(name), value) for name, value in metrics.items() if _is_report(value)]
    flat: dict[str, dict[str, Any]] = {}
    for key, value in metrics.items():
        for suffix in REPORT_KEYS:
            if key.endswith(f"_{suffix}") and not isinstance(value, dict):
                flat.setdefault(key.removesuffix(f"_{suffix}"), {})[suffix] = value
                break
    sections += [(name, report) for name, report in flat.items() if _is_report(report)]
    return sections


def other_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Scalar metrics that belong to no evaluation set (selection score, parity, training time...)."""
    return {
        key: value
        for key, value in metrics.items()
        if isinstance(value, int | float)
        and not isinstance(value, bool)
        and not any(key == suffix or key.endswith(f"_{suffix}") for suffix in REPORT_KEYS)
    }


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
