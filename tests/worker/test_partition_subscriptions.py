"""Scored messages carry their brands' partitions; what the emulator does with a partition's filter."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from google.cloud import pubsub_v1

from buzzwatch.partitions import in_partitions, partition_attributes, partition_of, subscription_filter
from buzzwatch.pubsub import (
    Publisher,
    SubscriptionSpec,
    ensure_subscription,
    subscription_path,
)
from buzzwatch.schema import TweetEvent
from buzzwatch.telemetry import LocalTelemetry
from stack.emulator import PubSubEmulator
from tests.support.pubsub import pull_until
from worker.scoring import ScoringPipeline

PROJECT = "buzzwatch-local"
BRANDS = ("united", "delta", "americanair", "lufthansa", "klm", "qantas", "emirates", "ryanair")


class NegativeModel:
    model_version = "test"

    def predict(self, texts: list[str]) -> list[Any]:
        return [
            SimpleNamespace(label="negative", probabilities={"negative": 1.0}, model_version="test")
            for _ in texts
        ]


class CapturingPublisher:
    def __init__(self) -> None:
        self.attributes: list[dict[str, str]] = []

    def publish_confirmed(self, messages: list[tuple[bytes, dict[str, str]]]) -> list[str]:
        self.attributes.extend(attributes for _, attributes in messages)
        return [str(i) for i in range(len(messages))]


def test_the_scoring_worker_marks_each_message_with_its_brands_partitions(tmp_path) -> None:
    publisher = CapturingPublisher()
    pipeline = ScoringPipeline(NegativeModel(), None, publisher, LocalTelemetry(tmp_path), partitions=8)  # type: ignore[arg-type]
    created = datetime(2015, 2, 20, tzinfo=UTC)
    pipeline.process(
        [
            TweetEvent(id="a", created_at=created, text="late again", brands=("united",)),
            TweetEvent(id="b", created_at=created, text="both late", brands=("united", "delta")),
        ],
        10,
    )
    assert publisher.attributes == [
        {"brand": "united", "label": "negative", "partitions": "2", "p2": "1"},
        {"brand": "united,delta", "label": "negative", "partitions": "2,6", "p2": "1", "p6": "1"},
    ]


@pytest.mark.integration
def test_the_emulator_keeps_a_partition_filter_but_delivers_every_message(
    emulator_env: PubSubEmulator,
) -> None:
    """Measured with cloud-pubsub-emulator 0.8.20: the filter is stored, not applied (Pub/Sub applies it).

    So a partition's consumer checks the markers itself (`in_partitions`), which gives the filter's
    guarantee on both; if a newer emulator filters, this test fails and the README's note must change.
    """
    topic = "partition-filter-check"
    publisher = Publisher(PROJECT, topic)
    wanted = partition_of("delta", 8)
    name = f"partition-filter-check-p{wanted}"
    ensure_subscription(PROJECT, SubscriptionSpec(name=name, topic=topic, filter=subscription_filter(wanted)))
    for brand in BRANDS:
        publisher.publish(brand.encode(), **partition_attributes([brand], 8))
    publisher.close()
    client = pubsub_v1.SubscriberClient()
    try:
        stored = client.get_subscription(subscription=subscription_path(PROJECT, name)).filter
    finally:
        client.close()
    assert stored == f"attributes:p{wanted}"
    received = pull_until(PROJECT, name, len(BRANDS))
    assert sorted(m.data.decode() for m in received) == sorted(BRANDS)  # every message, filter or not
    kept = sorted(m.data.decode() for m in received if in_partitions(m.attributes, {wanted}))
    assert kept == sorted(b for b in BRANDS if partition_of(b, 8) == wanted)
