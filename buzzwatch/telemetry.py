"""One small telemetry module: metrics, custom events and traces, to Application Insights or a local sink.

`Telemetry.from_settings(settings)` picks the backend once:

- with `APPLICATIONINSIGHTS_CONNECTION_STRING` set, `AzureTelemetry` sends through opencensus-ext-azure:
  metrics through its metrics exporter fed by our own producer (see `_IntervalMetricProducer`), custom events
  through `AzureEventHandler`, traces through `AzureLogHandler`; nothing else is contacted (the SDK's own
  statsbeat usage telemetry and its Azure metadata lookups are switched off);
- otherwise `LocalTelemetry` appends JSON lines to `<var_dir>/telemetry/{metrics,events,traces}.jsonl`,
  which several processes may append to at once (each line is written under an exclusive file lock), and
  `read_local` reads them back (the Streamlit app reads alerts and metrics this way).

Metric and event names live here, once: the Azure KQL alert rules are tested against these constants.

Local line formats (one JSON object a line):
- metrics: `{"time", "name", "value", "dimensions": {str: str}, "role", "pid"}`
- events: `{"time", "name", "properties": {...}, "measurements": {str: float}, "role", "pid"}`; a
  `BadBuzzAlert` event carries the whole alert (`Alert.to_dict()`) under `properties["alert"]`
- traces: `{"time", "message", "severity", "properties": {...}, "role", "pid"}`

Why not the opencensus stats/view API: a single negative value (a spike score below baseline) makes it drop
the whole measurement map, and its views are process-wide singletons. Our producer hands the exporter one
data point per metric and dimension set per export interval instead: counters are summed over the interval
(delta semantics, so KQL `sum(value)` counts), gauges keep the last value, latencies the mean, and negative
values pass. `close()` stops the exporters, which delivers everything still buffered, and runs by itself
when the process exits normally (`close_at_exit`); Cloud Run stops a container with SIGTERM, which our entry
points turn into a clean stop (`buzzwatch.cli.stop_on_signals`) that closes their sinks on the way out.
"""

from __future__ import annotations

import fcntl
import json
import logging
import multiprocessing.util
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from buzzwatch.schema import SchemaError, parse_timestamp
from buzzwatch.settings import CommonSettings

# Metrics (dimensions in brackets).
TWEETS_SCORED = "tweets_scored"  # brand, label (a count)
NEGATIVE_SHARE = "negative_share"  # brand
BASELINE_NEGATIVE_SHARE = "baseline_negative_share"  # brand
SPIKE_SCORE = "spike_score"  # brand
TWEET_VOLUME = "tweet_volume"  # brand
BRAND_STATE = "brand_state"  # brand, state (learning | normal | bad_buzz); the value: learning progress 0-1
PROCESSING_LATENCY_MS = "processing_latency_ms"  # stage
API_REQUEST_LATENCY_MS = "api_request_latency_ms"  # route, status
FEEDBACK_RECEIVED = "feedback_received"  # correct (a count)
DEAD_LETTERED = "dead_lettered"  # reason (a count)
DUPLICATES_SKIPPED = "duplicates_skipped"  # stage (a count)
# Custom events and traces.
BAD_BUZZ_ALERT = "BadBuzzAlert"
MODEL_DRIFT_ALERT = "ModelDriftAlert"
MISPREDICTION = "Misprediction"

COUNTER_METRICS = frozenset({TWEETS_SCORED, FEEDBACK_RECEIVED, DEAD_LETTERED, DUPLICATES_SKIPPED})
MEAN_METRICS = frozenset({PROCESSING_LATENCY_MS, API_REQUEST_LATENCY_MS})
METRIC_NAMES = frozenset(
    {
        TWEETS_SCORED,
        NEGATIVE_SHARE,
        BASELINE_NEGATIVE_SHARE,
        SPIKE_SCORE,
        TWEET_VOLUME,
        BRAND_STATE,
        PROCESSING_LATENCY_MS,
        API_REQUEST_LATENCY_MS,
        FEEDBACK_RECEIVED,
        DEAD_LETTERED,
        DUPLICATES_SKIPPED,
    }
)
EVENT_NAMES = frozenset({BAD_BUZZ_ALERT, MODEL_DRIFT_ALERT})
TRACE_NAMES = frozenset({MISPREDICTION})
LOCAL_KINDS = ("metrics", "events", "traces")
SEVERITIES = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING}
SEVERITIES.update({"ERROR": logging.ERROR, "CRITICAL": logging.CRITICAL})

logger = logging.getLogger(__name__)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _written_at(record: Mapping[str, Any]) -> datetime:
    """When a record was written, compared as a moment: as text, 10:00:00.5Z sorted before 10:00:00Z (and
    an offset other than Z compared as letters); a record without a readable time counts as written first."""
    try:
        return parse_timestamp(record.get("time"), "time")
    except SchemaError:
        return datetime.min.replace(tzinfo=UTC)


def _dimensions(dimensions: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(key): str(value) for key, value in (dimensions or {}).items()}


def _metric_record(name: str, value: float, dimensions: Mapping[str, Any] | None) -> dict[str, Any]:
    """A metric as a local-sink record (before `_stamp`)."""
    return {"name": name, "value": float(value), "dimensions": _dimensions(dimensions)}


def _event_record(
    name: str, properties: Mapping[str, Any] | None, measurements: Mapping[str, float] | None
) -> dict[str, Any]:
    """A custom event as a local-sink record (before `_stamp`); properties keep their JSON structure."""
    return {
        "name": name,
        "properties": dict(properties or {}),
        "measurements": {str(k): float(v) for k, v in (measurements or {}).items()},
    }


def _stamp(record: dict[str, Any], role: str) -> None:
    """Add the local-sink record's time (unless set), role and process id."""
    record.setdefault("time", _now_iso())
    record["role"] = role
    record["pid"] = os.getpid()


class Telemetry:
    """The interface every service uses; pick the backend with `Telemetry.from_settings`."""

    role: str = "buzzwatch"

    @staticmethod
    def from_settings(
        settings: CommonSettings, role: str = "buzzwatch", export_interval_s: float = 15.0
    ) -> Telemetry:
        """Azure when a connection string is configured, else the local JSON-lines sink."""
        if settings.appinsights_connection_string:
            return AzureTelemetry(
                settings.appinsights_connection_string,
                role=role,
                export_interval_s=export_interval_s,
                storage_path=settings.var_dir / "telemetry" / "azure-retry",
            )
        return LocalTelemetry(settings.var_dir, role=role)

    def metric(self, name: str, value: float, dimensions: Mapping[str, Any] | None = None) -> None:
        """Record one value of a metric (counters: the increment)."""
        raise NotImplementedError

    def event(
        self,
        name: str,
        properties: Mapping[str, Any] | None = None,
        measurements: Mapping[str, float] | None = None,
    ) -> None:
        """Record one custom event."""
        raise NotImplementedError

    def trace(
        self, message: str, severity: str = "INFO", properties: Mapping[str, Any] | None = None
    ) -> None:
        """Record one trace message."""
        raise NotImplementedError

    def close(self) -> None:
        """Deliver everything buffered and release the exporters; safe to call twice."""

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class LocalTelemetry(Telemetry):
    """JSON lines under `<var_dir>/telemetry/`, appended under a file lock so processes can share them."""

    def __init__(self, var_dir: Path | str, role: str = "buzzwatch") -> None:
        self.directory = Path(var_dir) / "telemetry"
        self.role = role
        self._lock = threading.Lock()

    def _append(self, kind: str, record: dict[str, Any]) -> None:
        _stamp(record, self.role)
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode()
        path = self.directory / f"{kind}.jsonl"
        with self._lock:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except FileNotFoundError:  # the first line, or the folder was removed: create it, once
                self.directory.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                view = memoryview(line)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            finally:
                os.close(fd)

    def metric(self, name: str, value: float, dimensions: Mapping[str, Any] | None = None) -> None:
        """Append one metric line."""
        self._append("metrics", _metric_record(name, value, dimensions))

    def event(
        self,
        name: str,
        properties: Mapping[str, Any] | None = None,
        measurements: Mapping[str, float] | None = None,
    ) -> None:
        """Append one event line (properties keep their JSON structure locally)."""
        self._append("events", _event_record(name, properties, measurements))

    def trace(
        self, message: str, severity: str = "INFO", properties: Mapping[str, Any] | None = None
    ) -> None:
        """Append one trace line."""
        self._append(
            "traces", {"message": message, "severity": severity.upper(), "properties": dict(properties or {})}
        )


def _iter_lines(path: Path) -> Iterator[dict[str, Any]]:
    try:
        # errors="replace": a line cut inside a character (a write that hit a full disk) is one bad line
        handle = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with handle:
        for line in handle:
            if not line.endswith("\n"):
                break  # a line another process is still writing
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                yield record


def read_local(
    var_dir: Path | str, kind: str, name: str | None = None, since: datetime | None = None
) -> list[dict[str, Any]]:
    """Read the local sink: `kind` is metrics, events or traces; optionally one name and a start time."""
    if kind not in LOCAL_KINDS:
        raise ValueError(f"kind must be one of {', '.join(LOCAL_KINDS)}, got {kind!r}")
    records = []
    for record in _iter_lines(Path(var_dir) / "telemetry" / f"{kind}.jsonl"):
        if name is not None and record.get("name") != name:
            continue
        if since is not None and _written_at(record) < since:
            continue
        records.append(record)
    return records


def read_alerts(var_dir: Path | str) -> list[dict[str, Any]]:
    """The bad-buzz alerts in the local sink, oldest first, as `Alert.to_dict()` objects."""
    return alerts_in(read_local(var_dir, "events", name=BAD_BUZZ_ALERT))


def alerts_in(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The `Alert.to_dict()` objects carried by `BadBuzzAlert` event records, in their order."""
    alerts = []
    for record in events:
        alert = (
            (record.get("properties") or {}).get("alert") if record.get("name") == BAD_BUZZ_ALERT else None
        )
        if isinstance(alert, dict):
            alerts.append(alert)
    return alerts


class RecordingTelemetry(Telemetry):
    """Sends everything to `inner` and keeps the latest metrics and events in memory, as local-sink records.

    The detection service serves them (`/v1/watch/...`) to the Streamlit app where it cannot read the local
    sink: on Cloud Run, or with Application Insights configured. `capacity` records per kind are kept.
    """

    def __init__(self, inner: Telemetry, capacity: int = 50_000) -> None:
        self.inner = inner
        self.role = inner.role
        self._records: dict[str, deque[dict[str, Any]]] = {
            kind: deque(maxlen=capacity) for kind in ("metrics", "events")
        }
        self._lock = threading.Lock()

    def _keep(self, kind: str, record: dict[str, Any]) -> None:
        _stamp(record, self.role)
        with self._lock:
            self._records[kind].append(record)

    def metric(self, name: str, value: float, dimensions: Mapping[str, Any] | None = None) -> None:
        """Forward and keep one metric value."""
        self.inner.metric(name, value, dimensions)
        self._keep("metrics", _metric_record(name, value, dimensions))

    def event(
        self,
        name: str,
        properties: Mapping[str, Any] | None = None,
        measurements: Mapping[str, float] | None = None,
    ) -> None:
        """Forward and keep one custom event."""
        self.inner.event(name, properties, measurements)
        self._keep("events", _event_record(name, properties, measurements))

    def trace(
        self, message: str, severity: str = "INFO", properties: Mapping[str, Any] | None = None
    ) -> None:
        """Forward one trace (not kept)."""
        self.inner.trace(message, severity, properties)

    def recent(self, kind: str, since: datetime | None = None) -> list[dict[str, Any]]:
        """The kept "metrics" or "events" records, oldest first, written at or after `since`."""
        if kind not in self._records:
            raise ValueError(f"kind must be metrics or events, got {kind!r}")
        with self._lock:
            records = list(self._records[kind])
        return [r for r in records if since is None or _written_at(r) >= since]

    def close(self) -> None:
        """Close the inner backend."""
        self.inner.close()


class GuardedTelemetry(Telemetry):
    """A backend whose failed writes (a full or read-only disk, an exporter down) are counted and logged (the
    first and every 100th), never raised: a request already served, a tweet already published or an alert
    already committed must not fail after it because its metric could not be written (the push worker
    answered 500 and the tweet was scored again and again; the detection service nacked committed messages,
    then died in its idle tick). `problem()` names the failure and where telemetry goes (the API's /readyz).
    """

    def __init__(self, inner: Telemetry) -> None:
        self.inner = inner
        self.role = getattr(inner, "role", Telemetry.role)
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
                    "telemetry write failed; the service goes on",
                    extra={"telemetry": self.where, "error": self.last_error, "failures": failures},
                )

    def metric(self, name: str, value: float, dimensions: Mapping[str, Any] | None = None) -> None:
        """Record a metric, or count the failure."""
        self._guard(lambda: self.inner.metric(name, value, dimensions))

    def event(
        self,
        name: str,
        properties: Mapping[str, Any] | None = None,
        measurements: Mapping[str, float] | None = None,
    ) -> None:
        """Record a custom event, or count the failure."""
        self._guard(lambda: self.inner.event(name, properties, measurements))

    def trace(
        self, message: str, severity: str = "INFO", properties: Mapping[str, Any] | None = None
    ) -> None:
        """Record a trace, or count the failure."""
        self._guard(lambda: self.inner.trace(message, severity, properties))

    def close(self) -> None:
        """Close the inner backend, or count the failure."""
        self._guard(self.inner.close)

    def problem(self) -> str | None:
        """What is wrong, naming where telemetry goes; None while the last write worked."""
        last_error = self.last_error
        if last_error is None:
            return None
        return f"telemetry to {self.where} fails ({self.failures} writes lost so far): {last_error}"


class _IntervalMetricProducer:
    """Aggregates recorded values per (name, dimensions) until the exporter collects them.

    One data point per series and export: counters summed (a delta), latencies averaged, gauges last value.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = {}

    def record(self, name: str, value: float, dimensions: dict[str, str]) -> None:
        key = (name, tuple(sorted(dimensions.items())))
        with self._lock:
            current = self._series.get(key)
            if current is None:
                self._series[key] = [float(value), 1.0]
            elif name in COUNTER_METRICS or name in MEAN_METRICS:
                current[0] += float(value)
                current[1] += 1.0
            else:
                current[0] = float(value)
                current[1] = 1.0

    def get_metrics(self) -> list[Any]:
        """Hand over (and forget) what was recorded since the last call, as opencensus metrics."""
        from opencensus.metrics.export.metric import Metric
        from opencensus.metrics.export.metric_descriptor import MetricDescriptor, MetricDescriptorType
        from opencensus.metrics.export.point import Point
        from opencensus.metrics.export.time_series import TimeSeries
        from opencensus.metrics.export.value import ValueDouble
        from opencensus.metrics.label_key import LabelKey
        from opencensus.metrics.label_value import LabelValue

        with self._lock:
            series, self._series = self._series, {}
        now = datetime.now(UTC)
        metrics = []
        for (name, dims), (total, count) in series.items():
            value = total / count if name in MEAN_METRICS else total
            descriptor = MetricDescriptor(
                name, name, "1", MetricDescriptorType.GAUGE_DOUBLE, [LabelKey(key, key) for key, _ in dims]
            )
            points = [Point(ValueDouble(value), now)]
            labels = [LabelValue(dim_value) for _, dim_value in dims]
            metrics.append(Metric(descriptor, [TimeSeries(labels, points, None)]))
        return metrics


def _flatten_properties(properties: Mapping[str, Any] | None) -> dict[str, str]:
    """Application Insights properties are strings: nested values become JSON text."""
    flat = {}
    for key, value in (properties or {}).items():
        flat[str(key)] = (
            value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        )
    return flat


class AzureTelemetry(Telemetry):
    """Application Insights through opencensus-ext-azure (metrics exporter, event and log handlers)."""

    def __init__(
        self,
        connection_string: str,
        role: str = "buzzwatch",
        export_interval_s: float = 15.0,
        storage_path: Path | str | None = None,
        grace_period_s: float = 10.0,
    ) -> None:
        from opencensus.ext.azure.log_exporter import AzureEventHandler, AzureLogHandler
        from opencensus.ext.azure.metrics_exporter import MetricsExporter
        from opencensus.metrics import transport

        self.role = role
        options: dict[str, Any] = {
            "connection_string": connection_string,
            "export_interval": export_interval_s,
            "grace_period": grace_period_s,
            "enable_standard_metrics": False,
            "enable_local_storage": storage_path is not None,
        }
        if storage_path is not None:
            options["storage_path"] = str(storage_path)
        # Only the configured endpoint: the SDK would also send its own usage telemetry (statsbeat) to a fixed
        # Microsoft endpoint and ask the Azure metadata service (169.254.169.254) where it runs. Its one
        # switch is this variable, read as each exporter starts and sends.
        os.environ["APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL"] = "true"
        self._closed = False
        self._close_lock = threading.Lock()
        self._producer = _IntervalMetricProducer()
        self._metrics_exporter = MetricsExporter(**options)
        self._metrics_exporter.add_telemetry_processor(self._tag_role)
        self._metrics_exporter.exporter_thread = transport.get_exporter_thread(
            [self._producer], self._metrics_exporter, interval=export_interval_s
        )
        self._event_handler = AzureEventHandler(**options)
        self._event_handler.add_telemetry_processor(self._tag_role)
        self._trace_handler = AzureLogHandler(**options)
        self._trace_handler.add_telemetry_processor(self._tag_role)
        # Private loggers, not the root logger: only what this object sends goes to Azure.
        suffix = f"{id(self):x}"
        self._event_logger = self._private_logger(f"buzzwatch.telemetry.events.{suffix}", self._event_handler)
        self._trace_logger = self._private_logger(f"buzzwatch.telemetry.traces.{suffix}", self._trace_handler)
        close_at_exit(self.close)

    @staticmethod
    def _private_logger(name: str, handler: logging.Handler) -> logging.Logger:
        private = logging.getLogger(name)
        private.handlers[:] = [handler]
        private.propagate = False
        private.setLevel(logging.DEBUG)
        return private

    def _tag_role(self, envelope: Any) -> bool:
        envelope.tags["ai.cloud.role"] = self.role
        return True

    def metric(self, name: str, value: float, dimensions: Mapping[str, Any] | None = None) -> None:
        """Aggregate into the current export interval."""
        self._producer.record(name, value, _dimensions(dimensions))

    def event(
        self,
        name: str,
        properties: Mapping[str, Any] | None = None,
        measurements: Mapping[str, float] | None = None,
    ) -> None:
        """Queue one customEvents row."""
        self._event_logger.info(
            name,
            extra={
                "custom_dimensions": _flatten_properties(properties),
                "custom_measurements": {str(k): float(v) for k, v in (measurements or {}).items()},
            },
        )

    def trace(
        self, message: str, severity: str = "INFO", properties: Mapping[str, Any] | None = None
    ) -> None:
        """Queue one traces row."""
        level = SEVERITIES.get(severity.upper(), logging.INFO)
        self._trace_logger.log(level, message, extra={"custom_dimensions": _flatten_properties(properties)})

    def close(self) -> None:
        """Export the last metrics and drain both handler queues (flush alone would not)."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._metrics_exporter.shutdown()
        self._event_handler.close()
        self._trace_handler.close()
        for private in (self._event_logger, self._trace_logger):
            private.handlers.clear()


def close_at_exit(close: Callable[[], object]) -> None:
    """Call `close` when this process exits normally, whoever started it.

    `atexit` handlers never run in a process started by multiprocessing (granian's workers are), but
    multiprocessing's exit finalizers run there, and in every other process through its own atexit hook.
    """
    multiprocessing.util.Finalize(None, close, exitpriority=10)
