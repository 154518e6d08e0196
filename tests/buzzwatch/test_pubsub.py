"""The publisher and the ingester against the real Pub/Sub emulator."""

from __future__ import annotations

import csv
import json
import os
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.cloud.pubsub_v1.types import LimitExceededBehavior

from buzzwatch.pubsub import (
    Publisher,
    PublisherSettings,
    StreamTopology,
    SubscriptionSpec,
    ensure_subscription,
    ensure_topic,
    subscriber_client,
)
from buzzwatch.schema import TweetEvent
from buzzwatch.settings import CommonSettings
from ingest.service import IngestSettings, SourceOptions, run_ingest
from tests.support.pubsub import pull_until

pytestmark = pytest.mark.integration
PROJECT = "buzzwatch-local"


def _ingest_env(name: str, var_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        BUZZWATCH_VAR_DIR=str(var_dir),
        PUBSUB_TWEETS_TOPIC=f"{name}-tweets",
        PUBSUB_SCORED_TOPIC=f"{name}-scored",
        PUBSUB_DEAD_LETTER_TOPIC=f"{name}-dead",
        PUBSUB_TWEETS_SUBSCRIPTION=f"{name}-worker",
        PUBSUB_SCORED_SUBSCRIPTION=f"{name}-detector",
        PUBSUB_DEAD_LETTER_SUBSCRIPTION=f"{name}-dead-keep",
    )
    return env


def _write_csv(path: Path, count: int) -> None:
    start = datetime(2015, 2, 24, 8, 0, tzinfo=UTC)
    airlines = ["United", "US Airways", "American", "Southwest", "Delta", "Virgin America"]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "created_at", "text", "airline"])
        for index in range(count):
            moment = start + timedelta(seconds=(index * 7919) % count)  # shuffled event times
            writer.writerow(
                [str(10_000 + index), moment.isoformat(), f"tweet number {index}", airlines[index % 6]]
            )


def test_replayed_tweets_are_published_and_read_back_exactly_once(emulator_env, unique_name, tmp_path):
    count = 3000
    replay = tmp_path / "tweets.csv"
    _write_csv(replay, count)
    env = _ingest_env(unique_name, tmp_path)
    common = CommonSettings.from_env(env)
    summary = run_ingest(
        SourceOptions("replay", replay),
        StreamTopology.from_settings(common),
        IngestSettings.from_env(env, common),
        threading.Event(),
    )
    assert summary["published"] == count and summary["failed"] == 0 and summary["bad_input"] == 0

    received = pull_until(PROJECT, f"{unique_name}-worker", count, then_after_s=0)
    events = [TweetEvent.from_json(message.data) for message in received]
    assert len(events) == count
    assert sorted(int(event.id) for event in events) == list(range(10_000, 10_000 + count))
    by_id = {message.attributes["brand"] for message in received}
    assert by_id == {"united", "usairways", "americanair", "southwestair", "jetblue", "virginamerica"}
    message = received[0]
    assert message.attributes["source"] == "replay" and message.attributes["lang"] == "und"
    assert message.attributes["brand"] == ",".join(TweetEvent.from_json(message.data).brands)


def test_flow_control_blocks_the_caller_until_batches_complete(emulator_env, unique_name):
    settings = PublisherSettings(max_messages=1000, max_latency_s=0.3, flow_message_limit=5)
    assert settings.publisher_options().flow_control.limit_exceeded_behavior == LimitExceededBehavior.BLOCK
    publisher = Publisher(PROJECT, unique_name, settings)
    started = time.monotonic()
    call_times = []
    for index in range(15):
        publisher.publish(f"m{index}".encode())
        call_times.append(time.monotonic() - started)
    stats = publisher.close()
    assert stats.published == 15 and stats.failed == 0
    # Five fit; the sixth waits until the first batch (sent after max_latency) is confirmed, and so on.
    assert call_times[4] < 0.2
    assert call_times[5] >= 0.25
    assert call_times[14] >= 0.55


def test_close_waits_for_every_publish(emulator_env, unique_name):
    topic = ensure_topic(PROJECT, unique_name)
    ensure_subscription(PROJECT, SubscriptionSpec(name=f"{unique_name}-sub", topic=topic))
    settings = PublisherSettings(max_latency_s=60, max_messages=10_000, max_bytes=100_000)
    publisher = Publisher(PROJECT, unique_name, settings)
    for index in range(500):
        publisher.publish(json.dumps({"n": index}).encode(), kind="test")
    # Nothing sent yet, however slow the loop under load: the batch is neither full nor a minute old.
    assert publisher.stats.pending == 500
    # Too large to join it: the batch goes now, then this message alone (a 0.5 s latency here once let 211
    # of 500 go out before close under load, and waiting a minute's latency would make the test slow).
    publisher.publish(json.dumps({"n": 500, "pad": "x" * settings.max_bytes}).encode(), kind="test")
    stats = publisher.close()
    assert (stats.published, stats.pending, stats.failed) == (501, 0, 0)
    received = pull_until(PROJECT, f"{unique_name}-sub", 501, then_after_s=0)
    assert sorted(json.loads(message.data)["n"] for message in received) == list(range(501))


def test_messages_given_up_at_a_second_interrupt_are_spooled_and_counted(
    private_emulator, unique_name, tmp_path
):
    """A second Ctrl-C while the ingester waited for Pub/Sub (down) ended it with no summary and nothing in
    failed.jsonl: 188 tweets accepted, how many lost unknown. Now each unconfirmed one is in the spool."""
    ensure_topic(PROJECT, unique_name)
    spool = tmp_path / "failed.jsonl"
    publisher = Publisher(PROJECT, unique_name, PublisherSettings(backoff_initial_s=0.2), failed_path=spool)
    private_emulator.stop()
    for index in range(30):
        publisher.publish(json.dumps({"n": index}).encode())
    time.sleep(0.5)  # in the client's retries and the publisher's
    assert publisher.abandon("interrupted while waiting for Pub/Sub") == 30
    private_emulator.start()  # the client's retries end (the topic is gone), then it closes
    stats = publisher.close(timeout_s=5)
    assert (stats.published, stats.failed, stats.pending) == (0, 30, 0)
    assert sorted(json.loads(line)["n"] for line in spool.read_text().splitlines()) == list(range(30))


def test_a_message_that_cannot_be_published_is_counted_logged_and_spooled(emulator_env, tmp_path, caplog):
    spool = tmp_path / "failed.jsonl"
    # "x" is not a valid topic name: the service refuses it for good (INVALID_ARGUMENT), no retry helps.
    publisher = Publisher(
        PROJECT, "x", PublisherSettings(max_attempts=3), failed_path=spool, create_topic=False
    )
    publisher.publish(b'{"id": "1"}')
    stats = publisher.close(timeout_s=30)
    assert (stats.published, stats.failed, stats.pending) == (0, 1, 0)
    assert stats.errors == {"InvalidArgument": 1}
    assert spool.read_text() == '{"id": "1"}\n'
    assert "publish failed for good" in caplog.text


def _stdin_ingest(env: dict[str, str], reader: Any, summary: dict) -> threading.Thread:
    """`buzzwatch ingest --source stdin` on `reader` in a thread, which puts its summary in `summary`."""
    common = CommonSettings.from_env(env)
    settings = replace(
        IngestSettings.from_env(env, common), publisher=PublisherSettings(backoff_initial_s=0.2)
    )
    options, topology = SourceOptions("stdin", stdin=reader), StreamTopology.from_settings(common)
    runner = threading.Thread(
        target=lambda: summary.update(run_ingest(options, topology, settings, threading.Event()))
    )
    runner.start()
    return runner


def test_the_ingester_recovers_by_itself_when_the_emulator_restarts(private_emulator, unique_name, tmp_path):
    env = {**_ingest_env(unique_name, tmp_path), **private_emulator.env()}
    read_end, write_end = os.pipe()
    summary: dict = {}
    with os.fdopen(read_end) as reader, os.fdopen(write_end, "w") as writer:
        runner = _stdin_ingest(env, reader, summary)

        def send(first: int, last: int) -> None:
            for index in range(first, last):
                line = {"id": str(index), "created_at": "2026-11-25T21:00:00Z", "text": f"@united {index}"}
                writer.write(json.dumps(line) + "\n")
            writer.flush()

        send(0, 100)
        before = pull_until(PROJECT, f"{unique_name}-worker", 100, then_after_s=0)
        assert len(before) == 100

        private_emulator.restart()  # every topic, subscription and message is gone
        send(100, 300)
        writer.close()
        runner.join(timeout=60)
    assert not runner.is_alive()
    assert summary["failed"] == 0 and summary["published"] == 300
    assert summary["topic_recreations"] >= 1 and summary["retried"] >= 1
    after = pull_until(PROJECT, f"{unique_name}-worker", 200, then_after_s=0)
    assert sorted(int(TweetEvent.from_json(m.data).id) for m in after) == list(range(100, 300))


def test_tweets_sent_while_the_emulator_is_down_all_arrive_once_it_is_back(
    private_emulator, unique_name, tmp_path, caplog
):
    """Batches the client library was still retrying (UNAVAILABLE, up to 30 s) landed in the recreated topic
    before its subscriptions were made again, and Pub/Sub confirmed and dropped them: a hostile check lost
    27 and then 50 of 600 tweets, with `failed` 0 (the topic must stay missing until no RPC is in flight)."""
    env = {**_ingest_env(unique_name, tmp_path), **private_emulator.env()}
    read_end, write_end = os.pipe()
    summary: dict = {}
    with os.fdopen(read_end) as reader, os.fdopen(write_end, "w") as writer:
        runner = _stdin_ingest(env, reader, summary)

        def send(index: int) -> None:
            line = {"id": str(index), "created_at": "2026-11-25T21:00:00Z", "text": f"@united {index}"}
            writer.write(json.dumps(line) + "\n")
            writer.flush()

        send(0)
        assert len(pull_until(PROJECT, f"{unique_name}-worker", 1, then_after_s=0)) == 1
        private_emulator.stop()
        for index in range(1, 121):  # 3 s of tweets while it is down, 3 s once it is back
            send(index)
            time.sleep(0.025)
            if index == 60:
                private_emulator.start()
        writer.close()
        runner.join(timeout=120)
    assert not runner.is_alive()
    assert summary["failed"] == 0 and summary["topic_recreations"] >= 1
    said = [record.getMessage() for record in caplog.records if record.name.startswith("buzzwatch.pubsub")]
    assert said.count("publish failed; retrying") == 1 and said.count("publishes work again") == 1, said
    after = pull_until(PROJECT, f"{unique_name}-worker", 120, then_after_s=2)
    assert sorted({int(TweetEvent.from_json(m.data).id) for m in after}) == list(range(1, 121))


def test_topology_is_idempotent_and_aligns_push_settings(emulator_env, unique_name):
    topology = StreamTopology(
        PROJECT,
        f"{unique_name}-t",
        f"{unique_name}-s",
        f"{unique_name}-d",
        f"{unique_name}-w",
        f"{unique_name}-x",
    )
    first = topology.ensure()
    assert topology.ensure() == first
    topology.ensure(push_endpoint="http://127.0.0.1:18499/push", update=False)  # create-only: left as pull
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    current = subscriber.get_subscription(subscription=first["tweets_subscription"])
    assert current.push_config.push_endpoint == ""
    assert current.dead_letter_policy.dead_letter_topic == first["dead_letter_topic"]
    assert current.dead_letter_policy.max_delivery_attempts == 5
    topology.ensure(push_endpoint="http://127.0.0.1:18499/push")
    current = subscriber.get_subscription(subscription=first["tweets_subscription"])
    assert current.push_config.push_endpoint == "http://127.0.0.1:18499/push"
    subscriber.close()


def test_a_topology_from_settings_reaches_its_emulator_with_no_process_variable(
    pubsub_emulator, unique_name, monkeypatch
):
    """The local stack's way: the emulator travels in the settings, and os.environ is left as it was."""
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    # Were Google Cloud tried instead, it would fail at once here, with no network call.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(Path("/nonexistent/key.json")))
    before = dict(os.environ)
    settings = CommonSettings.from_env({**_ingest_env(unique_name, Path("var")), **pubsub_emulator.env()})
    paths = StreamTopology.from_settings(settings).ensure()
    subscriber = subscriber_client(pubsub_emulator.endpoint)
    try:
        scored = subscriber.get_subscription(subscription=paths["scored_subscription"])
    finally:
        subscriber.close()
    assert scored.topic == paths["scored_topic"] == f"projects/{PROJECT}/topics/{unique_name}-scored"
    assert dict(os.environ) == before
