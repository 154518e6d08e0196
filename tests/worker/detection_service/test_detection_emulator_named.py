"""The detection consumer talks to the emulator its settings name, not only to PUBSUB_EMULATOR_HOST."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from buzzwatch.pubsub import StreamTopology, publisher_client, topic_path
from buzzwatch.schema import ScoredTweet
from buzzwatch.settings import CommonSettings
from buzzwatch.telemetry import LocalTelemetry
from stack.emulator import PubSubEmulator
from tests.support.polling import wait_for
from tests.support.stack import stream_events
from worker.detection import DetectorConfig
from worker.detection_service.consumer import DetectionConsumer
from worker.detection_service.service import DetectionService
from worker.detection_service.settings import DetectionSettings
from worker.detection_service.store import DetectionStore

pytestmark = pytest.mark.integration


class NoMail:
    def spool(self, key: str, alert: object) -> None:
        raise AssertionError("no alert expected")


def test_the_consumer_pulls_and_acks_at_the_emulator_its_topology_names(
    pubsub_emulator: PubSubEmulator,
    tmp_path: Path,
    unique_name: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name in ("PUBSUB_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    settings = CommonSettings.from_env(
        {
            "PUBSUB_SCORED_TOPIC": f"{unique_name}-scored",
            "PUBSUB_SCORED_SUBSCRIPTION": f"{unique_name}-detector",
            "PUBSUB_DEAD_LETTER_TOPIC": f"{unique_name}-dead",
        }
    )
    topology = replace(StreamTopology.from_settings(settings), emulator_host=pubsub_emulator.endpoint)
    topology.ensure_scored_path()
    events = stream_events(calm_minutes=10, buzz_minutes=0, tail_minutes=0)
    publisher = publisher_client(pubsub_emulator.endpoint)
    path = topic_path(topology.project, topology.scored_topic)
    for event in events:
        scored = ScoredTweet(
            tweet=event, label="positive", probabilities={"positive": 1.0}, model_version="t"
        )
        publisher.publish(path, json.dumps(scored.to_dict()).encode()).result(timeout=30)
    store = DetectionStore(f"sqlite:///{tmp_path / 'detection.db'}")
    service = DetectionService(store, NoMail(), LocalTelemetry(tmp_path), DetectorConfig())  # type: ignore[arg-type]
    consumer = DetectionConsumer(
        service, DetectionSettings(checkpoint_interval_s=60.0)
    )  # committed at the end
    failures: list[BaseException] = []

    def run() -> None:
        try:
            consumer.run(topology, stop)
        except BaseException as exc:  # the thread's failure is the test's
            failures.append(exc)

    stop = threading.Event()
    thread = threading.Thread(target=run)
    thread.start()
    try:
        wait_for(lambda: failures or service.totals["counted"] == len(events), 30, "every tweet read")
    finally:
        stop.set()
        thread.join(30)
    assert failures == []
    unacked = [
        r.getMessage()
        for r in caplog.records
        if "final checkpoint failed" in r.getMessage() or "ack failed" in r.getMessage()
    ]
    assert unacked == []  # the final ack went to the same emulator
    assert store.counts()["tweets"] == len(events)  # the final commit stored them, then acked them
    store.close()
