"""The detection consumer acks only what a commit stored: a failed commit hands its messages back at once."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from buzzwatch.pubsub import StreamTopology
from buzzwatch.settings import CommonSettings
from buzzwatch.telemetry import LocalTelemetry
from stack.emulator import PubSubEmulator
from tests.support.polling import wait_for
from tests.support.stack import publish_scored, stream_events
from worker.detection import DetectorConfig
from worker.detection_service.consumer import DetectionConsumer
from worker.detection_service.service import DetectionService
from worker.detection_service.settings import DetectionSettings
from worker.detection_service.store import DetectionStore

pytestmark = pytest.mark.integration


class NoMail:
    def spool(self, key: str, alert: object) -> None:
        raise AssertionError("no alert expected")


def test_a_failed_commit_hands_the_held_messages_back_and_each_tweet_is_counted_once(
    emulator_env: PubSubEmulator, tmp_path: Path, unique_name: str
) -> None:
    env = dict(
        os.environ,
        PUBSUB_SCORED_TOPIC=f"{unique_name}-scored",
        PUBSUB_SCORED_SUBSCRIPTION=f"{unique_name}-detector",
        PUBSUB_DEAD_LETTER_TOPIC=f"{unique_name}-dead",
    )
    settings = CommonSettings.from_env(env)
    topology = StreamTopology.from_settings(settings)
    topology.ensure_scored_path()  # the subscription's ack deadline is 60 s: only a nack is faster
    store = DetectionStore(f"sqlite:///{tmp_path / 'detection.db'}")
    failures = [RuntimeError("the database went away")]
    commit = store.commit

    def first_commit_fails(*args: object, **kwargs: object) -> None:
        if failures:
            raise failures.pop()
        commit(*args, **kwargs)  # type: ignore[arg-type]

    store.commit = first_commit_fails  # type: ignore[method-assign]
    service = DetectionService(store, NoMail(), LocalTelemetry(tmp_path), DetectorConfig())  # type: ignore[arg-type]
    consumer = DetectionConsumer(service, DetectionSettings(checkpoint_interval_s=0.2))
    events = stream_events(calm_minutes=30, buzz_minutes=0, tail_minutes=0)
    publish_scored(events, topology.project, topology.scored_topic)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(topology, stop))
    thread.start()
    try:
        wait_for(
            lambda: store.counts()["tweets"] == len(events), 30, "every tweet committed after the failure"
        )
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert failures == []  # the first commit did fail
    assert service.totals["counted"] == len(events)
    assert service.totals["duplicates"] == 0  # the redelivered messages were never committed: none is a copy
    store.close()
