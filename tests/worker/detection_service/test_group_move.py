"""A partition group moves from one running detection instance to another while tweets flow.

Two `buzzwatch detect` processes share one SQLite database and the scored topic's group subscriptions
(2 groups of 4 partitions). A starts alone with DETECTION_GROUPS=all and owns both groups; half the stream
is published; once A has committed part of group 1's share, B starts with DETECTION_GROUPS=1, asks for
group 1 and gets it (A commits, acks and releases it; B takes it with the next epoch and pulls the same
subscription) while the second half is being published. Then: every tweet counted once in its group (none
lost, none by both instances), group 1 counted partly by A and partly by B, and the alerts in the shared
outbox exactly those of one detector on the whole stream.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from buzzwatch.partitions import group_of, partition_attributes, partition_of, split_partitions
from buzzwatch.pubsub import Publisher, StreamTopology, ensure_subscription
from buzzwatch.schema import Alert, ScoredTweet
from stack.emulator import PubSubEmulator
from stack.ports import free_port
from stack.processes import answers_ok
from tests.support.polling import wait_for
from tests.support.stack import DETECTOR_ENV, buzzwatch, stack_env, stop
from tests.support.streams import START, background, burst, in_order
from worker.detection import BuzzDetector, DetectorConfig
from worker.detection_service.groups import group_spec
from worker.detection_service.store import alert_outbox, group_owner, group_seen_tweets

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS, GROUPS = 8, 2
DAY = START + timedelta(hours=10)
CANDIDATES = ("acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell")


def one_brand_a_group() -> dict[int, str]:
    """A brand of each group (the first candidate that falls in it)."""
    brands: dict[int, str] = {}
    for brand in CANDIDATES:
        brands.setdefault(group_of(partition_of(brand, PARTITIONS), GROUPS, PARTITIONS), brand)
    assert sorted(brands) == list(range(GROUPS))
    return brands


def stream(brands: dict[int, str]) -> list[ScoredTweet]:
    """An hour of busy traffic for each brand, each with a bad buzz in its second half."""
    tweets: list[ScoredTweet] = []
    for group, brand in brands.items():
        tweets += background(1, seed=group + 1, brand=brand, day_rate=50, start=DAY)
        tweets += burst(DAY + timedelta(minutes=35 + 5 * group), 5, 40, brand=brand, prefix=f"{brand}-burst")
    return in_order(tweets)


def alert_identity(alert: Alert) -> tuple[str, str, str, str]:
    """What makes two alerts the same alert, whichever instance fired it."""
    return (alert.brand, alert.kind, alert.window_start.isoformat(), alert.window_end.isoformat())


def healthz(port: int) -> dict[str, Any]:
    """An instance's /healthz."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        return json.loads(response.read())


def test_a_group_moves_to_a_second_instance_mid_stream_with_nothing_lost_or_counted_twice(
    emulator_env: PubSubEmulator, tmp_path: Path, unique_name: str
) -> None:
    brands = one_brand_a_group()
    tweets = stream(brands)
    topology = StreamTopology(
        project=emulator_env.project,
        tweets_topic=f"{unique_name}-tweets",
        scored_topic=f"{unique_name}-scored",
        dead_letter_topic=f"{unique_name}-dead",
        scored_subscription=f"{unique_name}-detect",
    )
    Publisher(emulator_env.project, topology.dead_letter_topic).close()
    Publisher(emulator_env.project, topology.scored_topic).close()
    for group, members in enumerate(split_partitions(GROUPS, PARTITIONS)):  # before the first tweet
        spec = replace(group_spec(topology, group, members, PARTITIONS), ack_deadline_s=10)
        ensure_subscription(emulator_env.project, spec)
    database = tmp_path / "shared.db"
    common = {
        "DATABASE_URL": f"sqlite:///{database}",
        "PUBSUB_SCORED_TOPIC": topology.scored_topic,
        "PUBSUB_SCORED_SUBSCRIPTION": topology.scored_subscription,
        "PUBSUB_DEAD_LETTER_TOPIC": topology.dead_letter_topic,
        "PUBSUB_DEAD_LETTER_SUBSCRIPTION": f"{unique_name}-dead-keep",
        "BUZZWATCH_PARTITIONS": str(PARTITIONS),
        "BUZZWATCH_PARTITION_GROUPS": str(GROUPS),
        "DETECTION_LEASE_S": "3",
    }
    ports = {"a": free_port(), "b": free_port()}
    wanted = {"a": "all", "b": "1"}
    processes = {}

    def start(name: str) -> None:
        folder = tmp_path / name
        folder.mkdir()
        env = stack_env(
            folder,
            emulator_env.env(),
            PORT=str(ports[name]),
            DETECTION_GROUPS=wanted[name],
            DETECTION_INSTANCE_ID=name,
            **common,
        )
        processes[name] = buzzwatch("detect", env=env, log_path=tmp_path / f"{name}.log")
        wait_for(
            lambda: answers_ok(f"http://127.0.0.1:{ports[name]}/healthz"),
            60,
            f"instance {name} up",
            processes[name],
            tmp_path / f"{name}.log",
        )

    engine = sa.create_engine(f"sqlite:///{database}")

    def counted(group: int) -> set[str]:
        with engine.connect() as connection:
            return set(
                connection.execute(
                    sa.select(group_seen_tweets.c.tweet_id).where(group_seen_tweets.c.group_id == group)
                ).scalars()
            )

    def owner(group: int) -> tuple[str | None, int]:
        with engine.connect() as connection:
            row = connection.execute(
                sa.select(group_owner.c.owner, group_owner.c.epoch).where(group_owner.c.group_id == group)
            ).first()
        return (None, 0) if row is None else (row[0], row[1])  # no row before the first instance made it

    def publish(part: list[ScoredTweet], chunks: int = 1) -> None:
        publisher = Publisher(emulator_env.project, topology.scored_topic)
        size = -(-len(part) // chunks)
        for start_at in range(0, len(part), size):
            for one in part[start_at : start_at + size]:
                attributes = partition_attributes(one.tweet.brands, PARTITIONS)
                publisher.publish(one.to_json(), brand=",".join(one.tweet.brands), **attributes)
            publisher.flush()
            time.sleep(0.2)
        assert publisher.close().failed == 0

    share = {g: {t.tweet.id for t in tweets if t.tweet.brands == (brand,)} for g, brand in brands.items()}
    half = len(tweets) // 2
    first, second = tweets[:half], tweets[half:]
    first_of_group1 = share[1] & {t.tweet.id for t in first}
    try:
        start("a")
        wait_for(lambda: owner(0)[0] == "a" and owner(1)[0] == "a", 30, "a owns both groups")
        publish(first)
        wait_for(
            lambda: len(counted(1)) >= len(first_of_group1) // 3,
            60,
            "a committed a third of group 1's first half",
            processes["a"],
        )
        flowing = threading.Thread(target=publish, args=(second, 20))
        flowing.start()  # the second half flows while b starts and takes group 1
        try:
            start("b")
            wait_for(lambda: owner(1) == ("b", 2), 60, "b took group 1 (epoch 2)", processes["b"])
            during = len(counted(1))
        finally:
            flowing.join()
        wait_for(lambda: all(counted(g) == share[g] for g in brands), 90, "the whole stream committed")
        health = {name: healthz(port) for name, port in ports.items()}
    finally:
        stop(list(processes.values()))
    assert owner(0)[0] is None and owner(1)[0] is None  # both released at their clean stop
    assert health["a"]["groups"] == [0] and health["b"]["groups"] == [1]
    assert health["a"]["groups_released"] == 1 and health["b"]["groups_taken"] == 1
    assert 0 < during < len(share[1])  # the move came mid-stream for group 1
    # every tweet counted exactly once: the instances' counts add up to the tweets, a's part of group 1
    # (before the move) and b's (after) included
    assert health["a"]["counted"] + health["b"]["counted"] == len(tweets)
    assert 0 < health["b"]["counted"] < len(share[1])
    reference = BuzzDetector(DetectorConfig.from_env(DETECTOR_ENV), None, None)
    expected = sorted(alert_identity(a) for t in tweets for a in reference.observe(t))
    assert {brand for brand, *_ in expected} == set(brands.values())
    with engine.connect() as connection:
        rows = connection.execute(sa.select(alert_outbox.c.payload, alert_outbox.c.group_id)).all()
    engine.dispose()
    assert sorted(alert_identity(Alert.from_dict(json.loads(payload))) for payload, _ in rows) == expected
    groups_of_brand = {brand: group for group, brand in brands.items()}
    assert all(groups_of_brand[json.loads(payload)["brand"]] == group for payload, group in rows)
