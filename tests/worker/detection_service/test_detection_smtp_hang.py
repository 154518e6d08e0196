"""The detection consumer never waits on SMTP: with a server that hangs, it goes on counting and acking."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from google.cloud import pubsub_v1

from buzzwatch.notify import Mailer
from buzzwatch.pubsub import (
    StreamTopology,
    SubscriptionSpec,
    ensure_subscription,
    ensure_topic,
    subscription_path,
)
from buzzwatch.schema import TweetEvent
from buzzwatch.settings import CommonSettings
from buzzwatch.telemetry import LocalTelemetry, read_alerts
from stack.emulator import PubSubEmulator
from tests.support.polling import wait_for
from tests.support.stack import BRAND, CALM, publish_scored, stack_env, stream_events
from worker.detection import DetectorConfig
from worker.detection_service.consumer import DetectionConsumer
from worker.detection_service.dispatcher import AlertDispatcher
from worker.detection_service.service import DetectionService
from worker.detection_service.settings import DetectionSettings
from worker.detection_service.store import DetectionStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ACK_DEADLINE_S = 10  # the shortest Pub/Sub allows: an unacked message comes back after it


def calm_after(events: list[TweetEvent], minutes: int) -> list[TweetEvent]:
    """Two calm tweets a minute after the last event, with new ids."""
    last = events[-1].created_at
    return [
        TweetEvent(
            id=f"after{minute:03d}{index}",
            created_at=last + timedelta(minutes=minute + 1, seconds=30 * index),
            text=CALM[(minute + index) % len(CALM)].format(n=5000 + minute),
            brands=(BRAND,),
            lang="en",
            source="test",
        )
        for minute in range(minutes)
        for index in range(2)
    ]


def test_acks_and_checkpoints_go_on_while_smtp_hangs_and_the_mail_goes_when_it_recovers(
    private_emulator: PubSubEmulator, tmp_path: Path, hanging_smtp, make_smtp_sink
) -> None:
    env = stack_env(
        tmp_path,
        private_emulator.env(),
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(hanging_smtp.port),
        SMTP_TIMEOUT_S="60",  # each stuck SMTP read waits a minute: far longer than this test needs
    )
    settings = CommonSettings.from_env(env)
    topology = StreamTopology.from_settings(settings)
    ensure_topic(topology.project, topology.scored_topic)
    spec = SubscriptionSpec(
        name=topology.scored_subscription, topic=topology.scored_topic, ack_deadline_s=ACK_DEADLINE_S
    )
    ensure_subscription(topology.project, spec)
    telemetry = LocalTelemetry(tmp_path, role="detection")
    mailer = Mailer(settings.smtp, tmp_path / "mail-spool", backoff_s=0.2, max_backoff_s=0.5)
    store = DetectionStore(settings.database_url)
    service = DetectionService(
        store, AlertDispatcher(telemetry, mailer), telemetry, DetectorConfig.from_env(env)
    )
    detection = DetectionConsumer(service, DetectionSettings.from_env(env))  # a checkpoint every 0.5 s
    stop = threading.Event()
    consumer = threading.Thread(target=detection.run, args=(topology, stop))
    consumer.start()
    try:
        first = stream_events()  # a calm start, a bad buzz, a calm tail: the alert fires
        publish_scored(first, topology.project, topology.scored_topic)
        wait_for(lambda: hanging_smtp.accepted >= 1, 60, "the mail delivery to reach the hanging server")
        assert len(mailer.pending()) >= 1

        second = calm_after(first, 30)  # more tweets while the delivery thread is stuck
        publish_scored(second, topology.project, topology.scored_topic)
        wait_for(
            lambda: store.counts()["tweets"] == len(first) + len(second),
            20,
            "the tweets published while SMTP hangs to be counted (committed)",
        )
        assert mailer.pending() and hanging_smtp.accepted >= 1  # SMTP is still stuck: nothing went out
    finally:
        stop.set()
        consumer.join(30)
    stopped = time.monotonic()
    assert not consumer.is_alive()
    alerts = read_alerts(tmp_path)
    assert alerts and {a["brand"] for a in alerts} == {BRAND}

    hanging_smtp.close()  # the server recovers: the stuck connection drops, a working server takes the port
    sink = make_smtp_sink(hanging_smtp.port)
    wait_for(lambda: len(sink.messages) == len(alerts) and not mailer.pending(), 30, "the alert mails")
    assert mailer.close() == 0
    assert all(BRAND in message["Subject"] for message in sink.messages)

    # Every message was acknowledged: none comes back once the ack deadline has passed.
    time.sleep(max(0.0, stopped + ACK_DEADLINE_S + 1 - time.monotonic()))
    client = pubsub_v1.SubscriberClient()
    try:
        path = subscription_path(topology.project, topology.scored_subscription)
        response = client.pull(
            request={"subscription": path, "max_messages": 100, "return_immediately": True}, timeout=10
        )
        assert list(response.received_messages) == []
    finally:
        client.close()
        store.close()
