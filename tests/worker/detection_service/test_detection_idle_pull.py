"""The idle watermark in the running detection consumer: a quiet live stream closes its last minute."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from google.cloud import pubsub_v1

from buzzwatch import telemetry as names
from buzzwatch.pubsub import StreamTopology, topic_path
from buzzwatch.schema import ScoredTweet, TweetEvent
from buzzwatch.settings import CommonSettings
from buzzwatch.telemetry import LocalTelemetry, RecordingTelemetry
from stack.emulator import PubSubEmulator
from worker.detection import DetectorConfig
from worker.detection_service.consumer import DetectionConsumer
from worker.detection_service.service import DetectionService
from worker.detection_service.settings import DetectionSettings
from worker.detection_service.store import DetectionStore


class NoMail:
    def spool(self, key: str, alert: object) -> None:
        raise AssertionError("no alert expected")


def test_a_quiet_live_stream_closes_its_last_minute_without_a_new_tweet(
    emulator_env: PubSubEmulator, tmp_path: Path
) -> None:
    env = dict(os.environ)
    settings = CommonSettings.from_env(env)
    topology = StreamTopology.from_settings(settings)
    topology.ensure()
    feed = RecordingTelemetry(LocalTelemetry(tmp_path, role="detection"))
    service = DetectionService(
        DetectionStore(f"sqlite:///{tmp_path / 'detection.db'}"),
        NoMail(),  # type: ignore[arg-type]
        feed,
        DetectorConfig(lateness_tolerance_s=0.0),
        idle_quiet_s=1.0,
        idle_margin_s=0.0,
    )
    detection = DetectionConsumer(service, DetectionSettings(checkpoint_interval_s=0.5))
    stop = threading.Event()
    consumer = threading.Thread(target=detection.run, args=(topology, stop))
    consumer.start()
    try:
        # Live tweets from the last second of the previous minute: on their own they close nothing (the
        # watermark is their own time, with no tolerance), so only the idle watermark can close that minute.
        created = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(seconds=1)
        topic = topic_path(settings.gcp_project, settings.scored_topic)
        publisher = pubsub_v1.PublisherClient()
        for i in range(12):
            tweet = TweetEvent(
                id=f"idle-{i}", created_at=created, text=f"delay number {i}", brands=("united",)
            )
            scored = ScoredTweet(
                tweet=tweet, label="negative", probabilities={"negative": 1.0}, model_version="t"
            )
            publisher.publish(topic, json.dumps(scored.to_dict()).encode()).result()
        deadline = time.monotonic() + 30
        volumes: list[float] = []
        while time.monotonic() < deadline and not any(v > 0 for v in volumes):
            time.sleep(0.2)
            volumes = [
                r["value"]
                for r in feed.recent("metrics")
                if r["name"] == names.TWEET_VOLUME and r["dimensions"].get("brand") == "united"
            ]
        assert any(v > 0 for v in volumes), f"the quiet stream's last minute never closed: {volumes}"
    finally:
        stop.set()
        consumer.join(30)
