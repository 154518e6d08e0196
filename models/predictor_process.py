"""The Predictor in a process of its own, for a caller whose other Python work fills the interpreter.

Tokenizing a tweet and looking its chunks up is Python: run in a thread beside `buzzwatch replay`'s
detector, it holds the lock the detector needs, so the two add up on the clock though the machine has
another core. `PredictorProcess` loads the model in a child process (spawned: a fresh interpreter, not a
copy of the parent's threads) and answers `predict_proba` from it, so the caller's thread only waits on
a pipe. The child runs the same `Predictor.predict_proba` on the same texts: the same bits.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
from collections.abc import Sequence
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any

import numpy as np

from models.predictor import ModelLoadError, Predictor

# How long close() waits for the child to finish before it is stopped.
CLOSE_SECONDS = 10.0


def _serve(model_uri: str | None, connection: Connection) -> None:
    """The child: load the model, say what it is (or why it cannot load), then score each list of texts
    until None comes (or the parent is gone). Ctrl-C is the parent's to handle: it ends the child."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        model = Predictor.load(model_uri)
    except ModelLoadError as exc:
        connection.send(exc)
        return
    connection.send((model.labels, model.model_version, model.languages))
    try:
        while (texts := connection.recv()) is not None:
            try:
                connection.send(model.predict_proba(texts))
            except Exception as exc:  # handed to the parent, which raises it
                connection.send(exc)
    except EOFError:  # the parent is gone
        return


class PredictorProcess:
    """`labels`, `model_version`, `languages` and `predict_proba` of a Predictor that runs in a child.

    Started by the constructor, which returns at once (the child loads the model meanwhile); the first
    use waits for it and raises `ModelLoadError` if the model cannot load. One caller at a time. Close it
    (or use it as a context manager) to end the child.
    """

    def __init__(self, model_uri: str | None = None) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child_end = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(model_uri, child_end), name="predictor", daemon=True
        )
        self._process.start()
        child_end.close()
        self._description: tuple[tuple[str, ...], str, tuple[str, ...]] | None = None

    def _described(self) -> tuple[tuple[str, ...], str, tuple[str, ...]]:
        if self._description is None:
            self._description = self._answer()
        return self._description

    def _answer(self) -> Any:
        try:
            answer = self._connection.recv()
        except EOFError:
            raise ModelLoadError("the scoring process ended without an answer") from None
        if isinstance(answer, Exception):
            raise answer
        return answer

    def wait_ready(self) -> None:
        """Wait until the model is loaded; `ModelLoadError` if it cannot be."""
        self._described()

    @property
    def labels(self) -> tuple[str, ...]:
        """The model's labels, in its probabilities' column order."""
        return self._described()[0]

    @property
    def model_version(self) -> str:
        """The model's version."""
        return self._described()[1]

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages the model reads."""
        return self._described()[2]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """`Predictor.predict_proba` of the texts, computed in the child."""
        if isinstance(texts, str):
            raise TypeError("predict_proba takes a sequence of texts, not one string")
        self._described()
        self._connection.send(list(texts))
        return self._answer()

    def close(self) -> None:
        """End the child: asked once it has loaded the model, else (or if it does not end within
        CLOSE_SECONDS) stopped."""
        if self._process.is_alive():
            if self._description is not None:
                with contextlib.suppress(OSError):  # the child is gone already
                    self._connection.send(None)
                self._process.join(CLOSE_SECONDS)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
        self._connection.close()

    def __enter__(self) -> PredictorProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
