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
    true_positive, support, precision, recall, f1 = (part[0] for part in _per_class(matrix[None]))
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


def expected_calibration_error(probabilities: np.ndarray, label_ids: np.ndarray, bins: int = 15) -> float:
    """ECE: |accuracy - confidence| of the top label, averaged over equal-width confidence bins."""
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == label_ids).astype(float)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    total = 0.0
    for bin_id in range(bins):
        inside = which == bin_id
        if inside.any():
            total += inside.sum() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total / max(1, len(label_ids)))


def _per_class(matrices: np.ndarray) -> tuple[np.ndarray, ...]:
    """True positives, support, precision, recall and F1 per class of a stack of confusion matrices (k, c, c).

    A class never predicted (or never present) scores 0 precision (or recall), not NaN.
    """
    true_positive = np.diagonal(matrices, axis1=1, axis2=2).astype(float)
    support = matrices.sum(axis=2)
    predicted = matrices.sum(axis=1)
    precision = np.divide(true_positive, predicted, out=np.zeros_like(true_positive), where=predicted > 0)
    recall = np.divide(true_positive, support, out=np.zeros_like(true_positive), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(both), where=both > 0)
    return true_positive, support, precision, recall, f1


def _macro_scores(matrices: np.ndarray) -> dict[str, np.ndarray]:
    """Macro-F1, macro recall, accuracy and the first class's recall (LABELS: negative; what makes alerts
    late when it is low) of a stack of confusion matrices (k, c, c)."""
    true_positive, _, _, recall, f1 = _per_class(matrices)
    return {
        "macro_f1": f1.mean(axis=1),
        "macro_recall": recall.mean(axis=1),
        "accuracy": true_positive.sum(axis=1) / matrices.sum(axis=(1, 2)),
        "negative_recall": recall[:, 0],
    }


def paired_bootstrap(
    true_ids: np.ndarray,
    predicted_ids: np.ndarray,
    baseline_ids: np.ndarray | None = None,
    n_classes: int = len(LABELS),
    resamples: int = 1000,  # a multiple of 100
    seed: int = 0,
) -> dict[str, tuple[float, float, float]]:
    """(value, 2.5th, 97.5th percentile) of macro-F1, macro recall, accuracy and negative recall over
    bootstrap resamples of the rows; with `baseline_ids`, of the difference (predicted - baseline) on the
    same resamples."""
    true_ids, predicted_ids = np.asarray(true_ids), np.asarray(predicted_ids)
    rng = np.random.default_rng(seed)

    def scores(sample: np.ndarray) -> dict[str, np.ndarray]:
        offsets = np.arange(len(sample))[:, None] * n_classes * n_classes
        out = {}
        for name, ids in (("model", predicted_ids), ("baseline", baseline_ids)):
            if ids is None:
                continue
            cells = true_ids[sample] * n_classes + np.asarray(ids)[sample] + offsets
            counts = np.bincount(cells.ravel(), minlength=len(sample) * n_classes * n_classes)
            out[name] = _macro_scores(counts.reshape(len(sample), n_classes, n_classes))
        if baseline_ids is None:
            return out["model"]
        return {key: out["model"][key] - out["baseline"][key] for key in out["model"]}

    point = scores(np.arange(len(true_ids))[None, :])
    chunks = [
        scores(rng.integers(0, len(true_ids), size=(100, len(true_ids)))) for _ in range(resamples // 100)
    ]
    spread = {key: np.concatenate([chunk[key] for chunk in chunks]) for key in point}
    return {
        key: (float(point[key][0]), *(float(v) for v in np.percentile(spread[key], [2.5, 97.5])))
        for key in point
    }


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
