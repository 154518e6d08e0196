"""Pull-mode loops (outside Cloud Run): scoring workers and the single detection service.

Both use synchronous pull, which survives an emulator restart: NOT_FOUND recreates what this role needs
(never altering what exists), an unreachable service is retried with backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from google.api_core import exceptions as api_exceptions
from google.cloud import pubsub_v1

from buzzwatch.pubsub import (
    StreamTopology,
    SubscriptionSpec,
    ensure_subscription,
    ensure_topic,
    subscription_path,
)
from buzzwatch.settings import CommonSettings
from worker.detection_service import DetectionService
from worker.scoring import ScoringService, TransientError, WorkerSettings, ensure_scored_path

log = logging.getLogger("buzzwatch.worker")

UNAVAILABLE = (
    api_exceptions.ServiceUnavailable,
    api_exceptions.DeadlineExceeded,
    api_exceptions.InternalServerError,
    api_exceptions.Unknown,
    api_exceptions.Aborted,
    api_exceptions.RetryError,
)


def _pull(client: pubsub_v1.SubscriberClient, path: str, max_messages: int) -> list[Any]:
    # return_immediately: an empty pull comes back at once, so the caller can checkpoint on a quiet stream.
    response = client.pull(
        request={"subscription": path, "max_messages": max_messages, "return_immediately": True}, timeout=10.0
    )
    return list(response.received_messages)


def _ack(client: pubsub_v1.SubscriberClient, path: str, ack_ids: Sequence[str]) -> None:
    for start in range(0, len(ack_ids), 1000):
        client.acknowledge(request={"subscription": path, "ack_ids": list(ack_ids[start : start + 1000])})


def _nack(client: pubsub_v1.SubscriberClient, path: str, ack_ids: Sequence[str]) -> None:
    for start in range(0, len(ack_ids), 1000):
        client.modify_ack_deadline(
            request={
                "subscription": path,
                "ack_ids": list(ack_ids[start : start + 1000]),
                "ack_deadline_seconds": 0,
            }
        )


def pull_loop(
    subscription: str,
    step: Callable[[pubsub_v1.SubscriberClient, str, list[Any]], None],
    recover: Callable[[], None],
    stop: threading.Event,
    project: str,
    max_messages: int = 100,
    idle: Callable[[], None] | None = None,
) -> None:
    """Pull until `stop`; `step` handles (and acks) each batch; `recover` recreates a lost subscription."""
    client = pubsub_v1.SubscriberClient()
    path = subscription_path(project, subscription)
    backoff = 0.5
    try:
        while not stop.is_set():
            try:
                received = _pull(client, path, max_messages)
                backoff = 0.5
            except api_exceptions.NotFound:
                log.warning(
                    "subscription missing (emulator restarted?); recreating", extra={"subscription": path}
                )
                _safely(recover)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            except UNAVAILABLE as exc:
                log.warning(
                    "Pub/Sub unavailable; retrying", extra={"error": str(exc)[:200], "backoff_s": backoff}
                )
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            if received:
                try:
                    step(client, path, received)
                except (*UNAVAILABLE, api_exceptions.NotFound, api_exceptions.InvalidArgument) as exc:
                    log.warning("ack failed; the messages will come again", extra={"error": str(exc)[:200]})
            else:
                if idle is not None:
                    idle()
                stop.wait(0.05)
    finally:
        client.close()


def _safely(action: Callable[[], None]) -> None:
    try:
        action()
    except Exception as exc:
        log.warning("recovery failed; will try again", extra={"error": str(exc)[:200]})


def run_scoring_pull(
    service: ScoringService,
    settings: CommonSettings,
    worker_settings: WorkerSettings,
    env: Mapping[str, str],
    stop: threading.Event,
) -> None:
    """Score the tweets subscription by pulling (batches of up to 100, acked once published)."""
    topology = StreamTopology.from_settings(settings, env)

    def recover() -> None:
        ensure_topic(topology.project, topology.tweets_topic)
        ensure_topic(topology.project, topology.dead_letter_topic)
        ensure_subscription(
            topology.project,
            SubscriptionSpec(
                name=topology.tweets_subscription,
                topic=topology.tweets_topic,
                push_endpoint=worker_settings.push_endpoint,
                dead_letter_topic=topology.dead_letter_topic,
                max_delivery_attempts=topology.max_delivery_attempts,
            ),
            update=False,
        )
        ensure_scored_path(settings, env)

    def step(client: pubsub_v1.SubscriberClient, path: str, received: list[Any]) -> None:
        done, retry = service.handle_batch(
            [(bytes(r.message.data), dict(r.message.attributes), r.message.message_id) for r in received]
        )
        _ack(client, path, [received[i].ack_id for i in done])
        if retry:
            _nack(client, path, [received[i].ack_id for i in retry])

    pull_loop(topology.tweets_subscription, step, recover, stop, topology.project)


def run_detection(
    service: DetectionService,
    settings: CommonSettings,
    worker_settings: WorkerSettings,
    env: Mapping[str, str],
    stop: threading.Event,
) -> None:
    """The single detection consumer: pull, process, commit every few seconds, then ack."""
    topology = StreamTopology.from_settings(settings, env)
    held: list[str] = []
    held_path: list[str] = []
    service.dispatch_outbox()
    last_prune = 0.0

    def commit(client: pubsub_v1.SubscriberClient) -> None:
        nonlocal last_prune
        try:
            service.checkpoint()
        except Exception:
            if held_path:
                _safely(lambda: _nack(client, held_path[0], held))
            held.clear()
            return
        if held:
            ack_ids = list(held)
            held.clear()  # a failed ack (emulator restarted) must not poison the next ones
            _ack(client, held_path[0], ack_ids)
        if time.monotonic() - last_prune > 3600:
            last_prune = time.monotonic()
            service.store.prune(worker_settings.seen_retention_days * 86400)

    state: dict[str, Any] = {"client": None}

    def step(client: pubsub_v1.SubscriberClient, path: str, received: list[Any]) -> None:
        state["client"] = client
        if not held_path:
            held_path.append(path)
        service.process([bytes(r.message.data) for r in received])
        held.extend(r.ack_id for r in received)
        if service.due(worker_settings.checkpoint_interval_s, worker_settings.checkpoint_max_messages):
            commit(client)

    def idle() -> None:
        client = state["client"]
        if client is not None and (held or service.pending.messages):
            commit(client)
        elif not service.tick() and service.due(
            worker_settings.checkpoint_interval_s, worker_settings.checkpoint_max_messages
        ):
            service.dispatch_outbox()
            service.last_checkpoint = time.monotonic()

    try:
        pull_loop(
            topology.scored_subscription,
            step,
            lambda: ensure_scored_path(settings, env),
            stop,
            topology.project,
            max_messages=100,
            idle=idle,
        )
    finally:
        client = state["client"]
        if client is not None and (held or service.pending.messages):
            try:
                service.checkpoint()
                fresh = pubsub_v1.SubscriberClient()
                try:
                    _ack(fresh, held_path[0], held)
                finally:
                    fresh.close()
            except Exception as exc:
                log.warning(
                    "final checkpoint failed; those messages will come again", extra={"error": str(exc)}
                )


__all__ = ["TransientError", "run_detection", "run_scoring_pull"]
