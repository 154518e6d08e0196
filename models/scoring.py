"""Batch scoring and evaluation of CSV-shaped tables through the Predictor (no TensorFlow)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from buzzwatch.schema import MAX_TEXT_CHARS
from models.evaluate import evaluation_report
from models.language import gate_for
from models.predictor import Predictor

EMPTY_TEXT_ERROR = "empty text"
LONG_TEXT_ERROR = f"text longer than {MAX_TEXT_CHARS:,} characters"
PREDICTED_LABEL_COLUMN = "predicted_label"
ERROR_COLUMN = "error"
LANGUAGE_COLUMN = "language"
LANGUAGE_SUPPORTED_COLUMN = "language_supported"


def text_error(text: str) -> str:
    """Why a text cannot be scored ('' when it can): the stream's own limits, so every path agrees."""
    if not text.strip():
        return EMPTY_TEXT_ERROR
    if len(text) > MAX_TEXT_CHARS:
        return LONG_TEXT_ERROR
    return ""


def score_columns(labels: tuple[str, ...]) -> list[str]:
    """The columns `score_frame` adds, in order."""
    return [
        PREDICTED_LABEL_COLUMN,
        *(f"p_{label}" for label in labels),
        LANGUAGE_COLUMN,
        LANGUAGE_SUPPORTED_COLUMN,
        ERROR_COLUMN,
    ]


def evaluate_frame(predictor: Predictor, frame: pd.DataFrame) -> dict[str, Any]:
    """The evaluation report on a text,label table, over the scoreable rows and the classes present.

    Rows whose text cannot be scored (empty, over-long) are left out and counted in `skipped`; macro
    averages and `per_class` cover only the classes present in the labels, the others are listed in
    `absent_labels` (a class with no example has no recall, so averaging its 0 in would mislead).
    """
    texts = frame["text"].fillna("").astype(str).tolist()
    labels = [str(label).strip().lower() for label in frame["label"]]
    unknown = sorted(set(labels) - set(predictor.labels))
    if unknown:  # quoted and placed, so an empty label reads '' (data row 3), not nothing
        first_row = {label: row for row, label in reversed(list(enumerate(labels, start=1)))}
        found = ", ".join(f"{label!r} (data row {first_row[label]})" for label in unknown[:5])
        raise ValueError(f"labels must be one of {', '.join(predictor.labels)}; found {found}")
    errors = [text_error(text) for text in texts]
    kept = [row for row, error in enumerate(errors) if not error]
    if not kept:
        raise ValueError("no rows to evaluate" if not texts else "no row has a text that can be scored")
    winners = predictor.predict_proba([texts[row] for row in kept]).argmax(axis=1)
    predicted = [predictor.labels[winner] for winner in winners]
    report = evaluation_report([labels[row] for row in kept], predicted, predictor.labels)
    present = [label for label in predictor.labels if report["per_class"][label]["support"] > 0]
    report["per_class"] = {label: report["per_class"][label] for label in present}
    report["macro_f1"] = float(np.mean([scores["f1"] for scores in report["per_class"].values()]))
    report["macro_recall"] = float(np.mean([scores["recall"] for scores in report["per_class"].values()]))
    report["absent_labels"] = [label for label in predictor.labels if label not in present]
    report["skipped"] = dict(Counter(error for error in errors if error))
    return report


def score_frame(
    predictor: Predictor, frame: pd.DataFrame, *, batch_size: int = 1024, progress: bool = False
) -> pd.DataFrame:
    """The table with the `score_columns` added (a language the model does not read is flagged).

    Raises ValueError when the table already has one of those columns: an input column is never replaced.
    """
    from tqdm import tqdm

    taken = [column for column in score_columns(predictor.labels) if column in frame.columns]
    if taken:
        raise ValueError(
            f"the input already has the column(s) {', '.join(taken)} that scoring adds; an input column is "
            "never overwritten: rename or drop them first"
        )
    texts = frame["text"].fillna("").astype(str).tolist()
    scored = frame.copy()
    labels_out = [""] * len(texts)
    errors = [text_error(text) for text in texts]
    probabilities = np.full((len(texts), len(predictor.labels)), np.nan, dtype=np.float32)
    valid_rows = [row for row, error in enumerate(errors) if not error]
    with tqdm(total=len(valid_rows), unit="tweet", disable=not progress, desc="scoring") as bar:
        for start in range(0, len(valid_rows), batch_size):
            rows = valid_rows[start : start + batch_size]
            batch = predictor.predict_proba([texts[row] for row in rows])
            probabilities[rows] = batch
            for row, winner in zip(rows, batch.argmax(axis=1), strict=True):
                labels_out[row] = predictor.labels[winner]
            bar.update(len(rows))
    scored[PREDICTED_LABEL_COLUMN] = labels_out
    for position, label in enumerate(predictor.labels):
        scored[f"p_{label}"] = [
            "" if np.isnan(value) else f"{value:.6f}" for value in probabilities[:, position]
        ]
    languages = gate_for(predictor).identify_many(texts)
    scored[LANGUAGE_COLUMN] = [language.code for language in languages]
    scored[LANGUAGE_SUPPORTED_COLUMN] = [language.supported for language in languages]
    scored[ERROR_COLUMN] = errors
    return scored
