"""Synthetic scored-tweet streams for the detector tests (plain, seeded, fast)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from buzzwatch.schema import Alert, ScoredTweet, TweetEvent
from worker.detection import BuzzDetector, TweetRecord

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, 00:00 UTC
WORDS = (
    "flight",
    "seat",
    "crew",
    "food",
    "gate",
    "app",
    "bag",
    "wifi",
    "lounge",
    "ticket",
    "window",
    "snack",
)


def scored(
    tweet_id: str,
    created_at: datetime,
    label: str,
    text: str,
    brands: tuple[str, ...] = ("acme",),
    retweet_of: str | None = None,
    reason: str | None = None,
    confidence: float = 0.9,
    author: str | None = None,
) -> ScoredTweet:
    """One scored tweet with probability `confidence` for its label (1.0: a hard label, as with --oracle)."""
    event = TweetEvent(
        id=tweet_id, created_at=created_at, text=text, brands=brands, author_id=author, retweet_of=retweet_of
    )
    other = (1.0 - confidence) / 2
    probabilities = {
        name: (confidence if name == label else other) for name in ("negative", "neutral", "positive")
    }
    return ScoredTweet(
        tweet=event,
        label=label,
        probabilities=probabilities,
        model_version="test",
        negative_reason=reason,
        scored_at=created_at,
    )


def background(
    hours: float,
    seed: int = 0,
    brand: str = "acme",
    day_rate: float = 1.5,
    night_rate: float = 0.1,
    negative_share: float = 0.25,
    start: datetime = START,
) -> list[ScoredTweet]:
    """Normal traffic: Poisson arrivals, quiet from 00:00 to 06:00 UTC, a steady negative share."""
    rng = random.Random(seed)
    tweets = []
    moment = start
    end = start + timedelta(hours=hours)
    index = 0
    while True:
        rate = night_rate if moment.hour < 6 else day_rate
        moment += timedelta(seconds=rng.expovariate(rate / 60.0))
        if moment >= end:
            return tweets
        roll = rng.random()
        label = "negative" if roll < negative_share else ("neutral" if roll < 0.6 else "positive")
        text = f"{label} words about the {rng.choice(WORDS)} and the {rng.choice(WORDS)} {index}"
        tweets.append(scored(f"{brand}-bg-{seed}-{index}", moment, label, text, (brand,)))
        index += 1


def burst(
    start: datetime,
    minutes: float,
    per_minute: float,
    label: str = "negative",
    text: str = "my bag is lost again, worst airline #neveragain",
    prefix: str = "burst",
    brand: str = "acme",
    seed: int = 1,
    reason: str | None = None,
    retweet_of: str | None = None,
    author: str | None = None,
) -> list[ScoredTweet]:
    """Extra tweets spread uniformly over `minutes` (each text made distinct unless `retweet_of`), all by
    `author` when given (one person ranting), else by unknown authors."""
    rng = random.Random(seed)
    count = round(minutes * per_minute)
    tweets = []
    for index in range(count):
        moment = start + timedelta(seconds=rng.uniform(0, minutes * 60))
        body = text if retweet_of else f"{text} {rng.choice(WORDS)}{index}"
        tweets.append(
            scored(f"{prefix}-{index}", moment, label, body, (brand,), retweet_of, reason, author=author)
        )
    return tweets


def hard_labels(tweets: list[ScoredTweet]) -> list[ScoredTweet]:
    """The same tweets with hard labels (probability 1 for the label, as an oracle replay scores them)."""
    return [
        scored(
            t.tweet.id,
            t.tweet.created_at,
            t.label,
            t.tweet.text,
            t.tweet.brands,
            t.tweet.retweet_of,
            t.negative_reason,
            confidence=1.0,
            author=t.tweet.author_id,
        )
        for t in tweets
    ]


def in_order(tweets: list[ScoredTweet]) -> list[ScoredTweet]:
    """Event-time order, ties by id (what a replay reads)."""
    return sorted(tweets, key=lambda s: (s.tweet.created_at, s.tweet.id))


def run(detector: BuzzDetector, tweets: list[ScoredTweet], flush: bool = True) -> list[Alert]:
    """Feed tweets in the given order; return every alert, the end-of-stream flush included."""
    alerts = []
    for tweet in tweets:
        alerts.extend(detector.observe(tweet))
    if flush:
        alerts.extend(detector.flush())
    return alerts


def minute_counts(state: dict[str, Any], brand: str) -> dict[int, tuple[float, float]]:
    """(tweets, negatives) of every minute a detector state holds for `brand` (closed and still open).

    Negatives are summed probabilities in both (a closed minute's weighted by copies and authors).
    """
    payload = state["brands"][brand]
    counts = {minute: (total, negatives) for minute, total, negatives, *_ in payload["closed"]}
    for minute, rows in payload["pending"]:
        tweets = [TweetRecord(*row) for row in rows]
        counts[minute] = (float(len(tweets)), sum(tweet.p_negative for tweet in tweets))
    return counts


def simple_tokenize(text: str) -> list[str]:
    """A whitespace tokenizer, so the tests do not depend on the models package."""
    return [word.strip(".,!?:").lower() for word in text.split()]


class RecordingDispatcher:
    """Stands in for email + Application Insights in a detection service: keeps the alerts it is given."""

    def __init__(self) -> None:
        self.sent: list[Alert] = []

    def spool(self, key: str, alert: Alert) -> None:
        return

    def announce(self, key: str, alert: Alert) -> None:
        self.sent.append(alert)


# The detector's windows without the quiet brands' 30-minute one (tested for every brand alike)
FOUR_WINDOWS: dict[str, tuple[int, ...]] = {"windows_minutes": (3, 5, 15, 60), "quiet_windows_minutes": ()}


def quiet_night_brand(start: datetime, complaint_every_s: float = 90.0) -> list[ScoredTweet]:
    """A brand at about 0.2 tweets a minute (a tweet every 5 minutes, a quarter negative) from `start`,
    then from its 40th minute a bad buzz: a negative tweet every `complaint_every_s` seconds for an hour."""
    labels = ("negative", "neutral", "positive", "neutral")
    tweets = [
        scored(f"n{i}", start + timedelta(minutes=5 * i + 2), labels[i % 4], f"ordinary words {i}")
        for i in range(72)
    ]
    buzz = start + timedelta(minutes=40)
    tweets += [
        scored(
            f"b{i}",
            buzz + timedelta(seconds=complaint_every_s * i + 7),
            "negative",
            f"lost my bags again {i}",
        )
        for i in range(int(3600 // complaint_every_s))
    ]
    return in_order(tweets)
