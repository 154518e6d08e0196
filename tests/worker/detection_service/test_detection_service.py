"""The detection service without Pub/Sub: the idle watermark on a fake clock, late tweets, ids once."""

from __future__ import annotations

import json
import random
import urllib.request
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from buzzwatch import telemetry as names
from buzzwatch.schema import ScoredTweet, parse_timestamp
from buzzwatch.settings import CommandError
from buzzwatch.telemetry import LocalTelemetry, RecordingTelemetry
from stack.ports import free_port
from tests.support.streams import (
    START,
    RecordingDispatcher,
    background,
    burst,
    in_order,
    minute_counts,
    run,
    scored,
    simple_tokenize,
)
from worker.detection import BuzzDetector, DetectorConfig
from worker.detection_service.consumer import DetectionConsumer
from worker.detection_service.service import DetectionService
from worker.detection_service.settings import DetectionSettings
from worker.detection_service.store import DetectionStore

DAY_SPIKE = START + timedelta(hours=38)
TOLERANCE_S = DetectorConfig().lateness_tolerance_s
QUIET_S, MARGIN_S = 10.0, 30.0


class FakeClock:
    """Wall time that moves only when the test says so."""

    def __init__(self, now: datetime) -> None:
        self.now = now.timestamp()

    def __call__(self) -> float:
        return self.now


def make_service(
    tmp_path: Path, clock: FakeClock
) -> tuple[DetectionService, RecordingDispatcher, RecordingTelemetry]:
    telemetry = RecordingTelemetry(LocalTelemetry(tmp_path, role="detection"))
    dispatcher = RecordingDispatcher()
    service = DetectionService(
        DetectionStore(f"sqlite:///{tmp_path / 'buzzwatch.db'}"),
        dispatcher,  # type: ignore[arg-type]
        telemetry,
        DetectorConfig(),
        tokenizer=simple_tokenize,
        idle_quiet_s=QUIET_S,
        idle_margin_s=MARGIN_S,
        clock=clock,
    )
    return service, dispatcher, telemetry


def payloads(tweets: Iterable[ScoredTweet]) -> list[bytes]:
    return [json.dumps(t.to_dict()).encode() for t in tweets]


def feed_live(
    service: DetectionService, clock: FakeClock, tweets: list[ScoredTweet], lag_s: float = 2.0
) -> None:
    """Deliver tweets a minute of event time at a time, `lag_s` after they happen; commit every hour."""
    batch: list[ScoredTweet] = []
    for tweet in tweets:
        if batch and tweet.tweet.created_at - batch[0].tweet.created_at >= timedelta(minutes=1):
            clock.now = batch[-1].tweet.created_at.timestamp() + lag_s
            service.process(payloads(batch))
            batch = []
            if service.pending.messages > 60:
                service.checkpoint()
        batch.append(tweet)
    clock.now = batch[-1].tweet.created_at.timestamp() + lag_s
    service.process(payloads(batch))
    service.checkpoint()


def test_the_idle_watermark_ends_an_episode_on_a_quiet_live_stream(tmp_path: Path) -> None:
    clock = FakeClock(START)
    service, dispatcher, telemetry = make_service(tmp_path, clock)
    assert service.tick() is False  # nothing seen yet: no event clock to follow
    feed_live(service, clock, in_order(background(38, seed=7) + burst(DAY_SPIKE, 20, 4)))
    assert [a.kind for a in dispatcher.sent][:1] == ["new"]
    last_arrival = clock.now
    newest = service.detector.latest_event_time
    assert service.detector.snapshot("acme")["active"]
    watermark = service.detector.watermark
    clock.now += QUIET_S - 1
    assert service.tick() is False and service.detector.watermark == watermark  # not quiet for long enough

    metrics_before = len(telemetry.recent("metrics"))
    while clock.now < last_arrival + 3 * 3600 and service.detector.snapshot("acme")["active"]:
        clock.now += 5
        service.tick()
        # Never past what the event clock allows: it ran no faster than the wall clock since the last tweet.
        assert service.detector.watermark <= newest + (clock.now - last_arrival) - TOLERANCE_S - MARGIN_S
    assert not service.detector.snapshot("acme")["active"]  # the episode ended without another tweet
    assert clock.now - last_arrival < 2 * 3600
    # Committed: the detector the store rebuilds (its brand row replays the quiet minutes) has it ended.
    resumed = BuzzDetector.from_state(service.store.load_state(), simple_tokenize)
    assert not resumed.snapshot("acme")["active"] and resumed.state_dict() == service.detector.state_dict()
    spike_scores = [m for m in telemetry.recent("metrics")[metrics_before:] if m["name"] == names.SPIKE_SCORE]
    assert len(spike_scores) >= 60  # a fresh snapshot as each quiet minute closed
    # Each figure says which event time it is of (the app's time axis), not when it was written.
    event_times = [parse_timestamp(m["dimensions"]["event_time"]) for m in spike_scores]
    assert event_times == sorted(event_times) and event_times[-1].timestamp() == service.detector.watermark


def test_the_idle_watermark_follows_an_event_clock_far_behind_the_wall_clock(tmp_path: Path) -> None:
    # A live replay of old tweets at speed x1: event time is ten years behind the wall clock.
    wall_start = datetime(2036, 1, 5, 12, tzinfo=UTC)
    clock = FakeClock(wall_start)
    service, _, _ = make_service(tmp_path, clock)
    tweets = in_order(background(2, seed=1, start=START + timedelta(hours=10)))
    offset = wall_start - tweets[0].tweet.created_at
    for tweet in tweets:
        clock.now = (tweet.tweet.created_at + offset).timestamp()
        service.process(payloads([tweet]))
    service.checkpoint()
    newest = tweets[-1].tweet.created_at.timestamp()
    clock.now += 600  # ten quiet minutes
    assert service.tick() is True
    watermark = service.detector.watermark
    assert newest + 600 - TOLERANCE_S - MARGIN_S - 60 < watermark <= newest + 600 - TOLERANCE_S - MARGIN_S
    assert service.store.load_state()["next_minute"] * 60 == watermark  # committed

    # A restarted service resumes the event clock from the saved newest event time, as if it came just now:
    # it moves the watermark again only once that estimate passes the saved watermark.
    restarted, _, _ = make_service(tmp_path, clock)
    clock.now += 600
    assert restarted.tick() is False and restarted.detector.watermark == watermark  # never backwards
    clock.now += 120
    assert restarted.tick() is True
    assert watermark < restarted.detector.watermark <= newest + 720 - TOLERANCE_S - MARGIN_S  # 720 s since


def test_no_idle_advance_while_work_waits_for_a_commit(tmp_path: Path) -> None:
    clock = FakeClock(START)
    service, _, _ = make_service(tmp_path, clock)
    tweets = in_order(background(1, seed=2, start=START + timedelta(hours=10)))
    clock.now = tweets[-1].tweet.created_at.timestamp()
    service.process(payloads(tweets))
    watermark = service.detector.watermark
    clock.now += 3600
    assert service.tick() is False and service.detector.watermark == watermark
    service.checkpoint()
    assert service.tick() is True and service.detector.watermark > watermark


def test_a_tweet_older_than_the_history_is_dropped_once_and_reported(tmp_path: Path) -> None:
    clock = FakeClock(START)
    service, _, telemetry = make_service(tmp_path, clock)
    tweets = in_order(background(6, seed=3, start=START + timedelta(hours=10)))
    late = scored("late-1", tweets[-1].tweet.created_at - timedelta(minutes=30), "negative", "late but kept")
    stale = scored("stale-1", tweets[-1].tweet.created_at - timedelta(hours=3), "negative", "too old")
    clock.now = tweets[-1].tweet.created_at.timestamp()
    service.process(payloads(tweets))
    service.process(payloads([late, stale]))
    service.checkpoint()
    assert service.detector.stats["late_counted"] == 1 and service.detector.stats["late"] == 1
    dropped = [m for m in telemetry.recent("metrics") if m["name"] == names.DEAD_LETTERED]
    assert [(m["value"], m["dimensions"]) for m in dropped] == [
        (1.0, {"reason": "late", "stage": "detection"})
    ]
    service.process(payloads([late, stale]))  # redelivered: known ids, neither counted nor dropped again
    service.checkpoint()
    assert service.detector.stats["late"] == 1 and service.detector.stats["late_counted"] == 1
    assert service.totals["duplicates"] == 2
    assert service.store.counts()["tweets"] == len(tweets) + 2


def test_a_tweet_dated_hours_ahead_of_the_clock_does_not_blind_the_other_brands(tmp_path: Path) -> None:
    # A local time read as UTC passes the edges (up to 15 h ahead): it moved the watermark 13 h ahead, and
    # every live tweet after it, of every brand, was dropped as late (the buzz below was never alerted).
    stream = in_order(
        background(38, seed=7)
        + burst(DAY_SPIKE, 20, 4)
        + background(38, seed=8, brand="other", start=START + timedelta(hours=1))
    )
    clean_clock = FakeClock(START)
    clean, _, _ = make_service(tmp_path / "clean", clean_clock)
    feed_live(clean, clean_clock, stream)
    clock = FakeClock(START)
    service, dispatcher, telemetry = make_service(tmp_path / "skewed", clock)
    at = next(i for i, t in enumerate(stream) if t.tweet.created_at >= START + timedelta(hours=30))
    ahead = scored("ahead-1", stream[at].tweet.created_at + timedelta(hours=13), "neutral", "hi", ("other",))
    near = scored("near-1", stream[at].tweet.created_at + timedelta(seconds=60), "neutral", "hi", ("other",))
    feed_live(service, clock, [*stream[:at], ahead, near, *stream[at:]])
    assert service.detector.stats["late"] == 0 and service.totals["ahead"] == 1
    assert service.totals["counted"] == len(stream) + 1  # the one 60 s ahead counted, not the other
    scored_metrics = [m for m in telemetry.recent("metrics") if m["name"] == names.TWEETS_SCORED]
    assert sum(m["value"] for m in scored_metrics) == len(stream) + 1
    assert [a.kind for a in dispatcher.sent][:1] == ["new"]
    assert service.detector.state_dict()["brands"]["acme"] == clean.detector.state_dict()["brands"]["acme"]
    dropped = [m for m in telemetry.recent("metrics") if m["name"] == names.DEAD_LETTERED]
    assert [(m["value"], m["dimensions"]) for m in dropped] == [
        (1.0, {"reason": "ahead", "stage": "detection"})
    ]
    assert service.store.known(["ahead-1"]) == {"ahead-1"}  # stored as seen: a redelivery is not retried


def test_a_new_brands_history_is_learned_not_dead_lettered(tmp_path: Path) -> None:
    """The recent-search source's first poll of a new brand: its day of past tweets, oldest first, then its
    live ones. None is dead-lettered; the brand starts from its past, in its status, and after a restart."""
    clock = FakeClock(START)
    service, _, telemetry = make_service(tmp_path, clock)
    live_from = START + timedelta(days=1, hours=12)
    watched = in_order(background(36, seed=3, start=START))
    clock.now = watched[-1].tweet.created_at.timestamp()
    service.process(payloads(watched))
    past = in_order(background(24, seed=4, brand="globex", start=live_from - timedelta(days=1)))
    live = in_order(background(0.5, seed=5, brand="globex", start=live_from))
    service.process(payloads(past))
    clock.now = live[-1].tweet.created_at.timestamp()
    service.process(payloads(live))
    service.checkpoint()
    stats = service.detector.stats
    # all but its newest seconds (within the lateness tolerance: on time) wait as its history
    assert stats["late"] == 0 and len(past) - 5 <= stats["history"] <= len(past)
    assert not [m for m in telemetry.recent("metrics") if m["name"] == names.DEAD_LETTERED]
    state = service.detector.brand_state("globex")
    assert state["state"] == "normal" and state["minutes_seen"] >= 24 * 60
    resumed, _, _ = make_service(tmp_path, clock)
    assert resumed.detector.brand_state("globex") == state


def test_redeliveries_after_an_idle_tick_count_as_an_ordered_replay_closed_as_far(tmp_path: Path) -> None:
    # What a killed process held comes again after the 60 s ack deadline, after the rest of the stream: by
    # then the idle watermark may have closed minutes that the stream's own watermark left open.
    clock = FakeClock(START)
    service, _, _ = make_service(tmp_path, clock)
    tweets = in_order(background(4, seed=6, start=START + timedelta(hours=10)))
    held = tweets[len(tweets) // 2 : len(tweets) // 2 + 30]
    feed_live(service, clock, [t for t in tweets if t not in held])
    clock.now += 90  # quiet past idle_quiet_s + idle_margin_s + a minute: the tick closes a minute at least
    assert service.tick() is True
    service.process(payloads(held))
    service.checkpoint()

    committed = BuzzDetector.from_state(service.store.load_state(), simple_tokenize)
    assert committed.stats["late_counted"] == len(held) and committed.stats["late"] == 0
    replay = BuzzDetector(DetectorConfig(), simple_tokenize)
    run(replay, tweets, flush=False)
    assert replay.watermark is not None and committed.watermark is not None
    assert committed.watermark > replay.watermark  # a replay stopped at the last tweet closed less
    replay.advance_watermark(committed.watermark)
    live, ordered = minute_counts(committed.state_dict(), "acme"), minute_counts(replay.state_dict(), "acme")
    assert live.keys() == ordered.keys()
    assert all(live[m] == pytest.approx(ordered[m]) for m in ordered)  # late sums add in another order


@pytest.mark.parametrize("lag_s", [2.0, 600.0])
def test_live_ticks_never_close_a_minute_before_its_tweets_arrive(tmp_path: Path, lag_s: float) -> None:
    # Each tweet arrives lag_s (+ up to 28 s of jitter, inside the tolerance) after it happens, with quiet
    # spells in between in which the pull loop ticks every 5 s.
    clock = FakeClock(START)
    service, _, _ = make_service(tmp_path, clock)
    rng = random.Random(5)
    tweets = in_order(background(3, seed=4, start=START + timedelta(hours=10), day_rate=0.3))
    arrivals = sorted((t.tweet.created_at.timestamp() + lag_s + rng.uniform(0, 28), t) for t in tweets)
    ticked = 0
    for arrival, tweet in arrivals:
        while clock.now + 5 < arrival:
            clock.now += 5
            ticked += service.tick()
        clock.now = arrival
        service.process(payloads([tweet]))
        service.checkpoint()
    assert ticked > 20  # the quiet spells did move the watermark
    stats = service.detector.stats
    assert stats["observed"] == len(tweets)
    assert stats["late_counted"] == stats["late"] == 0  # every minute was still open for its tweets


@pytest.mark.integration
def test_each_brands_phase_is_in_the_status_and_the_feed_and_survives_a_restart(tmp_path: Path) -> None:
    from worker.detection_service.server import serve_health

    first = START + timedelta(hours=12)
    calm = in_order(background(3, seed=3, day_rate=1.0, night_rate=1.0, start=first))
    clock = FakeClock(first)
    service, _, telemetry = make_service(tmp_path, clock)
    assert service.brand_states == {}
    feed_live(service, clock, calm)
    learning = service.brand_states["acme"]
    assert learning["state"] == "learning" and 0 < learning["learning_progress"] < 1
    states = [m for m in telemetry.recent("metrics") if m["name"] == names.BRAND_STATE]
    assert {k: v for k, v in states[-1]["dimensions"].items() if k != "event_time"} == {
        "brand": "acme",
        "state": "learning",
    }
    assert states[-1]["value"] == learning["learning_progress"]

    buzz = burst(first + timedelta(hours=3, minutes=5), 20, 6)
    feed_live(service, clock, in_order(background(0.5, seed=4, start=first + timedelta(hours=3)) + buzz))
    assert service.brand_states["acme"]["state"] == "bad_buzz"
    port = free_port()
    server = serve_health(port, service, telemetry)
    try:
        status = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz"))
        # a port in use, one out of range, a host of no machine: one line each, not a traceback
        for host, taken in (("127.0.0.1", port), ("127.0.0.1", 99_999), ("999.1.1.1", free_port())):
            with pytest.raises(CommandError, match=f"cannot serve /healthz on {host}:{taken}: "):
                serve_health(taken, service, telemetry, host=host)
    finally:
        server.shutdown()
    assert status["brands"]["acme"]["state"] == "bad_buzz"

    restarted, _, _ = make_service(tmp_path, clock)  # a new process on the same store
    assert restarted.brand_states == service.brand_states
    assert restarted.brand_states["acme"]["minutes_seen"] > learning["minutes_seen"]


def test_the_commit_interval_runs_from_the_end_of_a_slow_commit(tmp_path: Path) -> None:
    """A commit slower than the interval (a large state) must not make the next pull commit at once."""
    service, _, _ = make_service(tmp_path, FakeClock(START + timedelta(hours=1)))  # after the tweets
    monotonic = FakeClock(START)  # the consumer's rhythm clock, moved by hand
    store_commit = service.store.commit

    def slow_commit(*args: object, **kwargs: object) -> None:
        monotonic.now += 0.5  # the commit takes longer than the interval
        store_commit(*args, **kwargs)  # type: ignore[arg-type]

    service.store.commit = slow_commit  # type: ignore[method-assign]
    consumer = DetectionConsumer(service, DetectionSettings(checkpoint_interval_s=0.3), clock=monotonic)
    service.process(payloads(in_order(background(0.1, seed=3, start=START))))
    consumer.commit()
    assert service.totals["counted"] > 0
    assert not consumer.due()
    monotonic.now += 0.4  # past the interval since the END of the commit
    assert consumer.due()
    service.store.close()


def test_two_instances_owning_half_the_partitions_count_each_brand_once_with_the_same_alerts(
    tmp_path: Path,
) -> None:
    """A static split by brand (DETECTION_PARTITIONS): each brand in exactly one place, nothing lost."""
    acme, globex = "acme", "globex"  # partitions 1 and 0 of 2 (pinned in tests/buzzwatch/test_partitions.py)
    both = [
        scored(f"both-{i}", START + timedelta(hours=30, minutes=i), "neutral", f"hello {i}", (acme, globex))
        for i in range(10)
    ]
    tweets = in_order(
        background(38, seed=7, brand=acme)
        + background(38, seed=8, brand=globex)
        + burst(DAY_SPIKE, 20, 4, brand=globex)
        + both
    )
    runs = {}
    for name, owned in (("all", None), ("p0", frozenset({0})), ("p1", frozenset({1}))):
        folder = tmp_path / name
        folder.mkdir()
        clock = FakeClock(START)
        service, dispatcher, _ = make_service(folder, clock)
        service.owned_partitions, service.partitions = owned, 2
        feed_live(service, clock, tweets)
        runs[name] = (service, dispatcher)
    whole, half0, half1 = (runs[name][0] for name in ("all", "p0", "p1"))
    assert set(half0.detector.brands) == {globex} and set(half1.detector.brands) == {acme}
    assert half0.totals["counted"] + half1.totals["counted"] == whole.totals["counted"] + len(both)
    assert half0.totals["not_owned"] + half1.totals["not_owned"] == len(tweets) - len(both)

    def alerts(name: str) -> list[tuple[str, str, str, str]]:
        sent = runs[name][1].sent
        return sorted(a.identity() for a in sent)

    assert alerts("all") and any(brand == globex for brand, *_ in alerts("all"))
    assert sorted(alerts("p0") + alerts("p1")) == alerts("all")
