"""Two detection instances share the brands by partition; one is killed -9 mid-stream and restarted.

Each instance owns one of 2 partitions (`DETECTION_PARTITIONS`), through its own subscription to the
scored topic and its own database. The first half of the stream is published; once the victim has
committed a third of its first-half share it is SIGKILLed (what it pulled and had not committed dies with
it; the second half is still to come), started again on the same subscription and database, and the
second half is published only when the first half is all committed (a live stream: what the killed
instance held comes again within the lateness tolerance).
Then: every tweet is counted, none twice, each by the owner of its brand's partition, and the two outboxes
together hold exactly the alerts one detector gives on the whole stream.
"""

from __future__ import annotations

import json
import signal
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from buzzwatch.partitions import partition_attributes, partition_of
from buzzwatch.pubsub import Publisher, SubscriptionSpec, ensure_subscription
from buzzwatch.schema import Alert, ScoredTweet
from stack.emulator import PubSubEmulator
from stack.ports import free_port
from tests.support.polling import wait_for
from tests.support.stack import DETECTOR_ENV, buzzwatch, stack_env, stop
from tests.support.streams import START, background, burst, in_order
from worker.detection import BuzzDetector, DetectorConfig
from worker.detection_service.store import alert_outbox, read_rows, seen_tweets

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 2
ACME, GLOBEX = "acme", "globex"  # partitions 1 and 0 of 2 (pinned in tests/buzzwatch/test_partitions.py)
DAY = START + timedelta(hours=10)  # a daytime hour: the background's busy rate


def stream() -> list[ScoredTweet]:
    """An hour of busy traffic for both brands, each with a bad buzz in its second half."""
    return in_order(
        background(1, seed=1, brand=ACME, day_rate=50, start=DAY)
        + background(1, seed=2, brand=GLOBEX, day_rate=50, start=DAY)
        + burst(DAY + timedelta(minutes=35), 5, 40, brand=ACME, prefix="acme-burst")
        + burst(DAY + timedelta(minutes=40), 5, 40, brand=GLOBEX, prefix="globex-burst")
    )


def test_a_killed_instance_resumes_its_partitions_with_nothing_lost_or_counted_twice(
    emulator_env: PubSubEmulator, tmp_path: Path, unique_name: str
) -> None:
    tweets = stream()
    topic = f"{unique_name}-scored"
    Publisher(emulator_env.project, topic).close()
    owners = {0: GLOBEX, 1: ACME}
    assert {partition_of(brand, PARTITIONS): brand for brand in (ACME, GLOBEX)} == owners
    envs, databases = {}, {}
    for partition in owners:
        folder = tmp_path / f"p{partition}"
        folder.mkdir()
        subscription = f"{unique_name}-detect-p{partition}"
        ensure_subscription(
            emulator_env.project, SubscriptionSpec(name=subscription, topic=topic, ack_deadline_s=10)
        )
        envs[partition] = stack_env(
            folder,
            emulator_env.env(),
            PORT=str(free_port()),
            PUBSUB_SCORED_TOPIC=topic,
            PUBSUB_SCORED_SUBSCRIPTION=subscription,
            PUBSUB_DEAD_LETTER_TOPIC=f"{unique_name}-dead",
            PUBSUB_DEAD_LETTER_SUBSCRIPTION=f"{unique_name}-dead-p{partition}",
            BUZZWATCH_PARTITIONS=str(PARTITIONS),
            DETECTION_PARTITIONS=str(partition),
        )
        envs[partition].pop("DATABASE_URL", None)
        databases[partition] = f"sqlite:///{folder / 'buzzwatch.db'}"
    share = {p: {t.tweet.id for t in tweets if t.tweet.brands == (brand,)} for p, brand in owners.items()}
    processes: dict[int, subprocess.Popen[bytes]] = {}

    def start(partition: int) -> None:
        log = tmp_path / f"p{partition}.log"
        processes[partition] = buzzwatch("detect", env=envs[partition], log_path=log)

    def counted(partition: int) -> set[str]:
        return {row[0] for row in read_rows(databases[partition], sa.select(seen_tweets.c.tweet_id))}

    def all_counted(part: list[ScoredTweet]) -> bool:
        wanted = {t.tweet.id for t in part}
        return all(counted(p) >= wanted & share[p] for p in owners)

    def publish(part: list[ScoredTweet]) -> None:
        publisher = Publisher(emulator_env.project, topic)
        for one in part:
            attributes = partition_attributes(one.tweet.brands, PARTITIONS)
            publisher.publish(one.to_json(), brand=",".join(one.tweet.brands), **attributes)
        assert publisher.close().failed == 0

    half = len(tweets) // 2
    first, second = tweets[:half], tweets[half:]
    victim = 0
    try:
        for partition in owners:
            start(partition)
        publish(first)
        victim_first = share[victim] & {t.tweet.id for t in first}
        wait_for(
            lambda: len(counted(victim)) >= len(victim_first) // 3,
            60,
            "the victim committed a third of its first-half share",
            processes[victim],
        )
        processes[victim].send_signal(signal.SIGKILL)
        processes[victim].wait()
        start(victim)
        wait_for(lambda: all_counted(first), 60, "the first half committed (the victim's redelivered)")
        publish(second)
        wait_for(lambda: all_counted(tweets), 60, "the whole stream committed")
    finally:
        stop(list(processes.values()))
    ids = {p: counted(p) for p in owners}
    assert ids[0] | ids[1] == {t.tweet.id for t in tweets}  # nothing lost
    assert not ids[0] & ids[1]  # nothing counted in two places
    assert ids == share  # each tweet counted by the owner of its brand's partition
    reference = BuzzDetector(DetectorConfig.from_env(DETECTOR_ENV), None, None)
    expected = sorted(a.identity() for t in tweets for a in reference.observe(t))
    assert {brand for brand, *_ in expected} == {ACME, GLOBEX}
    payloads = [row[0] for p in owners for row in read_rows(databases[p], sa.select(alert_outbox.c.payload))]
    assert sorted(Alert.from_dict(json.loads(p)).identity() for p in payloads) == expected
