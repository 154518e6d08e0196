"""Pull mode outside Cloud Run: the scoring workers pull the tweets subscription.

Scoring's pull mode runs `buzzwatch.pubsub.pull_loop` (synchronous pull, which survives an emulator
restart): NOT_FOUND recreates what it needs through its `StreamTopology` (never altering what exists), an
unreachable service is retried with backoff. The detection consumer is `worker.detection_service.consumer`.
"""

from __future__ import annotations

import threading
from typing import Any

from google.cloud import pubsub_v1

from buzzwatch.pubsub import StreamTopology, ack, nack, pull_loop
from worker.scoring import ScoringService, WorkerSettings


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

    pull_loop(
        topology.project,
        topology.tweets_subscription,
        step,
        recover,
        stop,
        emulator_host=topology.emulator_host,
    )
