"""Pure helpers of the Try it page: probability tables and batch scoring of an uploaded CSV."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pandas as pd

from buzzwatch.schema import is_blank
from streamlit_app.client import ApiClient, ApiError


def probabilities_frame(prediction: dict[str, Any]) -> pd.DataFrame:
    """One row per label with its probability, in the model's label order."""
    probabilities = prediction["probabilities"]
    return pd.DataFrame({"label": list(probabilities), "probability": list(probabilities.values())})


def batches(count: int, size: int) -> Iterator[range]:
    """Consecutive index ranges of at most `size`."""
    for start in range(0, count, size):
        yield range(start, min(start + size, count))


PREDICTED_LABEL = "predicted_label"  # the same column names as `buzzwatch score` (models/scoring.py)
PREDICTION_ID = "prediction_id"
ERROR = "error"


def clashing_columns(frame: pd.DataFrame, labels: Sequence[str]) -> list[str]:
    """The input's columns that scoring would overwrite (an input column is never replaced)."""
    written = {PREDICTED_LABEL, PREDICTION_ID, ERROR, *(f"p_{label}" for label in labels)}
    return [str(column) for column in frame.columns if column in written]


def score_summary(scored: pd.DataFrame) -> str:
    """How many rows were scored, and how many could not be (with where to read why)."""
    total = len(scored)
    done = int(scored[PREDICTED_LABEL].notna().sum())
    if done == total:
        return f"Scored {total} tweet{'s' if total != 1 else ''}."
    return f"Scored {done} of {total} tweets; {total - done} could not be scored (see the `{ERROR}` column)."


ROW_REFUSALS = (400, 413)  # a text the API refuses, a batch too large to send: score the batch one by one


def _score_batch(client: ApiClient, texts: Sequence[str]) -> list[dict[str, Any]]:
    """One prediction (or {"error": why}) per text; ApiError when the API refuses more than a text."""
    try:
        return client.predict(texts)
    except ApiError as exc:
        if exc.status not in ROW_REFUSALS:
            raise
    predictions: list[dict[str, Any]] = []
    for text in texts:  # one bad row must not sink the batch: score the rest one by one
        try:
            predictions.append(client.predict_one(text))
        except ApiError as row_error:
            if row_error.status not in ROW_REFUSALS:
                raise
            predictions.append({"error": row_error.message})
    return predictions


def score_frame(
    client: ApiClient,
    frame: pd.DataFrame,
    batch_size: int,
    on_progress: Callable[[int, int], None] = lambda done, total: None,
) -> pd.DataFrame:
    """Add predicted_label, p_<label>, prediction_id (and error for rows that cannot be scored) to a frame
    with `text`; see `clashing_columns` for input columns of those names.

    When the API stops scoring (a 429 over the rate limit, a 503, unreachable), the rows scored so far are
    kept and each other row's error says why it was not scored.
    """
    texts: Sequence[Any] = frame["text"].tolist()
    result = frame.copy()
    labels: list[str | None] = [None] * len(texts)
    probabilities: list[dict[str, float]] = [{} for _ in texts]
    ids: list[str | None] = [None] * len(texts)
    errors: list[str | None] = [None] * len(texts)
    scoreable = [i for i, text in enumerate(texts) if isinstance(text, str) and not is_blank(text)]
    for i in set(range(len(texts))) - set(scoreable):
        errors[i] = "empty text"
    done = 0
    for window in batches(len(scoreable), batch_size):
        rows = [scoreable[i] for i in window]
        try:
            predictions = _score_batch(client, [texts[row] for row in rows])
        # over the rate limit, the API down: keep what is scored, say why not the rest
        except ApiError as exc:
            for row in scoreable[done:]:
                errors[row] = f"not scored: {exc.message}"
            break
        for row, prediction in zip(rows, predictions, strict=True):
            if "error" in prediction:
                errors[row] = prediction["error"]
                continue
            labels[row] = prediction["label"]
            probabilities[row] = prediction["probabilities"]
            ids[row] = prediction["prediction_id"]
        done += len(rows)
        on_progress(done, len(scoreable))
    result[PREDICTED_LABEL] = labels
    for label in sorted({name for row in probabilities for name in row}):
        result[f"p_{label}"] = [row.get(label) for row in probabilities]
    result[PREDICTION_ID] = ids
    if any(errors):
        result[ERROR] = errors
    return result
