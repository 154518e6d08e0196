"""The evaluation report every BuzzWatch model is judged by (also `buzzwatch evaluate --json`'s output).

`evaluation_report(y_true, y_pred, labels)` returns exactly:
`{"accuracy", "macro_f1", "macro_recall", "n", "per_class": {label: {"precision", "recall", "f1",
"support"}}}`. Macro averages are unweighted means over `labels` (SemEval-2017 Task 4A ranks by macro
recall); a class never predicted has precision 0, a class absent from `y_true` has recall 0.
Pure numpy; matplotlib is imported only by `write_confusion_matrix_png`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from buzzwatch.schema import LABELS


def confusion_matrix(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] = LABELS
) -> np.ndarray:
    """Counts, rows = true label, columns = predicted label, both in `labels` order."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels must be distinct: {list(labels)}")
    index = {label: position for position, label in enumerate(labels)}
    unknown = sorted({str(label) for label in (*y_true, *y_pred) if label not in index})
    if unknown:
        raise ValueError(f"labels outside {list(labels)}: {unknown[:5]}")
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    if len(y_true):
        np.add.at(matrix, ([index[label] for label in y_true], [index[label] for label in y_pred]), 1)
    return matrix


def report_from_matrix(matrix: np.ndarray, labels: Sequence[str] = LABELS) -> dict:
    """The evaluation report from a confusion matrix (see the module docstring for the shape)."""
    matrix = np.asarray(matrix, dtype=np.int64)
    total = int(matrix.sum())
    if total == 0:
        raise ValueError("cannot evaluate zero predictions")
    true_positive = np.diag(matrix).astype(float)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = np.divide(true_positive, predicted, out=np.zeros_like(true_positive), where=predicted > 0)
    recall = np.divide(true_positive, support, out=np.zeros_like(true_positive), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(both), where=both > 0)
    return {
        "accuracy": float(true_positive.sum() / total),
        "macro_f1": float(f1.mean()),
        "macro_recall": float(recall.mean()),
        "n": total,
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
    }


def evaluation_report(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] = LABELS) -> dict:
    """Accuracy, macro-F1, macro recall, n and per-class precision/recall/F1/support."""
    return report_from_matrix(confusion_matrix(y_true, y_pred, labels), labels)


def format_report(report: dict) -> str:
    """A short human-readable table of a report, for logs and terminals."""
    lines = [
        f"n={report['n']}  accuracy={report['accuracy']:.4f}  macro_f1={report['macro_f1']:.4f}  "
        f"macro_recall={report['macro_recall']:.4f}",
        f"{'label':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}",
    ]
    for label, scores in report["per_class"].items():
        lines.append(
            f"{label:<12}{scores['precision']:>10.4f}{scores['recall']:>10.4f}{scores['f1']:>10.4f}"
            f"{scores['support']:>10}"
        )
    return "\n".join(lines)


def write_confusion_matrix_png(
    matrix: np.ndarray, path: str | Path, labels: Sequence[str] = LABELS, title: str | None = None
) -> Path:
    """Save a confusion-matrix heat map (counts and row-normalised shares) as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    matrix = np.asarray(matrix)
    rows = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    figure, axes = plt.subplots(figsize=(1.4 * len(labels) + 2, 1.2 * len(labels) + 1.5), dpi=100)
    try:
        axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        axes.set_xticks(range(len(labels)), labels=list(labels))
        axes.set_yticks(range(len(labels)), labels=list(labels))
        axes.set_xlabel("predicted")
        axes.set_ylabel("true")
        if title:
            axes.set_title(title)
        for i in range(len(labels)):
            for j in range(len(labels)):
                colour = "white" if shares[i, j] > 0.5 else "black"
                axes.text(j, i, f"{matrix[i, j]}\n{shares[i, j]:.0%}", ha="center", va="center", color=colour)
        figure.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path)
    finally:
        plt.close(figure)
    return path
