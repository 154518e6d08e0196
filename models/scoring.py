"""Batch scoring and evaluation of CSV rows through the Predictor, chunk by chunk (no TensorFlow)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from buzzwatch.replay import CsvRow
from buzzwatch.schema import MAX_TEXT_CHARS, is_blank
from models.evaluate import confusion_matrix, report_from_matrix
from models.language import gate_for
from models.predictor import Predictor

EMPTY_TEXT_ERROR = "empty text"
LONG_TEXT_ERROR = f"text longer than {MAX_TEXT_CHARS:,} characters"
PREDICTED_LABEL_COLUMN = "predicted_label"
ERROR_COLUMN = "error"
LANGUAGE_COLUMN = "language"
LANGUAGE_SUPPORTED_COLUMN = "language_supported"
# Rows `buzzwatch evaluate` reads and scores at a time: what its memory grows with, not the file.
SCORING_BATCH = 1024


def text_error(text: str) -> str:
    """Why a text cannot be scored ('' when it can): the stream's own limits, so every path agrees."""
    if is_blank(text):
        return EMPTY_TEXT_ERROR
    if len(text) > MAX_TEXT_CHARS:
        return LONG_TEXT_ERROR
    return ""


def score_columns(labels: tuple[str, ...]) -> list[str]:
    """The columns `scored_chunks` adds, in order."""
    return [
        PREDICTED_LABEL_COLUMN,
        *(f"p_{label}" for label in labels),
        LANGUAGE_COLUMN,
        LANGUAGE_SUPPORTED_COLUMN,
        ERROR_COLUMN,
    ]


def clashing_columns(header: Sequence[str], labels: tuple[str, ...]) -> list[str]:
    """The `score_columns` the input already has: scoring never replaces an input column."""
    return [column for column in score_columns(labels) if column in header]


def evaluate_rows(predictor: Predictor, chunks: Iterable[Sequence[CsvRow]]) -> dict[str, Any]:
    """The evaluation report on text,label rows (read chunk by chunk), over the scoreable rows and the
    classes present.

    Rows whose text cannot be scored (empty, over-long) are left out and counted in `skipped`; macro
    averages and `per_class` cover only the classes present in the labels, the others are listed in
    `absent_labels` (a class with no example has no recall, so averaging its 0 in would mislead). A label
    outside the model's is a ValueError naming the first few and their lines (after it, rows are only read).
    """
    matrix = np.zeros((len(predictor.labels), len(predictor.labels)), dtype=np.int64)
    skipped: Counter[str] = Counter()
    unknown: dict[str, int] = {}  # label -> the line of its first row (the first few labels)
    rows_read = 0
    for chunk in chunks:
        rows_read += len(chunk)
        labels = [row.values.get("label", "").strip().lower() for row in chunk]
        for row, label in zip(chunk, labels, strict=True):
            if label not in predictor.labels and label not in unknown and len(unknown) < 5:
                unknown[label] = row.line
        if unknown:
            continue
        texts = [row.values.get("text", "") for row in chunk]
        errors = [text_error(text) for text in texts]
        skipped.update(error for error in errors if error)
        kept = [row for row, error in enumerate(errors) if not error]
        if kept:
            winners = predictor.predict_proba([texts[row] for row in kept]).argmax(axis=1)
            predicted = [predictor.labels[winner] for winner in winners]
            matrix += confusion_matrix([labels[row] for row in kept], predicted, predictor.labels)
    if unknown:  # quoted and placed, so an empty label reads '' (line 3), not nothing
        found = ", ".join(f"{label!r} (line {line})" for label, line in sorted(unknown.items()))
        raise ValueError(f"labels must be one of {', '.join(predictor.labels)}; found {found}")
    if not matrix.sum():
        raise ValueError("no rows to evaluate" if not rows_read else "no row has a text that can be scored")
    report = report_from_matrix(matrix, predictor.labels)
    present = [label for label in predictor.labels if report["per_class"][label]["support"] > 0]
    report["per_class"] = {label: report["per_class"][label] for label in present}
    report["macro_f1"] = float(np.mean([scores["f1"] for scores in report["per_class"].values()]))
    report["macro_recall"] = float(np.mean([scores["recall"] for scores in report["per_class"].values()]))
    report["absent_labels"] = [label for label in predictor.labels if label not in present]
    report["skipped"] = dict(skipped)
    return report


def scored_chunks(
    predictor: Predictor,
    chunks: Iterable[Sequence[Sequence[str]]],
    text_column: int,
    *,
    progress: bool = False,
) -> Iterator[list[list[object]]]:
    """Each chunk of rows (cells in header order, the text at `text_column`) with the `score_columns` added.

    A language the model does not read is flagged; a text that cannot be scored gets its error and no label.
    """
    from tqdm import tqdm

    gate = gate_for(predictor)
    with tqdm(unit="tweet", disable=not progress, desc="scoring") as bar:
        for chunk in chunks:
            texts = [cells[text_column] for cells in chunk]
            errors = [text_error(text) for text in texts]
            valid_rows = [row for row, error in enumerate(errors) if not error]
            labels_out = [""] * len(texts)
            probabilities = np.full((len(texts), len(predictor.labels)), np.nan, dtype=np.float32)
            if valid_rows:
                batch = predictor.predict_proba([texts[row] for row in valid_rows])
                probabilities[valid_rows] = batch
                for row, winner in zip(valid_rows, batch.argmax(axis=1), strict=True):
                    labels_out[row] = predictor.labels[winner]
            shown = [["" if np.isnan(value) else f"{value:.6f}" for value in row] for row in probabilities]
            languages = gate.identify_many(texts)
            yield [
                [*cells, label, *row_probabilities, language.code, language.supported, error]
                for cells, label, row_probabilities, language, error in zip(
                    chunk, labels_out, shown, languages, errors, strict=True
                )
            ]
            bar.update(len(valid_rows))
