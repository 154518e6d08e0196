"""Sub-minute ticks: the open minute is tested every `tick_seconds` of watermark time, over its tweets
before the tick, so an alert comes seconds after its decisive tweet, not when its minute closes; the
alerts stay those of a sorted replay, for a reordered stream and across a save and restore."""

from __future__ import annotations

import json
import random
from datetime import timedelta

import pytest

from buzzwatch.schema import Alert, ScoredTweet
from tests.support.streams import START, background, burst, in_order, simple_tokenize
from worker.detection import BuzzDetector, DetectorConfig

MORNING = START + timedelta(hours=8)
BUZZ = MORNING + timedelta(hours=4, seconds=20)


def detector(tick_seconds: float = 15.0) -> BuzzDetector:
    return BuzzDetector(DetectorConfig(tick_seconds=tick_seconds), tokenizer=simple_tokenize)


def two_a_minute_with_a_buzz() -> list[ScoredTweet]:
    """A brand at 2 tweets a minute (25% negative) for 6 hours; 4 hours in, 6 more negatives a minute."""
    ordinary = background(6, seed=11, day_rate=2.0, night_rate=2.0, start=MORNING)
    return in_order(ordinary + burst(BUZZ, 30, 6.0, seed=12))


def emitted(det: BuzzDetector, tweets: list[ScoredTweet]) -> list[tuple[Alert, float]]:
    """Each alert with the watermark (event seconds) at which it came out."""
    out = []
    for tweet in tweets:
        for alert in det.observe(tweet):
            assert det.latest_event_time is not None
            out.append((alert, det.latest_event_time - det.config.lateness_tolerance_s))
    out.extend((alert, float("inf")) for alert in det.flush())
    return out


def minute_end(alert: Alert) -> float:
    """When the minute of the alert's decisive tweet closes (event seconds)."""
    return (alert.fired_at.timestamp() // 60 + 1) * 60


def test_a_buzz_at_two_tweets_a_minute_is_alerted_before_its_minute_closes() -> None:
    tweets = two_a_minute_with_a_buzz()
    ticked = [(a, at) for a, at in emitted(detector(), tweets) if a.kind == "new"]
    closing = [(a, at) for a, at in emitted(detector(tick_seconds=0), tweets) if a.kind == "new"]
    assert len(ticked) == len(closing) == 1
    (alert, at), (closed_alert, closed_at) = ticked[0], closing[0]
    assert BUZZ < alert.fired_at < BUZZ + timedelta(minutes=5)
    assert alert.fired_at.timestamp() < at < minute_end(alert)  # before its minute closes ...
    assert closed_at >= minute_end(closed_alert)  # ... where without ticks it waits for the closing
    assert alert.fired_at <= closed_alert.fired_at
    assert alert.fired_at in {t.tweet.created_at for t in tweets}


def test_the_default_settings_test_the_open_minute() -> None:
    """`buzzwatch replay`, the detection service and the demo build their detector from the environment's
    defaults: with no variable set, a buzz whose decisive tweet comes in the first half of its minute is
    alerted at the 30 s tick, not when the minute closes."""
    ordinary = background(6, seed=11, day_rate=2.0, night_rate=2.0, start=MORNING)
    tweets = in_order(ordinary + burst(BUZZ, 30, 12.0, seed=13))
    default = BuzzDetector(DetectorConfig.from_env({}), tokenizer=simple_tokenize)
    (alert, at), *_ = [(a, at) for a, at in emitted(default, tweets) if a.kind == "new"]
    assert alert.fired_at.second < 30  # the decisive tweet is in the first half of its minute ...
    assert alert.fired_at.timestamp() < at < minute_end(alert)  # ... and out at its 30 s tick


def test_a_reordered_stream_gives_the_alerts_of_a_sorted_replay_with_ticks() -> None:
    tweets = two_a_minute_with_a_buzz()
    reference = emitted(detector(), tweets)
    assert any(at < minute_end(a) for a, at in reference)  # an alert came at a tick
    rng = random.Random(3)
    # Arrival order: each tweet delayed by up to 25 s of event time (default tolerance 30 s).
    shuffled = sorted(tweets, key=lambda s: s.tweet.created_at + timedelta(seconds=rng.uniform(0, 25)))
    assert shuffled != tweets
    det = detector()
    assert [a for a, _ in emitted(det, shuffled)] == [a for a, _ in reference]
    assert det.stats["late"] == 0


@pytest.mark.parametrize("offset", range(-6, 7, 2))
def test_a_state_saved_between_ticks_resumes_with_the_same_alerts(offset: int) -> None:
    tweets = two_a_minute_with_a_buzz()
    reference = emitted(detector(), tweets)
    first_alert = next(a for a, _ in reference if a.kind == "new")
    fired = next(i for i, t in enumerate(tweets) if t.tweet.created_at == first_alert.fired_at)
    cut = fired + offset  # saved just before or after the tick that fires, inside its minute or not
    first = detector()
    alerts = [a for t in tweets[:cut] for a in first.observe(t)]
    saved = json.loads(json.dumps(first.state_dict()))
    resumed = BuzzDetector.from_state(saved, tokenizer=simple_tokenize)
    alerts += [a for a, _ in emitted(resumed, tweets[cut:])]
    assert alerts == [a for a, _ in reference]
