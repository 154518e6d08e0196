"""Telemetry that never fails a request: a write that fails (full or read-only disk, exporter down) is
logged and counted, and /readyz reports it, naming where telemetry goes.

Without it, a feedback already stored could answer 500 because its metric line could not be appended, and
the client's retry then got a 409.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from api.drift import TelemetryLike

logger = logging.getLogger(__name__)


class GuardedTelemetry:
    """Wraps a telemetry backend; each failed call is counted, the first and every 100th logged."""

    def __init__(self, inner: TelemetryLike) -> None:
        self.inner = inner
        directory = getattr(inner, "directory", None)
        self.where = str(directory) if directory is not None else type(inner).__name__
        self.failures = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def _guard(self, call: Callable[[], None]) -> None:
        try:
            call()
            self.last_error = None  # writing works (again)
        except Exception as exc:
            with self._lock:
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                failures = self.failures
            if failures == 1 or failures % 100 == 0:
                logger.error(
                    "telemetry write failed; the request goes on",
                    extra={"telemetry": self.where, "error": self.last_error, "failures": failures},
                )

    def metric(self, name: str, value: float, dimensions: dict[str, str] | None = None) -> None:
        """Record a metric, or count the failure."""
        self._guard(lambda: self.inner.metric(name, value, dimensions))

    def event(
        self,
        name: str,
        properties: dict[str, Any] | None = None,
        measurements: dict[str, float] | None = None,
    ) -> None:
        """Record a custom event, or count the failure."""
        self._guard(lambda: self.inner.event(name, properties, measurements))

    def trace(self, message: str, severity: str = "INFO", properties: dict[str, Any] | None = None) -> None:
        """Record a trace, or count the failure."""
        self._guard(lambda: self.inner.trace(message, severity, properties))

    def problem(self) -> str | None:
        """What is wrong, naming where telemetry goes; None while the last write worked."""
        last_error = self.last_error
        if last_error is None:
            return None
        return f"telemetry to {self.where} fails ({self.failures} writes lost so far): {last_error}"
