"""A brand the detector has never seen: alerts from its first hour, no false alerts while it learns, a buzz
that never becomes its baseline, learning that survives a restart, and a state that stays bounded."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from buzzwatch.schema import ScoredTweet
from buzzwatch.settings import REPO_ROOT
from tests.support.streams import (
    START,
    background,
    burst,
    hard_labels,
    in_order,
    run,
    scored,
    simple_tokenize,
)
from worker.detection import BuzzDetector, DetectorConfig
from worker.detection.baseline import DayProfileBaseline, Expectation
from worker.detection.config import load_prior
from worker.detection.detector import _non_negatives, _true_share


def detector() -> BuzzDetector:
    return BuzzDetector(DetectorConfig(), tokenizer=simple_tokenize)


def new_alerts(alerts: list) -> list:
    return [a for a in alerts if a.kind == "new"]


def flat(hours: float, start: datetime, rate: float = 1.0, seed: int = 0, share: float = 0.25) -> list:
    """A brand's ordinary traffic at a steady `rate` tweets a minute, `share` of it negative."""
    return background(hours, seed=seed, day_rate=rate, night_rate=rate, negative_share=share, start=start)


def exactly_a_quarter_negative(tweets: list) -> list:
    """The same tweets, every fourth one negative and no other (a 25% brand from its first minutes)."""
    return [
        scored(t.tweet.id, t.tweet.created_at, label, t.tweet.text, t.tweet.brands)
        for t, label in zip(
            tweets, ["negative", "neutral", "positive", "neutral"] * len(tweets), strict=False
        )
    ]


def bad_buzz(start: datetime, minutes: float, rate: float = 1.0, seed: int = 1) -> list:
    """On top of `rate` tweets a minute at 25% negative: x3 volume, 70% of it negative."""
    negatives = 3 * rate * 0.7 - rate * 0.25
    return burst(start, minutes, negatives, prefix="buzz", seed=seed) + burst(
        start, minutes, 2 * rate - negatives, label="neutral", prefix="buzz-neutral", seed=seed + 1
    )


@pytest.mark.parametrize(
    ("first_hour_utc", "buzz_after_minutes", "labels"),
    [
        (14, 20, "model"),
        (14, 30, "oracle"),
        (3, 25, "model"),  # the day shape's evening
        (9, 30, "model"),  # the day shape's quietest hour: the brand is busier than the prior expects
        (9, 20, "oracle"),
    ],
)
def test_a_new_brand_alerts_on_a_clear_bad_buzz_in_its_first_hour(
    first_hour_utc: int, buzz_after_minutes: int, labels: str
) -> None:
    first = START + timedelta(hours=first_hour_utc)
    buzz_start = first + timedelta(minutes=buzz_after_minutes)
    tweets = in_order(
        exactly_a_quarter_negative(flat(2, first, seed=first_hour_utc)) + bad_buzz(buzz_start, 30)
    )
    alerts = new_alerts(run(detector(), hard_labels(tweets) if labels == "oracle" else tweets))
    assert alerts, "no alert"
    assert buzz_start < alerts[0].fired_at < first + timedelta(minutes=60)
    assert len(alerts) == 1


@pytest.mark.parametrize(
    ("rate", "day_cycle", "seed"),
    [(0.2, False, 1), (1.0, False, 2), (5.0, False, 3), (1.0, True, 4), (3.0, True, 5), (0.5, True, 6)],
)
def test_no_alert_on_a_new_brands_ordinary_traffic_over_its_first_day(
    rate: float, day_cycle: bool, seed: int
) -> None:
    start = START + timedelta(hours=seed * 3)  # a different first hour each
    if day_cycle:  # quiet from 00:00 to 06:00 UTC, unlike the prior's day shape
        tweets = background(24, seed=seed, day_rate=rate, night_rate=rate / 15, start=start)
    else:
        tweets = flat(24, start, rate, seed=seed)
    assert new_alerts(run(detector(), in_order(tweets))) == []
    assert new_alerts(run(detector(), hard_labels(in_order(tweets)))) == []


def test_a_brand_far_from_the_prior_share_alerts_on_nothing_while_it_learns() -> None:
    first = START + timedelta(hours=15)
    assert new_alerts(run(detector(), in_order(flat(24, first, 2.0, seed=7, share=0.75)))) == []
    assert new_alerts(run(detector(), in_order(flat(24, first, 2.0, seed=8, share=0.05)))) == []


def test_a_buzz_while_a_brand_learns_does_not_become_its_baseline() -> None:
    first = START + timedelta(hours=12)
    calm = exactly_a_quarter_negative(flat(8, first, seed=9))
    buzzing = in_order(calm + bad_buzz(first + timedelta(minutes=30), 60))
    with_buzz, without = detector(), detector()
    learns_all = BuzzDetector(DetectorConfig(anomaly_weight=1.0), tokenizer=simple_tokenize)
    assert new_alerts(run(with_buzz, buzzing))
    run(without, in_order(calm))
    run(learns_all, buzzing)
    buzzed, clean, in_full = (d.snapshot("acme") for d in (with_buzz, without, learns_all))
    assert buzzed["state"] == clean["state"] == "learning"
    # The buzz (126 negatives in an hour) moves the baseline under a fifth as much as learning it in full.
    rise, full_rise = (s["baseline_share"] - clean["baseline_share"] for s in (buzzed, in_full))
    assert full_rise > 0.1 and rise < 0.2 * full_rise
    assert buzzed["baseline_volume"] == pytest.approx(clean["baseline_volume"], rel=0.1)


@pytest.mark.parametrize(("buzz_after_minutes", "steps", "step_rate"), [(30, 6, 0.3), (20, 10, 0.2)])
def test_a_slow_buzz_on_a_new_brand_is_not_its_own_baseline(
    buzz_after_minutes: int, steps: int, step_rate: float
) -> None:
    """Negatives that rise step by step from a new brand's first half hour: each window is tested against
    the minutes before it, so the buzz's own first steps do not raise what its later windows expect."""
    first = START + timedelta(hours=14)
    calm = exactly_a_quarter_negative(flat(8, first, rate=1.5, seed=14))
    buzz_start = first + timedelta(minutes=buzz_after_minutes)
    ramp = [
        tweet
        for step in range(steps)
        for tweet in burst(
            buzz_start + timedelta(minutes=10 * step),
            10,
            step_rate * (step + 1),
            prefix=f"ramp{step}",
            seed=20 + step,
        )
    ]
    alerts = new_alerts(run(detector(), hard_labels(in_order(calm + ramp))))
    assert len(alerts) == 1
    assert buzz_start < alerts[0].fired_at < buzz_start + timedelta(minutes=10 * steps + 15)


def test_the_brand_state_goes_learning_bad_buzz_learning_normal() -> None:
    first = START + timedelta(hours=12)
    det = detector()
    assert det.brand_state("acme")["state"] == "unknown"
    tweets = in_order(
        exactly_a_quarter_negative(flat(26, first, seed=10)) + bad_buzz(first + timedelta(minutes=30), 30)
    )
    phases = []
    for tweet in tweets:
        det.observe(tweet)
        phase = det.brand_state("acme")["state"]
        if not phases or phases[-1] != phase:
            phases.append(phase)
    assert phases == ["learning", "bad_buzz", "learning", "normal"]
    state = det.brand_states()["acme"]
    assert state["learning_progress"] == 1.0 and state["minutes_seen"] >= 24 * 60
    assert det.snapshot("acme")["state"] == "normal"


def test_a_restart_keeps_the_learning_progress_and_the_alerts() -> None:
    first = START + timedelta(hours=12)
    buzz_start = first + timedelta(hours=5)
    tweets = in_order(exactly_a_quarter_negative(flat(6, first, seed=11)) + bad_buzz(buzz_start, 30))
    cut = sum(t.tweet.created_at < buzz_start - timedelta(minutes=20) for t in tweets)
    unbroken = detector()
    expected = run(unbroken, tweets)
    before = detector()
    run(before, tweets[:cut], flush=False)
    progress = before.brand_state("acme")
    assert progress["state"] == "learning" and progress["minutes_seen"] >= 4 * 60
    resumed = BuzzDetector.from_state(json.loads(json.dumps(before.state_dict())), simple_tokenize)
    assert resumed.brand_state("acme") == progress
    assert run(resumed, tweets[cut:]) == [
        a for a in expected if a.fired_at > tweets[cut - 1].tweet.created_at
    ]
    assert new_alerts(expected)
    assert resumed.brand_state("acme") == unbroken.brand_state("acme")


def _busy_brand(minutes: int, start: datetime, per_minute: int = 100, seed: int = 0) -> list[ScoredTweet]:
    """`per_minute` tweets a minute by many authors, a quarter negative, in order."""
    rng = random.Random(seed)
    labels = ("negative", "neutral", "neutral", "positive")
    tweets = []
    for minute in range(minutes):
        for index in range(per_minute):
            moment = start + timedelta(minutes=minute, seconds=60 * index / per_minute)
            label = labels[rng.randrange(4)]
            tweets.append(
                scored(
                    f"t{minute}-{index}",
                    moment,
                    label,
                    f"{label} words {rng.randrange(5000)} {rng.randrange(5000)}",
                    author=f"a{rng.randrange(50_000)}",
                )
            )
    return tweets


@pytest.mark.slow
def test_the_state_stays_bounded_for_a_busy_brand() -> None:
    det = detector()
    sizes = []
    for day in range(3):  # 100 tweets a minute: the state after each day
        run(det, _busy_brand(24 * 60, START + timedelta(days=day), seed=day), flush=False)
        sizes.append(len(json.dumps(det.state_dict())))
    assert sizes[2] <= 1.05 * sizes[1] and sizes[1] <= 1.05 * sizes[0]
    assert sizes[2] < 4_000_000


def test_the_shipped_prior_is_what_its_script_builds() -> None:
    prior = load_prior()
    for shape in (prior["day_shape"], prior["local_day_shape"]):
        assert len(shape) == 24 and sum(shape) == pytest.approx(24, abs=0.01)
    # by the airlines' own clocks their quietest hours are 2-5 AM and their busiest the afternoon
    local = prior["local_day_shape"]
    assert 2 <= local.index(min(local)) <= 5 and 11 <= local.index(max(local)) <= 17
    assert 0.1 < prior["negative_share"] < 0.7 and 0 < prior["share_prior_tweets"] < 20
    assert DetectorConfig().share_prior == prior["negative_share"]
    script = REPO_ROOT / "scripts" / "build_detector_prior.py"
    assert subprocess.run([sys.executable, str(script), "--check"], check=False).returncode == 0


@pytest.mark.parametrize(
    ("negative_p", "other_p", "negatives", "others"),
    [(1.0, 0.0, 30, 70), (0.52, 0.15, 30, 70), (0.52, 0.15, 80, 20), (0.8, 0.05, 10, 200)],
)
def test_non_negative_tweets_are_counted_through_the_models_confusion(
    negative_p: float, other_p: float, negatives: int, others: int
) -> None:
    expectation = Expectation(1.0, 0.25, 1.0, 1.0, 100.0, 100.0, negative_p, other_p)
    summed = negatives * negative_p + others * other_p  # what a window of such tweets sums to
    assert _non_negatives(negatives + others, summed, expectation) == pytest.approx(others)
    share = (negatives * negative_p + others * other_p) / (negatives + others)
    assert _true_share(share, expectation) == pytest.approx(negatives / (negatives + others))


def weak_model(tweets: list, seed: int) -> list:
    """The tweets as a weak model scores them: a negative's p around 0.52, any other's around 0.15."""
    rng = random.Random(seed)
    out = []
    for t in tweets:
        centre = 0.52 if t.label == "negative" else 0.15
        p = min(max(rng.gauss(centre, 0.2), 0.01), 0.99)
        other = scored(t.tweet.id, t.tweet.created_at, "neutral", t.tweet.text, t.tweet.brands)
        out.append(
            replace(
                other,
                label="negative" if p >= 0.5 else "neutral",
                probabilities={"negative": p, "neutral": 1 - p, "positive": 0.0},
            )
        )
    return out


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_weak_models_probabilities_still_alert_on_a_bad_buzz(seed: int) -> None:
    first = START + timedelta(hours=12)
    buzz_start = first + timedelta(hours=30)
    tweets = in_order(
        exactly_a_quarter_negative(flat(31, first, seed=seed)) + bad_buzz(buzz_start, 30, seed=seed)
    )
    oracle = new_alerts(run(detector(), hard_labels(tweets)))
    model = new_alerts(run(detector(), weak_model(tweets, seed)))
    assert [a.fired_at > buzz_start for a in oracle] == [True]
    assert [buzz_start < a.fired_at < buzz_start + timedelta(minutes=20) for a in model] == [True]


def complaint_wave(start: datetime, minutes: float, per_minute: float, seed: int) -> list:
    """`per_minute` more tweets a minute than usual, nine in ten of them negative."""
    return burst(start, minutes, 0.9 * per_minute, prefix=f"wave{seed}", seed=seed) + burst(
        start, minutes, 0.1 * per_minute, label="neutral", prefix=f"wave{seed}-neutral", seed=seed + 1
    )


@pytest.mark.parametrize(("seed", "labels"), [(1, "oracle"), (2, "oracle"), (1, "model"), (3, "model")])
def test_a_first_buzz_at_a_new_brands_start_does_not_hide_its_second(seed: int, labels: str) -> None:
    """A quiet brand (0.25 tweets a minute) whose first two hours are a complaint wave: nothing came
    before it, so it is learned as the brand's traffic; once calmer hours show that those were a volume
    surge, their share leaves the brand's baseline, and a second wave five hours in is alerted."""
    first = START + timedelta(hours=13)
    second = first + timedelta(hours=5)
    tweets = in_order(
        exactly_a_quarter_negative(flat(8, first, rate=0.25, seed=seed))
        + complaint_wave(first, 120, 0.75, seed * 100)
        + complaint_wave(second, 60, 0.75, seed * 100 + 50)
    )
    alerts = new_alerts(
        run(detector(), hard_labels(tweets) if labels == "oracle" else weak_model(tweets, seed))
    )
    assert any(second < a.fired_at < second + timedelta(minutes=60) for a in alerts)
    assert all(a.fired_at < first + timedelta(minutes=135) or a.fired_at > second for a in alerts)


def test_a_second_buzz_not_learned_yet_leaves_the_first_ones_hour_out_of_the_share() -> None:
    """Tuning seed 15's Cirrus: a new quiet brand's first hour was a complaint wave, learned in full; the
    calm hour after it and a second buzz are not learned yet (the last two hours). The second buzz raises
    only its own hour's rate, not the calm hour's that the first hour is compared with, so the first hour
    stays a surge and keeps only `anomaly_weight` of its share (counted as one stretch with the calm hour,
    the second buzz made it look ordinary)."""
    config = DetectorConfig()
    baseline = DayProfileBaseline(config)
    clock = 19  # 19:00 UTC on the epoch's first day: hours of about the same day shape
    for _ in range(60):  # the first hour: a tweet a minute, nine in ten negative
        baseline.learn(clock, baseline.contribution(clock, 1.0, 0.9, 0.81, 1.0, 1.0), 1.0, clock)
    calm = {clock + 1: (15.0, 60)}  # a quarter of a tweet a minute
    second_buzz = {clock + 1: (15.0, 60), clock + 2: (30.0, 40)}  # then three quarters for 40 minutes
    left_out = (1.0 - config.anomaly_weight) * baseline.overall.total
    assert baseline.surges(calm).total == pytest.approx(left_out)
    assert baseline.surges(second_buzz).total == pytest.approx(left_out)


def test_a_learning_brands_surge_hours_are_weighed_once_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    """`surges` does not depend on the `recent` evidence each window leaves its own minutes out of: one
    minute's expectations (the newest minute's and every window's) share one `pooled` evidence."""
    calls: Counter[str] = Counter()

    def counted(owner: type, name: str) -> None:
        method = getattr(owner, name)

        def wrapper(*args: object) -> object:
            calls[name] += 1
            return method(*args)

        monkeypatch.setattr(owner, name, wrapper)

    counted(DayProfileBaseline, "surges")
    counted(BuzzDetector, "_close_minute")
    run(detector(), background(6, seed=4))  # a new brand's first six hours: it learns its first day
    assert calls["_close_minute"] > 300 and 0 < calls["surges"] <= calls["_close_minute"]


@pytest.mark.parametrize(("seed", "labels"), [(1, "oracle"), (2, "model"), (3, "model")])
def test_a_new_brand_launched_with_a_surge_of_ordinary_tweets_stays_quiet(seed: int, labels: str) -> None:
    """A new brand whose first two hours hold four times its later volume at its usual share (a launch):
    its surge is taken out of its share as a buzz's would be, which must not bias that share, so its
    ordinary first day raises no alert."""
    first = START + timedelta(hours=seed * 5)
    tweets = in_order(flat(2, first, rate=4.0, seed=seed) + flat(24, first + timedelta(hours=2), seed=seed))
    assert new_alerts(run(detector(), hard_labels(tweets) if labels == "oracle" else tweets)) == []
