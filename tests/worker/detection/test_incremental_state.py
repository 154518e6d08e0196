"""Per-brand saving: a detector rebuilt from only the brands it reported changed is the detector that ran."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import timedelta
from typing import Any

from buzzwatch.schema import Alert, ScoredTweet
from tests.support.streams import START, background, burst, in_order, scored, simple_tokenize
from worker.detection import BuzzDetector, DetectorConfig
from worker.detection.detector import SAVE_LAG_MINUTES


def mixed_stream() -> list[ScoredTweet]:
    """A busy, a mid and a quiet brand over 30 hours (buzzes, copies, one author), some tweets minutes to
    an hour late, then an 8-day silence (a skipped gap) and two more hours."""
    tweets = background(30, seed=1, brand="busy", day_rate=4.0)
    tweets += background(30, seed=2, brand="mid", day_rate=1.0, night_rate=0.05)
    tweets += background(30, seed=3, brand="quiet", day_rate=0.1, night_rate=0.01)
    tweets += burst(START + timedelta(hours=20), 25, 5, brand="mid")
    tweets += burst(START + timedelta(hours=26), 20, 6, brand="busy", text="RT @x: awful", retweet_of="9")
    tweets += burst(START + timedelta(hours=27), 20, 4, brand="busy", prefix="rant", author="ranter")
    rng = random.Random(5)
    delays = {t.tweet.id: timedelta(minutes=rng.choice([0] * 30 + [2, 40, 70])) for t in tweets}
    stream = sorted(in_order(tweets), key=lambda t: t.tweet.created_at + delays[t.tweet.id])
    later = [
        replace(t, tweet=replace(t.tweet, created_at=t.tweet.created_at + timedelta(days=8)))
        for t in in_order(background(2, seed=4, brand="busy", start=START + timedelta(hours=30)))
    ]
    return stream + later


def as_saved(payload: dict[str, Any]) -> dict[str, Any]:
    """Through JSON, as a database row holds it."""
    return json.loads(json.dumps(payload))


class RowStore:
    """What the detection store keeps: one global row and one row per brand, written incrementally."""

    def __init__(self) -> None:
        self.global_row: dict[str, Any] = {}
        self.brand_rows: dict[str, dict[str, Any]] = {}
        self.writes: list[list[str]] = []  # the brands written at each checkpoint

    def checkpoint(self, detector: BuzzDetector) -> None:
        changed = detector.changed_brands()
        for brand in changed:
            self.brand_rows[brand] = as_saved(detector.brand_state_dict(brand))
        self.global_row = as_saved(detector.global_state_dict())
        detector.mark_saved(changed)
        self.writes.append(changed)

    def load(self) -> BuzzDetector:
        state = {**self.global_row, "brands": self.brand_rows}
        return BuzzDetector.from_state(state, tokenizer=simple_tokenize)


def test_a_detector_restored_from_changed_brands_only_matches_the_one_that_ran() -> None:
    config = DetectorConfig()
    stream = mixed_stream()
    uninterrupted = BuzzDetector(config, tokenizer=simple_tokenize)
    expected = [a for t in stream for a in uninterrupted.observe(t)] + uninterrupted.flush()

    store = RowStore()
    detector = BuzzDetector(config, tokenizer=simple_tokenize)
    alerts: list[Alert] = []
    lags = []
    for index, tweet in enumerate(stream):
        alerts.extend(detector.observe(tweet))
        if index % 10 == 9:  # a checkpoint
            store.checkpoint(detector)
            next_minute = store.global_row["next_minute"]
            lags.append(max(next_minute - row["next_minute"] for row in store.brand_rows.values()))
            if index % 500 == 499:  # a restart from the saved rows
                restored = store.load()
                assert as_saved(restored.state_dict()) == as_saved(detector.state_dict()), index
                detector = restored
    alerts.extend(detector.flush())

    assert [a.to_dict() for a in alerts] == [a.to_dict() for a in expected]
    assert len(expected) >= 3
    assert max(lags) > 1  # saved brands did lag behind the watermark (and were replayed) ...
    assert max(lags) <= SAVE_LAG_MINUTES  # ... never more than the bound
    quiet_writes = sum("quiet" in written for written in store.writes)
    assert quiet_writes < len(store.writes) / 2  # the quiet brand was not written at every checkpoint


def test_only_brands_given_tweets_are_changed_until_their_save_lags() -> None:
    detector = BuzzDetector(DetectorConfig(), tokenizer=simple_tokenize)
    morning = START + timedelta(hours=8)
    first = background(1, seed=1, brand="a", day_rate=3.0, start=morning)
    for tweet in in_order(first + background(1, seed=2, brand="b", start=morning)):
        detector.observe(tweet)
    assert sorted(detector.changed_brands()) == ["a", "b"]
    detector.mark_saved(["a", "b"])
    assert detector.changed_brands() == []
    later = background(2, seed=1, brand="a", day_rate=3.0, start=morning)[len(first) :]
    for tweet in in_order(later)[:3]:  # a few minutes on: only "a" has new tweets
        detector.observe(tweet)
    assert detector.changed_brands() == ["a"]
    for tweet in in_order(later)[3:]:  # an hour on: "b" was saved too long ago
        detector.observe(tweet)
    assert set(detector.changed_brands()) == {"a", "b"}


def test_a_skipped_gap_changes_every_brand() -> None:
    detector = BuzzDetector(DetectorConfig(max_gap_minutes=5), tokenizer=simple_tokenize)
    morning = START + timedelta(hours=8)
    tweets = in_order(
        background(1, seed=1, brand="a", start=morning) + background(1, seed=2, brand="b", start=morning)
    )
    for tweet in tweets:
        detector.observe(tweet)
    detector.mark_saved(["a", "b"])
    silence_end = tweets[-1].tweet.created_at + timedelta(minutes=8)  # a skipped gap, < SAVE_LAG_MINUTES
    detector.observe(scored("after", silence_end, "neutral", "back again", ("a",)))
    assert detector.changed_brands() == ["a", "b"]


def test_a_restart_with_another_config_saves_every_brand_again() -> None:
    detector = BuzzDetector(DetectorConfig(), tokenizer=simple_tokenize)
    for tweet in in_order(background(2, seed=1, brand="a") + background(2, seed=2, brand="b")):
        detector.observe(tweet)
    store = RowStore()
    store.checkpoint(detector)
    assert store.load().changed_brands() == []
    state = {**store.global_row, "brands": store.brand_rows}
    other = BuzzDetector.from_state(state, simple_tokenize, config=DetectorConfig(windows_minutes=(5, 30)))
    assert sorted(other.changed_brands()) == ["a", "b"]
