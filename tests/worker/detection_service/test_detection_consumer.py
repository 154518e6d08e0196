"""The detection consumer acks only what a commit stored: a failed commit hands its messages back at once."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from buzzwatch.pubsub import StreamTopology, pull_batch, subscriber_client, subscription_path
from buzzwatch.schema import TweetEvent
from buzzwatch.settings import CommonSettings
from buzzwatch.telemetry import LocalTelemetry
from stack.emulator import PubSubEmulator
from stack.ports import free_port
from tests.support.polling import wait_for
from tests.support.pubsub import pull_until
from tests.support.stack import publish_scored, stream_events
from worker.detection import DetectorConfig
from worker.detection_service.consumer import DetectionConsumer
from worker.detection_service.server import serve_health
from worker.detection_service.service import DetectionService
from worker.detection_service.settings import DetectionSettings
from worker.detection_service.store import DetectionStore, FencedError

pytestmark = pytest.mark.integration


class NoMail:
    def spool(self, key: str, alert: object) -> None:
        raise AssertionError("no alert expected")


def scored_path(name: str) -> StreamTopology:
    """The scored topic, its detection subscription and the dead-letter path, named for one test."""
    env = dict(
        os.environ,
        PUBSUB_SCORED_TOPIC=f"{name}-scored",
        PUBSUB_SCORED_SUBSCRIPTION=f"{name}-detector",
        PUBSUB_DEAD_LETTER_TOPIC=f"{name}-dead",
        PUBSUB_DEAD_LETTER_SUBSCRIPTION=f"{name}-dead-keep",
    )
    topology = StreamTopology.from_settings(CommonSettings.from_env(env))
    topology.ensure_scored_path()  # the subscription's ack deadline is 60 s: only a nack is faster
    return topology


def consume(
    store: DetectionStore, topology: StreamTopology, tmp_path: Path, calm_minutes: int
) -> tuple[DetectionService, list[TweetEvent], threading.Event, threading.Thread]:
    """Publish a calm stream to the scored topic and start a detection consumer on it, in a thread."""
    service = DetectionService(store, NoMail(), LocalTelemetry(tmp_path), DetectorConfig())  # type: ignore[arg-type]
    consumer = DetectionConsumer(service, DetectionSettings(checkpoint_interval_s=0.2))
    events = stream_events(calm_minutes=calm_minutes, buzz_minutes=0, tail_minutes=0)
    publish_scored(events, topology.project, topology.scored_topic)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(topology, stop))
    thread.start()
    return service, events, stop, thread


def test_a_failed_commit_hands_the_held_messages_back_and_each_tweet_is_counted_once(
    emulator_env: PubSubEmulator, tmp_path: Path, unique_name: str
) -> None:
    topology = scored_path(unique_name)
    store = DetectionStore(f"sqlite:///{tmp_path / 'detection.db'}")
    failures = [RuntimeError("the database went away")]
    commit = store.commit

    def first_commit_fails(*args: object, **kwargs: object) -> None:
        if failures:
            raise failures.pop()
        commit(*args, **kwargs)  # type: ignore[arg-type]

    store.commit = first_commit_fails  # type: ignore[method-assign]
    service, events, stop, thread = consume(store, topology, tmp_path, calm_minutes=30)
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


def test_a_full_disk_pauses_the_pulls_dead_letters_nothing_and_every_tweet_counts_once_it_is_freed(
    emulator_env: PubSubEmulator, tmp_path: Path, unique_name: str
) -> None:
    """SQLite's page limit refuses writes as a full disk does ("database or disk is full"). The consumer
    committed again at every pull (13 a second, a traceback each), the redeliveries reached the
    dead-letter limit and 1,241 scored tweets were dead-lettered, and /healthz said ok."""
    topology = scored_path(unique_name)
    store = DetectionStore(f"sqlite:///{tmp_path / 'detection.db'}")
    with store.engine.connect() as connection:
        pages = connection.exec_driver_sql("PRAGMA page_count").scalar_one()
    page_limit = [pages]  # full: the first commit with tweets needs pages the file cannot take

    @sa.event.listens_for(store.engine, "connect")
    def limit_pages(connection: Any, _: object) -> None:
        connection.execute(f"PRAGMA max_page_count = {page_limit[0]}")

    store.engine.dispose()
    attempts = Counter[str]()
    commit = store.commit

    def counted_commit(*args: Any, **kwargs: Any) -> None:
        attempts["commits"] += 1
        commit(*args, **kwargs)

    store.commit = counted_commit  # type: ignore[method-assign]
    service, events, stop, thread = consume(store, topology, tmp_path, calm_minutes=60)
    health = serve_health(free_port(), service)
    healthz = f"http://127.0.0.1:{health.server_address[1]}/healthz"
    try:
        wait_for(lambda: attempts["commits"] > 0, 30, "a first commit (refused for want of room)")
        time.sleep(6.0)
        assert 2 <= attempts["commits"] <= 4  # tried at 0, 1, 3 s (7 s), not at every pull
        assert pull_until(topology.project, topology.dead_letter_subscription, 1, timeout_s=2) == []
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(healthz, timeout=5)
        assert answer.value.code == 503
        body = json.loads(answer.value.read())
        assert body["status"] == "failing" and "full" in body["checkpoint"]["error"]
        assert body["checkpoint"]["failures"] == attempts["commits"]
        page_limit[0] = 1_000_000  # room again (new connections see it)
        store.engine.dispose()
        wait_for(lambda: store.counts()["tweets"] == len(events), 90, "every tweet committed once freed")
        with urllib.request.urlopen(healthz, timeout=5) as ok:
            assert json.loads(ok.read())["status"] == "ok"
    finally:
        stop.set()
        thread.join(30)
        health.shutdown()
    assert not thread.is_alive()
    assert service.failing is None and service.totals["counted"] == len(events)
    assert pull_until(topology.project, topology.dead_letter_subscription, 1, timeout_s=3) == []
    store.close()


def test_a_stop_whose_last_commit_is_refused_hands_its_messages_back_at_once(
    emulator_env: PubSubEmulator, tmp_path: Path, unique_name: str
) -> None:
    """Another instance took over (the commit fenced) or the database was locked at the stop: the held
    messages were left to their 60 s ack deadline before the instance taking over could have them."""
    topology = scored_path(unique_name)
    store = DetectionStore(f"sqlite:///{tmp_path / 'detection.db'}")
    service = DetectionService(store, NoMail(), LocalTelemetry(tmp_path), DetectorConfig())  # type: ignore[arg-type]
    consumer = DetectionConsumer(service, DetectionSettings(checkpoint_interval_s=3600.0))
    events = stream_events(calm_minutes=10, buzz_minutes=0, tail_minutes=0)
    publish_scored(events, topology.project, topology.scored_topic)
    client = subscriber_client()
    path = subscription_path(topology.project, topology.scored_subscription)
    received: list[Any] = []
    while len(received) < len(events):  # held, not committed yet: the stop comes between two commits
        batch = pull_batch(client, path, 100, return_immediately=False)
        consumer.on_batch(client, path, batch)
        received += batch
    refused = FencedError("the database has moved on from a (epoch 1): commit refused")

    def fenced(*args: Any, **kwargs: Any) -> None:
        raise refused

    store.commit = fenced  # type: ignore[method-assign]
    consumer._final_commit(None)
    client.close()
    assert store.counts()["tweets"] == 0
    again = pull_until(topology.project, topology.scored_subscription, len(events), timeout_s=10)
    assert len({m.message_id for m in again}) == len(events)  # at once, not after the ack deadline
    store.close()
