"""Batch scoring and evaluation of CSV-shaped tables through the Predictor (no TensorFlow)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from models.evaluate import evaluation_report
from models.predictor import Predictor

EMPTY_TEXT_ERROR = "empty text"


def evaluate_frame(predictor: Predictor, frame: pd.DataFrame) -> dict[str, Any]:
    """The evaluation report of the predictor on a table with text,label columns."""
    labels = [str(label).strip().lower() for label in frame["label"]]
    unknown = sorted(set(labels) - set(predictor.labels))
    if unknown:
        raise ValueError(
            f"labels must be one of {', '.join(predictor.labels)}; found {', '.join(unknown[:5])}"
        )
    if not labels:
        raise ValueError("no rows to evaluate")
    winners = predictor.predict_proba(frame["text"].tolist()).argmax(axis=1)
    return evaluation_report(labels, [predictor.labels[winner] for winner in winners], predictor.labels)


def score_frame(
    predictor: Predictor, frame: pd.DataFrame, *, batch_size: int = 1024, progress: bool = False
) -> pd.DataFrame:
    """The table with label, p_<label> and error columns added; empty texts get an error, not a score."""
    from tqdm import tqdm

    texts = frame["text"].fillna("").astype(str).tolist()
    scored = frame.copy()
    labels_out = [""] * len(texts)
    errors = [""] * len(texts)
    probabilities = np.full((len(texts), len(predictor.labels)), np.nan, dtype=np.float32)
    valid_rows = [row for row, text in enumerate(texts) if text.strip()]
    for row, text in enumerate(texts):
        if not text.strip():
            errors[row] = EMPTY_TEXT_ERROR
    with tqdm(total=len(valid_rows), unit="tweet", disable=not progress, desc="scoring") as bar:
        for start in range(0, len(valid_rows), batch_size):
            rows = valid_rows[start : start + batch_size]
            batch = predictor.predict_proba([texts[row] for row in rows])
            probabilities[rows] = batch
            for row, winner in zip(rows, batch.argmax(axis=1), strict=True):
                labels_out[row] = predictor.labels[winner]
            bar.update(len(rows))
    scored["label"] = labels_out
    for position, label in enumerate(predictor.labels):
        scored[f"p_{label}"] = [
            "" if np.isnan(value) else f"{value:.6f}" for value in probabilities[:, position]
        ]
    scored["error"] = errors
    return scored
