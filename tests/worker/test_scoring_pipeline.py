"""The scoring worker's group commit (ScoringPipeline) and confirmed publishing, on the real emulator."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from buzzwatch.pubsub import (
    Publisher,
    PublishError,
    PublisherSettings,
    SubscriptionSpec,
    ensure_subscription,
    ensure_topic,
)
from buzzwatch.schema import MAX_BRAND_CHARS, MAX_BRANDS, MAX_LANG_CHARS, TweetEvent
from buzzwatch.telemetry import LocalTelemetry
from stack.emulator import PubSubEmulator
from tests.support.pubsub import pull_until
from worker.scoring import ScoringPipeline, ScoringService, TransientError

PROJECT = "buzzwatch-local"


def tweet(i: int, text: str = "my flight was late") -> TweetEvent:
    return TweetEvent(id=f"p{i}", created_at=datetime(2015, 2, 20, tzinfo=UTC), text=text, brands=("united",))


class SlowModel:
    """Labels every tweet negative after `delay_s`; records the size of each call (one call = one group)."""

    model_version = "slow-test"

    def __init__(self, delay_s: float = 0.05, gate: threading.Event | None = None) -> None:
        self.delay_s = delay_s
        self.gate = gate
        self.calls: list[int] = []
        self.entered = threading.Event()  # set once a call is inside the model

    def predict(self, texts: list[str]) -> list[Any]:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        time.sleep(self.delay_s)
        self.calls.append(len(texts))
        return [
            SimpleNamespace(
                label="negative", probabilities={"negative": 0.9}, model_version=self.model_version
            )
            for _ in texts
        ]


class RecordingPublisher:
    """Stands in for the confirmed Publisher where the test is about grouping, not Pub/Sub."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.groups: list[list[str]] = []

    def publish_confirmed(self, messages: list[tuple[bytes, dict[str, str]]]) -> list[str]:
        if self.fail:
            raise PublishError("Pub/Sub is down")
        self.groups.append([json.loads(data)["id"] for data, _ in messages])
        return [str(i) for i in range(len(messages))]

    def close(self) -> None:
        pass


def run_concurrently(pipeline: ScoringPipeline, count: int, timeout_s: float = 10) -> list[Any]:
    """`count` threads each process one tweet; each slot holds its ScoredTweet id or the exception raised."""
    results: list[Any] = [None] * count

    def one(i: int) -> None:
        try:
            results[i] = pipeline.process([tweet(i)], timeout_s)[0].tweet.id
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_concurrent_requests_form_groups_and_each_gets_its_own_tweet(tmp_path) -> None:
    model, publisher = SlowModel(), RecordingPublisher()
    pipeline = ScoringPipeline(model, None, publisher, LocalTelemetry(tmp_path), max_batch=256, flushes=1)
    results = run_concurrently(pipeline, 24)
    assert results == [f"p{i}" for i in range(24)]
    assert sum(model.calls) == 24
    assert len(model.calls) < 24  # requests that waited behind a flush were scored together
    assert max(model.calls) > 1
    published = [i for group in publisher.groups for i in group]
    assert sorted(published) == sorted(f"p{i}" for i in range(24))


def test_groups_never_exceed_max_batch_nor_the_flush_slots(tmp_path) -> None:
    model = SlowModel(delay_s=0.02)
    pipeline = ScoringPipeline(
        model, None, RecordingPublisher(), LocalTelemetry(tmp_path), max_batch=3, flushes=2
    )
    in_flight, peak = [0], [0]
    lock = threading.Lock()
    predict = model.predict

    def counting(texts: list[str]) -> list[Any]:
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        try:
            return predict(texts)
        finally:
            with lock:
                in_flight[0] -= 1

    model.predict = counting  # type: ignore[method-assign]
    assert run_concurrently(pipeline, 20) == [f"p{i}" for i in range(20)]
    assert max(model.calls) <= 3
    assert peak[0] <= 2


@pytest.mark.parametrize("flushes", [1, 2])
def test_many_threads_in_rounds_never_lose_a_wake_up(tmp_path, flushes: int) -> None:
    """48 threads x 15 tweets, one at a time: each call gets its own tweet, none waits for its timeout."""
    model = SlowModel(delay_s=0.001)
    pipeline = ScoringPipeline(
        model, None, RecordingPublisher(), LocalTelemetry(tmp_path), max_batch=5, flushes=flushes
    )
    answers: dict[int, list[str]] = {}

    def rounds(worker: int) -> None:
        answers[worker] = [
            pipeline.process([tweet(worker * 100 + k)], timeout_s=5)[0].tweet.id for k in range(15)
        ]

    started = time.monotonic()
    threads = [threading.Thread(target=rounds, args=(w,)) for w in range(48)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert time.monotonic() - started < 20
    assert answers == {w: [f"p{w * 100 + k}" for k in range(15)] for w in range(48)}
    assert sum(model.calls) == 48 * 15 and max(model.calls) <= 5


def test_a_failed_publish_fails_every_request_of_the_group_then_recovers(tmp_path) -> None:
    publisher = RecordingPublisher(fail=True)
    pipeline = ScoringPipeline(SlowModel(0.01), None, publisher, LocalTelemetry(tmp_path), flushes=1)
    results = run_concurrently(pipeline, 6)
    assert all(isinstance(r, TransientError) for r in results)
    publisher.fail = False
    assert run_concurrently(pipeline, 3) == ["p0", "p1", "p2"]


def test_a_stuck_model_times_out_as_a_transient_error(tmp_path) -> None:
    gate = threading.Event()
    model = SlowModel(0.0, gate)
    pipeline = ScoringPipeline(model, None, RecordingPublisher(), LocalTelemetry(tmp_path), flushes=1)
    holder = threading.Thread(target=lambda: pipeline.process([tweet(1)], 10))
    holder.start()
    assert model.entered.wait(10)  # the first group holds the model
    started = time.monotonic()
    with pytest.raises(TransientError, match="within"):
        pipeline.process([tweet(2)], 0.3)
    assert time.monotonic() - started < 2
    gate.set()
    holder.join(10)


def test_confirmed_publishing_splits_large_groups_and_recreates_a_lost_topic(
    emulator_env: PubSubEmulator, tmp_path
) -> None:
    topic, subscription = "pipeline-scored", "pipeline-scored-check"

    def recreate() -> None:
        ensure_subscription(PROJECT, SubscriptionSpec(name=subscription, topic=topic))

    recoveries: list[int] = []
    publisher = Publisher(
        PROJECT,
        topic,
        PublisherSettings(request_max_messages=3),
        create_topic=False,
        on_topic_missing=lambda: (recoveries.append(1), recreate()),
    )
    try:
        ids = publisher.publish_confirmed([(f"m{i}".encode(), {"n": str(i)}) for i in range(10)])  # no topic
        assert len(ids) == len(set(ids)) == 10
        assert recoveries == [1]
        received = pull_until(PROJECT, subscription, 10)
        assert sorted(m.data for m in received) == sorted(f"m{i}".encode() for i in range(10))
        assert {m.attributes["n"] for m in received} == {str(i) for i in range(10)}
        stats = publisher.stats
        assert (stats.published, stats.topic_recreations, stats.errors) == (10, 1, {"NotFound": 1})
    finally:
        publisher.close()


def test_confirmed_publishing_recovers_when_the_topic_is_deleted_mid_run(
    emulator_env: PubSubEmulator,
) -> None:
    """An emulator restart between two groups: the topic and its subscription come back before the publish."""
    from google.cloud import pubsub_v1

    topic, subscription = "pipeline-deleted", "pipeline-deleted-check"
    spec = SubscriptionSpec(name=subscription, topic=topic)
    ensure_topic(PROJECT, topic)
    ensure_subscription(PROJECT, spec)
    publisher = Publisher(
        PROJECT, topic, create_topic=False, on_topic_missing=lambda: ensure_subscription(PROJECT, spec)
    )
    try:
        publisher.publish_confirmed([(b"before", {})])
        assert [m.data for m in pull_until(PROJECT, subscription, 1)] == [b"before"]
        subscriber, admin = pubsub_v1.SubscriberClient(), pubsub_v1.PublisherClient()
        try:
            subscriber.delete_subscription(subscription=f"projects/{PROJECT}/subscriptions/{subscription}")
            admin.delete_topic(topic=f"projects/{PROJECT}/topics/{topic}")
        finally:
            subscriber.close()
        publisher.publish_confirmed([(b"after", {})])
        assert [m.data for m in pull_until(PROJECT, subscription, 1)] == [b"after"]
        assert publisher.stats.topic_recreations == 1
    finally:
        publisher.close()


def test_confirmed_publishing_fails_when_the_subscriptions_cannot_come_back(
    emulator_env: PubSubEmulator,
) -> None:
    """A recovery that could not recreate the subscriptions must not confirm messages nobody would read."""

    def broken() -> None:
        raise RuntimeError("subscriptions unavailable")

    publisher = Publisher(PROJECT, "pipeline-never-created", create_topic=False, on_topic_missing=broken)
    try:
        with pytest.raises(PublishError, match="could not be recreated"):
            publisher.publish_confirmed([(b"x", {})])
        assert publisher.stats.published == 0
    finally:
        publisher.close()


def test_a_dead_letter_publish_that_fails_is_a_transient_error(tmp_path) -> None:
    """The push route answers 500 (Pub/Sub delivers it again) when the dead letter cannot be published."""

    class Down:
        def publish_confirmed(self, messages: list[tuple[bytes, dict[str, str]]]) -> list[str]:
            raise PublishError("Pub/Sub is down")

    service = ScoringService(SimpleNamespace(), Down(), LocalTelemetry(tmp_path))  # type: ignore[arg-type]
    with pytest.raises(TransientError, match="Pub/Sub is down"):
        service.send_to_dead_letter(b"x", {}, "m1", "malformed")
    assert not service.counts


def test_a_dead_letter_always_carries_attributes_pubsub_accepts(tmp_path) -> None:
    """Whatever a bad message carried (a lone surrogate, long values, too many), its dead letter publishes."""

    class Capture:
        def __init__(self) -> None:
            self.sent: list[dict[str, str]] = []

        def publish_confirmed(self, messages: list[tuple[bytes, dict[str, str]]]) -> list[str]:
            self.sent.extend(attributes for _, attributes in messages)
            return ["1"]

    attributes = {f"key{i}": "v" for i in range(120)} | {"k\ud800" * 100: "日" * 900}
    capture = Capture()
    service = ScoringService(SimpleNamespace(), capture, LocalTelemetry(tmp_path))
    service.send_to_dead_letter(b"x", attributes, "m\udfff", "created_at is not ISO 8601: " + "日" * 900)
    (sent,) = capture.sent
    assert len(sent) <= 100 and sent["buzzwatch_stage"] == "worker"
    assert all(len(k.encode()) <= 256 and len(v.encode()) <= 1024 for k, v in sent.items())
    assert sent["original_message_id"] == "m\\udfff" and sent["buzzwatch_error"].startswith("created_at")


def test_a_tweet_at_every_limit_is_published_with_attributes_pubsub_accepts(tmp_path) -> None:
    """Pub/Sub takes at most 100 attributes, keys of 256 bytes, values of 1,024 (the emulator checks none)."""
    brands = tuple(f"b{i}".ljust(MAX_BRAND_CHARS, "x") for i in range(MAX_BRANDS))
    event = TweetEvent.from_dict(
        {
            "id": "1",
            "created_at": "2026-02-20T12:00:00Z",
            "text": "late",
            "brands": brands,
            "lang": "x" * MAX_LANG_CHARS,
        }
    )
    sent: list[dict[str, str]] = []

    class Capture(RecordingPublisher):
        def publish_confirmed(self, messages: list[tuple[bytes, dict[str, str]]]) -> list[str]:
            sent.extend(attributes for _, attributes in messages)
            return super().publish_confirmed(messages)

    pipeline = ScoringPipeline(SlowModel(delay_s=0), None, Capture(), LocalTelemetry(tmp_path))
    assert [one.tweet.brands for one in pipeline.process([event], timeout_s=5)] == [brands]
    ingested = {"brand": ",".join(event.brands), "lang": event.lang, "source": event.source}  # the ingester's
    for attributes in (*sent, ingested):
        assert len(attributes) <= 100
        assert all(len(k.encode()) <= 256 and len(v.encode()) <= 1024 for k, v in attributes.items())


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        # 2062 for 2026 (another publisher, an older ingester) moved its brand's event time there in the
        # detector, and every real tweet after it was dropped as late
        ({"created_at": datetime(2062, 2, 20, tzinfo=UTC)}, "ahead of this machine's clock"),
        ({"id": "x" * 200}, "'id' is 200 characters long"),  # no id; with 70 KB, no stream message either
        ({"author_id": "a" * 200}, "'author_id' is 200 characters long"),
        # Pub/Sub refuses an attribute value over 1,024 bytes (the emulator takes it): the scored publish of
        # its group failed, every push of the group with it, on each redelivery
        ({"brands": tuple(f"brand{i}".ljust(64, "x") for i in range(16))}, "names 16 brands"),
        ({"lang": "en-" + "x" * 2000}, "'lang' is 2,003 characters long"),
        ({"text": "\u200b\ufeff"}, "'text' must not be empty"),  # no visible character: scored as neutral
    ],
)
def test_a_bad_message_is_dead_lettered_and_its_neighbours_scored(tmp_path, bad, error) -> None:
    """Another publisher's message the schema refuses never reaches the detector, and the batch goes on."""

    class Capture:
        def __init__(self) -> None:
            self.sent: list[dict[str, str]] = []

        def publish_confirmed(self, messages: list[tuple[bytes, dict[str, str]]]) -> list[str]:
            self.sent.extend(attributes for _, attributes in messages)
            return ["1"] * len(messages)

    scored: list[TweetEvent] = []
    pipeline = SimpleNamespace(process=lambda events, timeout_s: scored.extend(events))
    capture = Capture()
    now = datetime(2026, 2, 20, 12, tzinfo=UTC)
    service = ScoringService(pipeline, capture, LocalTelemetry(tmp_path), clock=lambda: now)  # type: ignore[arg-type]
    fields = {"id": "f", "created_at": now, "text": "late", "brands": ("united",)}
    refused = TweetEvent(**(fields | bad))  # built, not parsed: as another publisher may write it
    local = TweetEvent(
        id="l", created_at=datetime(2026, 2, 21, 1, tzinfo=UTC), text="late", brands=("united",)
    )
    done, again = service.handle_batch(
        [
            (refused.to_json(), {}, "m1"),
            (local.to_json(), {}, "m2"),
            (tweet(3).to_json(), {}, "m3"),
        ]
    )
    assert (done, again) == ([0, 1, 2], [])
    assert [event.id for event in scored] == ["l", "p3"]  # 13 h ahead: a local time read as UTC still goes
    (sent,) = capture.sent
    assert error in sent["buzzwatch_error"]
    assert service.handle(refused.to_json(), {}, "m4") == "dead_lettered"
