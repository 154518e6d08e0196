"""Helpers shared by the API and UI tests: a tiny real predictor and a real HTTP server in a thread."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from werkzeug.serving import make_server

from buzzwatch.schema import LABELS

API_KEY = "test-key-0123456789"
APP_TOKEN = "test-app-token-9876543210"

NEGATIVE_WORDS = frozenset({"bad", "awful", "late", "delayed", "lost", "rude", "worst", "hate", "cancelled"})
POSITIVE_WORDS = frozenset({"good", "great", "love", "thanks", "amazing", "best", "awesome", "nice"})


@dataclass(frozen=True)
class TinyPrediction:
    """Same fields as models.predictor.Prediction."""

    label: str
    probabilities: dict[str, float]
    model_version: str


class LexiconPredictor:
    """A small real Predictor-compatible model: word-list scores through a softmax."""

    def __init__(self) -> None:
        self.model_version = "lexicon-test-1"
        self.labels: tuple[str, ...] = LABELS
        self.metrics: dict[str, Any] = {
            "macro_f1": 0.5,
            "accuracy": 0.6,
            "confusion_matrix": [[5, 1, 0], [1, 4, 1], [0, 1, 5]],
        }

    def predict_proba(self, texts: Sequence[str]) -> list[list[float]]:
        """One probability row per text, in LABELS order."""
        rows = []
        for text in texts:
            words = [word.strip(".,!?") for word in text.lower().split()]
            negative = sum(word in NEGATIVE_WORDS for word in words)
            positive = sum(word in POSITIVE_WORDS for word in words)
            logits = [2.0 * negative, 0.5, 2.0 * positive]
            top = max(logits)
            exps = [math.exp(value - top) for value in logits]
            rows.append([value / sum(exps) for value in exps])
        return rows

    def predict(self, texts: Sequence[str]) -> list[TinyPrediction]:
        """One prediction per text."""
        predictions = []
        for row in self.predict_proba(texts):
            label = self.labels[row.index(max(row))]
            predictions.append(
                TinyPrediction(label, dict(zip(self.labels, row, strict=True)), self.model_version)
            )
        return predictions


class FakeClock:
    """A clock the drift tests move by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class RecordingSleep:
    """The store's `sleep`: keeps each wait (seconds), then waits for real."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(seconds)


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Serve a WSGI app on a free loopback port for the duration; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # Checked for shutdown every 0.05 s: the default 0.5 s made each test's teardown wait about that long.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
