"""A brand added with its past: its tweets older than the watermark that come before its first live tweet
(the recent-search source's first poll) are learned first, so the brand is not new; they never alert,
and a buzz going on is told once, from the live tweets."""

from __future__ import annotations

import json
import random
from dataclasses import replace as dataclass_replace
from datetime import datetime, timedelta

import pytest

from buzzwatch.schema import ScoredTweet
from buzzwatch.settings import SettingsError
from tests.support.streams import START, background, burst, in_order, run, simple_tokenize
from worker.detection import BuzzDetector, DetectorConfig

LIVE = START + timedelta(days=3, hours=14)  # the moment the brand is added: a Thursday afternoon, UTC


def detector() -> BuzzDetector:
    return BuzzDetector(DetectorConfig(), tokenizer=simple_tokenize)


def watched_brand(until: datetime) -> list:
    """Another brand, watched all along: it moves the watermark up to `until`."""
    return background((until - START).total_seconds() / 3600, seed=5, brand="other", start=START)


def quiet(start: datetime, hours: float, seed: int) -> list:
    """The added brand's ordinary traffic: about a tweet every five minutes, a quarter negative."""
    return background(hours, seed=seed, day_rate=0.2, night_rate=0.2, start=start)


def new_alerts(alerts: list, brand: str = "acme") -> list:
    return [a for a in alerts if a.brand == brand and a.kind == "new"]


def test_a_brand_added_with_its_past_knows_its_traffic_and_alerts_sooner() -> None:
    past = quiet(LIVE - timedelta(days=2), 48, seed=1)
    live = quiet(LIVE, 3, seed=2)
    buzz = burst(LIVE + timedelta(minutes=20), 40, 0.8, prefix="buzz")
    shuffled = past[:]
    random.Random(0).shuffle(shuffled)  # pages of a poll, in any order: the same learning

    with_past = detector()
    run(with_past, watched_brand(LIVE), flush=False)
    run(with_past, shuffled, flush=False)
    assert with_past.stats["history"] == len(past) and with_past.stats["late"] == 0
    assert "acme" not in with_past.brands  # learned at its first live tweet
    alerts = run(with_past, in_order(live + buzz + watched_brand(LIVE + timedelta(hours=3))[-1:]))
    assert with_past.brand_state("acme")["state"] != "learning"  # two days of its past: not new

    without = detector()
    run(without, watched_brand(LIVE), flush=False)
    plain = run(without, in_order(live + buzz + watched_brand(LIVE + timedelta(hours=3))[-1:]))

    first = new_alerts(alerts)
    assert first and first[0].fired_at <= LIVE + timedelta(minutes=35)
    baseline = new_alerts(plain)
    assert not baseline or first[0].fired_at < baseline[0].fired_at - timedelta(minutes=5)
    # its past holds no alert, and the alert's baseline is its own traffic, not the prior's 41%
    assert all(a.fired_at >= LIVE for a in alerts if a.brand == "acme")
    assert first[0].baseline_share < 0.35


def test_the_past_is_learned_the_same_in_any_order() -> None:
    past = quiet(LIVE - timedelta(days=1), 24, seed=3)
    states = []
    for seed in (0, 1):
        shuffled = past[:]
        random.Random(seed).shuffle(shuffled)
        det = detector()
        run(det, watched_brand(LIVE), flush=False)
        run(det, shuffled + quiet(LIVE, 1, seed=4), flush=False)
        states.append(json.dumps(det.brand_state_dict("acme"), sort_keys=True))
    assert states[0] == states[1]


def test_a_buzz_going_on_when_the_brand_is_added_is_told_once_from_its_live_tweets() -> None:
    past = quiet(LIVE - timedelta(days=1), 24, seed=6)
    buzz = burst(LIVE - timedelta(minutes=40), 100, 1.5, prefix="buzz")
    earlier = [t for t in buzz if t.tweet.created_at < LIVE]
    det = detector()
    run(det, watched_brand(LIVE), flush=False)
    run(det, past + earlier, flush=False)
    alerts = run(det, in_order([t for t in buzz if t.tweet.created_at >= LIVE] + quiet(LIVE, 2, seed=7)))
    mine = [a for a in alerts if a.brand == "acme"]
    assert mine and mine[0].kind == "new"  # never an update of an episode no one was told of
    assert len(new_alerts(alerts)) == 1
    assert mine[0].started_at is not None and mine[0].started_at < LIVE  # it says the buzz began before


def test_older_tweets_of_a_brand_already_live_are_late_as_before() -> None:
    det = detector()
    run(det, watched_brand(LIVE), flush=False)
    run(det, quiet(LIVE - timedelta(minutes=1), 1, seed=8), flush=False)  # live now
    assert "acme" in det.brands
    older = quiet(LIVE - timedelta(days=1), 12, seed=9)
    run(det, older, flush=False)
    assert det.stats["history"] == 0 and det.stats["late"] == len(older)


def test_a_brand_learned_from_its_past_survives_a_restart() -> None:
    det = detector()
    run(det, watched_brand(LIVE), flush=False)
    run(det, quiet(LIVE - timedelta(days=1), 24, seed=10), flush=False)
    run(det, quiet(LIVE, 1, seed=11), flush=False)
    progress = det.brand_state("acme")
    assert progress["minutes_seen"] >= 24 * 60 - 60
    resumed = BuzzDetector.from_state(json.loads(json.dumps(det.state_dict())), simple_tokenize)
    assert resumed.brand_state("acme") == progress


def test_the_history_kept_is_bounded() -> None:
    config = DetectorConfig(history_max_tweets=50, history_max_brands=2)
    det = BuzzDetector(config, tokenizer=simple_tokenize)
    run(det, watched_brand(LIVE), flush=False)
    for brand in ("acme", "globex", "initech"):
        run(det, [replace_brand(t, brand) for t in quiet(LIVE - timedelta(days=1), 12, seed=12)], flush=False)
    held = len(quiet(LIVE - timedelta(days=1), 12, seed=12))
    assert held > 50
    assert det.stats["history"] == 2 * held and det.stats["late"] == held  # a third brand: no room
    assert [len(det._past[b].tweets) for b in ("acme", "globex")] == [50, 50]  # each its newest 50
    newest = max(t.tweet.created_at for t in det._past["acme"].tweets)
    assert newest == max(t.tweet.created_at for t in quiet(LIVE - timedelta(days=1), 12, seed=12))
    with pytest.raises(SettingsError, match="history_max_tweets must not be negative"):
        DetectorConfig(history_max_tweets=-1)


def replace_brand(tweet: ScoredTweet, brand: str) -> ScoredTweet:
    """The same tweet, of another brand (its id made that brand's own)."""
    event = dataclass_replace(tweet.tweet, id=f"{brand}-{tweet.tweet.id}", brands=(brand,))
    return dataclass_replace(tweet, tweet=event)


def test_a_past_that_came_whole_starts_its_brand_before_its_first_live_tweet() -> None:
    """A quiet brand's first live tweet may come an hour after its past: once the watermark is two minutes
    past the last of it, the brand starts from it and is saved with the state (a restart keeps it)."""
    det = detector()
    run(det, watched_brand(LIVE), flush=False)
    past = quiet(LIVE - timedelta(days=1), 24, seed=13)
    run(det, past, flush=False)
    later = watched_brand(LIVE + timedelta(minutes=10))
    moving = [t for t in later if t.tweet.created_at >= LIVE]
    one_minute = [t for t in moving if t.tweet.created_at < LIVE + timedelta(seconds=80)]
    run(det, one_minute, flush=False)
    assert "acme" not in det.brands  # the watermark moved a minute: more of its past may still come
    run(det, moving[len(one_minute) :], flush=False)
    assert "acme" in det.brands and "acme" in det.changed_brands()
    assert det.brand_state("acme")["minutes_seen"] >= 23 * 60
    resumed = BuzzDetector.from_state(json.loads(json.dumps(det.state_dict())), simple_tokenize)
    assert resumed.brand_state("acme") == det.brand_state("acme")
