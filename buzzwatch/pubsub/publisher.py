"""The one Pub/Sub publisher: batched fire-and-forget for the ingester, confirmed publishing for the worker.

`Publisher.publish` batches explicitly, blocks the caller when too much is in flight (flow control BLOCK),
follows every future with a callback, re-publishes what failed (recreating the topic on NOT_FOUND), counts
what it published and what it finally could not, and waits for everything at shutdown. A message that is
given up on is logged and appended to a spool file that `buzzwatch ingest --source stdin` can re-publish.

`Publisher.publish_confirmed` sends a group in one Publish RPC on the caller's thread and returns only once
Pub/Sub has confirmed every message (or raises `PublishError`): the scoring worker acks a push only then.
Both modes share the client, the retry policy, the counters and the recovery of a topic that vanished.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from google.api_core import exceptions as api_exceptions
from google.api_core.retry import Retry, if_exception_type
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.types import (
    BatchSettings,
    LimitExceededBehavior,
    PublisherOptions,
    PublishFlowControl,
)
from google.pubsub_v1 import types as gapic_types

from buzzwatch.pubsub.clients import publisher_client
from buzzwatch.pubsub.topology import ensure_topic, topic_path
from buzzwatch.settings import env_float, env_int

log = logging.getLogger("buzzwatch.pubsub")

# Errors worth another try: the service is busy, restarting or unreachable, or the topic vanished
# (an emulator restart) and will be recreated before the next attempt.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    api_exceptions.Aborted,
    api_exceptions.Cancelled,
    api_exceptions.DeadlineExceeded,
    api_exceptions.InternalServerError,
    api_exceptions.ResourceExhausted,
    api_exceptions.ServiceUnavailable,
    api_exceptions.Unknown,
    api_exceptions.NotFound,
    api_exceptions.RetryError,
    TimeoutError,
)


@dataclass(frozen=True)
class PublisherSettings:
    """Batching, flow control and retry of the publisher; PUBSUB_PUBLISH_* variables override."""

    max_messages: int = 500
    max_bytes: int = 1_000_000
    max_latency_s: float = 0.05
    flow_message_limit: int = 5_000
    flow_byte_limit: int = 20_000_000
    rpc_timeout_s: float = 10.0
    rpc_retry_total_s: float = 30.0
    max_attempts: int = 8
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 15.0
    request_max_messages: int = 1000  # confirmed mode: one Publish RPC carries at most this many messages
    request_max_bytes: int = 9_000_000  # ... and this many bytes of data (Pub/Sub allows 10 MB a request)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PublisherSettings:
        """Read PUBSUB_PUBLISH_MAX_MESSAGES, _MAX_BYTES, _MAX_LATENCY_S, _FLOW_MESSAGES, _FLOW_BYTES, ..."""
        defaults = cls()
        return cls(
            max_messages=env_int(env, "PUBSUB_PUBLISH_MAX_MESSAGES", defaults.max_messages),
            max_bytes=env_int(env, "PUBSUB_PUBLISH_MAX_BYTES", defaults.max_bytes),
            max_latency_s=env_float(env, "PUBSUB_PUBLISH_MAX_LATENCY_S", defaults.max_latency_s),
            flow_message_limit=env_int(env, "PUBSUB_PUBLISH_FLOW_MESSAGES", defaults.flow_message_limit),
            flow_byte_limit=env_int(env, "PUBSUB_PUBLISH_FLOW_BYTES", defaults.flow_byte_limit),
            rpc_timeout_s=env_float(env, "PUBSUB_PUBLISH_RPC_TIMEOUT_S", defaults.rpc_timeout_s),
            rpc_retry_total_s=env_float(env, "PUBSUB_PUBLISH_RPC_RETRY_S", defaults.rpc_retry_total_s),
            max_attempts=env_int(env, "PUBSUB_PUBLISH_MAX_ATTEMPTS", defaults.max_attempts),
            backoff_initial_s=env_float(env, "PUBSUB_PUBLISH_BACKOFF_S", defaults.backoff_initial_s),
            backoff_max_s=env_float(env, "PUBSUB_PUBLISH_BACKOFF_MAX_S", defaults.backoff_max_s),
        )

    def batch_settings(self) -> BatchSettings:
        """The client's explicit batching."""
        return BatchSettings(
            max_bytes=self.max_bytes, max_latency=self.max_latency_s, max_messages=self.max_messages
        )

    def publisher_options(self) -> PublisherOptions:
        """Flow control set to BLOCK and the per-RPC retry of transient errors."""
        return PublisherOptions(
            flow_control=PublishFlowControl(
                message_limit=self.flow_message_limit,
                byte_limit=self.flow_byte_limit,
                limit_exceeded_behavior=LimitExceededBehavior.BLOCK,
            ),
            retry=Retry(
                predicate=if_exception_type(*TRANSIENT_ERRORS[:7]),
                initial=0.1,
                maximum=2.0,
                multiplier=2.0,
                timeout=self.rpc_retry_total_s,
            ),
            timeout=self.rpc_timeout_s,
        )


@dataclass
class PublishStats:
    """What a publisher did: messages accepted by Pub/Sub, given up, re-published, still in flight."""

    published: int = 0
    failed: int = 0
    retried: int = 0
    pending: int = 0
    topic_recreations: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return {
            "published": self.published,
            "failed": self.failed,
            "retried": self.retried,
            "pending": self.pending,
            "topic_recreations": self.topic_recreations,
            "errors": dict(self.errors),
        }


class PublishError(RuntimeError):
    """Pub/Sub did not confirm a publish; the caller should have the messages delivered again."""


@dataclass
class _Outgoing:
    data: bytes
    attributes: dict[str, str]
    attempts: int = 0
    topic_missing: bool = False


class Publisher:
    """Publishes to one topic with explicit batching, BLOCK flow control, retries and a full wait at close.

    `publish` returns at once unless flow control is full (then it blocks: back-pressure on the source).
    Each message is followed by a done-callback; a transient failure (NOT_FOUND after an emulator restart
    included) is re-published with exponential backoff, after recreating the topic when it is missing. A
    message that fails `max_attempts` times, fails permanently, or is still in flight when `close` times
    out is counted in `stats.failed`, logged as an error and appended to `failed_path` (one message data
    per line, re-publishable with `buzzwatch ingest --source stdin`).

    `publish_confirmed` skips the batching: the library's batching publisher waits up to `max_latency` for
    company and then hands the RPC to another thread (2.5 ms a confirmed message at `max_latency=0`, 10 ms
    at 5 ms), which capped a push subscription, acked only after its confirmation, at about 100 tweets/s.
    """

    def __init__(
        self,
        project: str,
        topic: str,
        settings: PublisherSettings | None = None,
        failed_path: Path | None = None,
        create_topic: bool = True,
        client: pubsub_v1.PublisherClient | None = None,
        on_topic_missing: Callable[[], object] | None = None,
    ) -> None:
        self.settings = settings or PublisherSettings()
        self.project = project
        self.topic = topic_path(project, topic)
        self.failed_path = failed_path
        self.on_topic_missing = on_topic_missing
        options = self.settings.publisher_options()
        self._rpc_retry = options.retry
        self._client = client or publisher_client(
            batch_settings=self.settings.batch_settings(), publisher_options=options
        )
        self._stats = PublishStats()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._retry_queue: list[tuple[float, int, _Outgoing]] = []
        self._retry_wakeup = threading.Condition(threading.Lock())
        self._sequence = itertools.count()
        self._closed = False
        self._abandon = False
        # Publishes handed to the client and not yet done (`_in_flight`), and whether a missing topic is
        # being recreated (`_recovering`: no publish starts meanwhile), under one condition.
        self._flight = threading.Condition(threading.Lock())
        self._in_flight = 0
        self._recovering = False
        self._retry_thread: threading.Thread | None = None
        self._topic_checked_at = 0.0
        self._recover_lock = threading.Lock()  # confirmed publishes recover from any caller's thread
        self._topic_recovered = False
        self._failing_since: float | None = None  # the first failed publish of an outage (under _lock)
        self._unsettled: dict[int, _Outgoing] = {}  # messages neither confirmed nor given up (under _lock)
        if create_topic:
            try:
                ensure_topic(project, topic, self._client)
            except api_exceptions.PermissionDenied as exc:
                # A publish-only service account (production): the deployment created the topic.
                log.warning("cannot check the topic; publishing anyway", extra={"error": str(exc)})

    @property
    def stats(self) -> PublishStats:
        """A snapshot of the counters; `pending`: the messages neither confirmed nor given up yet."""
        with self._lock:
            counters = {
                **self._stats.as_dict(),
                "pending": len(self._unsettled),
                "errors": dict(self._stats.errors),
            }
            return PublishStats(**counters)

    def publish(self, data: bytes, **attributes: str) -> None:
        """Queue one message; blocks only while flow control is full."""
        if self._closed:
            raise RuntimeError("publish after close")
        outgoing = _Outgoing(data=data, attributes={k: str(v) for k, v in attributes.items()})
        with self._lock:
            self._unsettled[id(outgoing)] = outgoing
        self._send(outgoing)

    def publish_confirmed(self, messages: Sequence[tuple[bytes, Mapping[str, str]]]) -> list[str]:
        """Publish (data, attributes) pairs now; their message ids once all are confirmed, else PublishError.

        One Publish RPC per call (split only past `request_max_messages` / `request_max_bytes`), on the
        caller's thread, retrying transient errors as the batching mode does. A topic that vanished is
        recovered as in `publish` (topic, then `on_topic_missing`), then the messages are sent once more.
        """
        if self._closed:
            raise RuntimeError("publish after close")
        try:
            return self._publish_now(messages)
        except api_exceptions.NotFound:
            if not self._recover_topic():
                raise PublishError(f"{self.topic} was missing and could not be recreated") from None
        except Exception as exc:
            raise PublishError(f"publish to {self.topic} failed: {exc}") from exc
        try:
            return self._publish_now(messages)
        except Exception as exc:
            raise PublishError(f"publish to {self.topic} failed after recreating it: {exc}") from exc

    def _publish_now(self, messages: Sequence[tuple[bytes, Mapping[str, str]]]) -> list[str]:
        ids: list[str] = []
        start = 0
        while start < len(messages):
            end, size = start, 0
            while end < len(messages) and end - start < self.settings.request_max_messages:
                if end > start and size + len(messages[end][0]) > self.settings.request_max_bytes:
                    break
                size += len(messages[end][0])
                end += 1
            self._enter_flight()
            try:
                response = self._client.api.publish(
                    topic=self.topic,
                    messages=[
                        gapic_types.PubsubMessage(data=d, attributes=dict(a)) for d, a in messages[start:end]
                    ],
                    retry=self._rpc_retry,
                    timeout=self.settings.rpc_timeout_s,
                )
            except Exception as exc:
                self._count_error(exc)
                raise
            finally:
                self._leave_flight()
            ids.extend(response.message_ids)
            with self._lock:
                self._stats.published += len(response.message_ids)
            start = end
        return ids

    def _count_error(self, error: BaseException) -> None:
        kind = type(error).__name__
        with self._lock:
            self._stats.errors[kind] = self._stats.errors.get(kind, 0) + 1

    def _enter_flight(self) -> None:
        """Count a publish in flight; while a missing topic is being recreated, wait until it is."""
        with self._flight:
            while self._recovering:
                self._flight.wait()
            self._in_flight += 1

    def _leave_flight(self) -> None:
        with self._flight:
            self._in_flight -= 1
            self._flight.notify_all()

    def _wait_in_flight(self, timeout_s: float) -> bool:
        """Wait until no publish is in the client's hands, at most `timeout_s`; whether none is."""
        deadline = time.monotonic() + timeout_s
        with self._flight:
            while self._in_flight > 0 and time.monotonic() < deadline:
                self._flight.wait(deadline - time.monotonic())
            return self._in_flight == 0

    def _send(self, outgoing: _Outgoing) -> None:
        self._enter_flight()
        outgoing.attempts += 1
        try:
            future = self._client.publish(self.topic, outgoing.data, **outgoing.attributes)
        except Exception as exc:  # a stopped client or a message the library refuses outright
            self._leave_flight()
            self._on_failure(outgoing, exc)
            return
        future.add_done_callback(lambda done: self._on_done(outgoing, done))

    def _on_done(self, outgoing: _Outgoing, future: Any) -> None:
        self._leave_flight()
        error = future.exception()
        if error is None:
            with self._lock:
                if self._unsettled.pop(id(outgoing), None) is None:
                    return  # given up already (`abandon`): counted there
                self._stats.published += 1
                self._idle.notify_all()
                failing_since, self._failing_since = self._failing_since, None
            if failing_since is not None:
                failed_for_s = round(time.monotonic() - failing_since, 1)
                log.warning("publishes work again", extra={"topic": self.topic, "failed_for_s": failed_for_s})
            return
        self._on_failure(outgoing, error)

    def _on_failure(self, outgoing: _Outgoing, error: BaseException) -> None:
        """Retry a transient failure after a backoff (said once per outage), else give the message up."""
        kind = type(error).__name__
        self._count_error(error)
        outgoing.topic_missing = isinstance(error, api_exceptions.NotFound)
        transient = isinstance(error, TRANSIENT_ERRORS)
        if transient and outgoing.attempts < self.settings.max_attempts and not self._closing_hard():
            with self._lock:
                first = self._failing_since is None
                if first:
                    self._failing_since = time.monotonic()
            if first:
                log.warning(
                    "publish failed; retrying", extra={"topic": self.topic, "error": f"{kind}: {error}"}
                )
            delay = min(
                self.settings.backoff_max_s, self.settings.backoff_initial_s * 2 ** (outgoing.attempts - 1)
            )
            self._schedule_retry(outgoing, delay)
            return
        self._give_up(outgoing, f"{kind}: {error}")

    def _closing_hard(self) -> bool:
        return self._abandon

    def _schedule_retry(self, outgoing: _Outgoing, delay_s: float) -> None:
        with self._retry_wakeup:
            heapq.heappush(self._retry_queue, (time.monotonic() + delay_s, next(self._sequence), outgoing))
            if self._retry_thread is None:
                self._retry_thread = threading.Thread(
                    target=self._retry_loop, name="pubsub-publish-retry", daemon=True
                )
                self._retry_thread.start()
            self._retry_wakeup.notify()

    def _retry_loop(self) -> None:
        while True:
            with self._retry_wakeup:
                while not self._retry_queue:
                    if self._closed:
                        return
                    self._retry_wakeup.wait(0.5)
                due, _, outgoing = self._retry_queue[0]
                wait_s = due - time.monotonic()
                if wait_s > 0 and not self._closing_hard():
                    self._retry_wakeup.wait(wait_s)
                    continue
                heapq.heappop(self._retry_queue)
            if self._closing_hard():
                self._give_up(outgoing, "still unpublished at shutdown")
                continue
            if outgoing.topic_missing:
                self._recover_topic()
            with self._lock:
                self._stats.retried += 1
            self._send(outgoing)

    def _recover_topic(self) -> None:
        """After NOT_FOUND (an emulator restart loses every topic): recreate the topic, then run the
        `on_topic_missing` hook (which recreates missing subscriptions, so re-published messages have
        somewhere to go); at most once a second, whichever thread asks. True if that (last) recovery
        completed."""
        with self._recover_lock:
            now = time.monotonic()
            if now - self._topic_checked_at >= 1.0:
                self._topic_checked_at = now
                self._topic_recovered = self._recreate_topic()
            return self._topic_recovered

    def _recreate_topic(self) -> bool:
        # Hold new publishes, and wait until every one handed to the client is done: a message must not
        # land in the recreated topic before its subscriptions exist (Pub/Sub would confirm and drop it).
        # The client retries an UNAVAILABLE publish for up to `rpc_retry_total_s` on its own, so a batch
        # sent while the emulator was down may still be on its way (sleeping a batch's latency lost some).
        with self._flight:
            self._recovering = True
        if not self._wait_in_flight(self.settings.rpc_timeout_s + self.settings.rpc_retry_total_s):
            log.warning("recreating the topic, publishes still in flight", extra={"topic": self.topic})
        try:
            try:
                self._client.create_topic(request={"name": self.topic}, timeout=self.settings.rpc_timeout_s)
                with self._lock:
                    self._stats.topic_recreations += 1
                log.warning("topic was missing and has been recreated", extra={"topic": self.topic})
            except api_exceptions.AlreadyExists:
                pass
            except Exception as exc:  # unreachable service: the next retry tries again
                log.warning("topic check failed", extra={"topic": self.topic, "error": str(exc)})
                return False
            if self.on_topic_missing is not None:
                try:
                    self.on_topic_missing()
                except Exception as exc:
                    log.warning("topic recovery hook failed", extra={"topic": self.topic, "error": str(exc)})
                    return False
            return True
        finally:
            with self._flight:
                self._recovering = False
                self._flight.notify_all()

    def _give_up(self, outgoing: _Outgoing, reason: str) -> None:
        with self._lock:
            if self._unsettled.pop(id(outgoing), None) is None:
                return  # given up already (`abandon`)
        log.error(
            "publish failed for good",
            extra={"topic": self.topic, "attempts": outgoing.attempts, "reason": reason},
        )
        self._spool_and_count([outgoing])

    def abandon(self, reason: str) -> int:
        """Give up at once every message not confirmed yet (a second Ctrl-C while `close` waits): each is
        spooled to `failed_path` and counted as failed, as a message given up after its retries; how many.
        One may still have reached Pub/Sub: re-publishing the spool can repeat it (the worker dedupes ids)."""
        self._abandon = True
        with self._lock:
            left, self._unsettled = list(self._unsettled.values()), {}
        if left:
            log.error(
                "messages not confirmed by Pub/Sub given up",
                extra={
                    "topic": self.topic,
                    "messages": len(left),
                    "reason": reason,
                    "spool": str(self.failed_path),
                },
            )
            self._spool_and_count(left)
        return len(left)

    def _spool_and_count(self, given_up: Sequence[_Outgoing]) -> None:
        """Append the messages to `failed_path` (re-publishable with `buzzwatch ingest --source stdin`) and
        count them as failed."""
        path = self.failed_path
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with self._lock, open(path, "ab") as spool:
                    spool.write(b"".join(outgoing.data.rstrip(b"\n") + b"\n" for outgoing in given_up))
            except OSError as exc:
                log.error(
                    "cannot spool a failed message", extra={"path": str(self.failed_path), "error": str(exc)}
                )
        with self._lock:
            self._stats.failed += len(given_up)
            self._idle.notify_all()

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every message is published or given up; False if `timeout_s` passed first."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._idle:
            while self._unsettled:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining if remaining is not None else 1.0)
        return True

    def close(self, timeout_s: float = 120.0) -> PublishStats:
        """Wait for every publish (retries included), then stop; leftovers are counted as failed."""
        if self._closed:
            return self.stats
        if not self.flush(timeout_s):
            # Out of time: whatever waits for a retry is given up (counted, logged, spooled) right away.
            self._abandon = True
            with self._retry_wakeup:
                self._retry_wakeup.notify_all()
            self.flush(self.settings.rpc_timeout_s + self.settings.rpc_retry_total_s)
        self._closed = True
        with self._retry_wakeup:
            self._retry_wakeup.notify_all()
        if self._retry_thread is not None:
            self._retry_thread.join(timeout=5)
        # a publish given up (`abandon`) may still be in the client's retries
        self._wait_in_flight(self.settings.rpc_timeout_s)
        self._client.stop()
        self._client.api.transport.close()
        stats = self.stats
        level = logging.ERROR if stats.failed or stats.pending else logging.INFO
        log.log(level, "publisher closed", extra={"topic": self.topic, **stats.as_dict()})
        return stats

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
