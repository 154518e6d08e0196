"""Pull-mode loops (outside Cloud Run): scoring workers and the single detection service.

Both run `buzzwatch.pubsub.pull_loop` (synchronous pull, which survives an emulator restart): NOT_FOUND
recreates what this role needs through its `StreamTopology` (never altering what exists), an unreachable
service is retried with backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from google.cloud import pubsub_v1

from buzzwatch.pubsub import StreamTopology, ack, attempt, nack, pull_loop
from worker.detection_service import DetectionService
from worker.scoring import ScoringService, TransientError, WorkerSettings

log = logging.getLogger("buzzwatch.worker")


def run_scoring_pull(
    service: ScoringService,
    topology: StreamTopology,
    worker_settings: WorkerSettings,
    stop: threading.Event,
) -> None:
    """Score the tweets subscription by pulling (batches of up to 100, acked once published)."""

    def recover() -> None:
        topology.ensure(push_endpoint=worker_settings.push_endpoint, update=False)

    def step(client: pubsub_v1.SubscriberClient, path: str, received: list[Any]) -> None:
        done, retry = service.handle_batch(
            [(bytes(r.message.data), dict(r.message.attributes), r.message.message_id) for r in received]
        )
        ack(client, path, [received[i].ack_id for i in done])
        if retry:
            nack(client, path, [received[i].ack_id for i in retry])

    pull_loop(topology.project, topology.tweets_subscription, step, recover, stop)


def run_detection(
    service: DetectionService,
    topology: StreamTopology,
    worker_settings: WorkerSettings,
    stop: threading.Event,
) -> None:
    """The single detection consumer: pull, process, commit every few seconds, then ack."""
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
                attempt(lambda: nack(client, held_path[0], held), "nack")
            held.clear()
            return
        if held:
            ack_ids = list(held)
            held.clear()  # a failed ack (emulator restarted) must not poison the next ones
            ack(client, held_path[0], ack_ids)
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
            topology.project,
            topology.scored_subscription,
            step,
            topology.ensure_scored_path,
            stop,
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
                    ack(fresh, held_path[0], held)
                finally:
                    fresh.close()
            except Exception as exc:
                log.warning(
                    "final checkpoint failed; those messages will come again", extra={"error": str(exc)}
                )


__all__ = ["TransientError", "run_detection", "run_scoring_pull"]
