"""A new brand's prior on its scorer's scale: the share prior's pseudo-tweets are scored with the confusion
the brands seen so far show (`BuzzDetector._prior_confusion`), hard labels with human labels; and the
share test's typical brand is read on the scale of the window it is compared with."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from buzzwatch.schema import ScoredTweet
from tests.support.streams import START, hard_labels, in_order, run, simple_tokenize
from tests.worker.detection.test_cold_start import (
    complaint_wave,
    detector,
    exactly_a_quarter_negative,
    flat,
    weak_model,
)
from worker.detection import BuzzDetector, DetectorConfig
from worker.detection.baseline import HARD_LABELS, DayProfileBaseline, Expectation
from worker.detection.detector import _scored_share, _true_share


def as_brand(tweets: list[ScoredTweet], brand: str) -> list[ScoredTweet]:
    return [replace(t, tweet=replace(t.tweet, brands=(brand,))) for t in tweets]


def with_a_new_brand(new_start: datetime, new: list[ScoredTweet], seed: int) -> list[ScoredTweet]:
    """A brand at a tweet a minute from START until a day after `new_start`, and `new`, a brand of its own
    from `new_start`, in event order."""
    hours = (new_start - START) / timedelta(hours=1) + 24
    return in_order(flat(hours, START, rate=1.0, seed=seed) + as_brand(new, "newco"))


def weak_scores(tweets: list[ScoredTweet]) -> tuple[float, float]:
    """The confusion the tweets' scores show: (E[p^2] / E[p], (E[p] - E[p^2]) / (1 - E[p]))."""
    ps = [t.probabilities["negative"] for t in tweets]
    mean, square = sum(ps) / len(ps), sum(p * p for p in ps) / len(ps)
    return square / mean, (mean - square) / (1 - mean)


def test_a_new_brand_takes_the_confusion_its_fleet_shows_and_human_labels_stay_hard() -> None:
    new_start = START + timedelta(hours=30)
    tweets = with_a_new_brand(new_start, exactly_a_quarter_negative(flat(2, new_start, rate=0.5)), seed=1)
    scored_by_model = weak_model(tweets, seed=1)
    model = detector()
    run(model, scored_by_model)
    negative_p, other_p = model._brands["newco"].baseline.prior_confusion
    shown = weak_scores([t for t in scored_by_model if t.tweet.brands == ("acme",)])
    assert negative_p == pytest.approx(shown[0], abs=0.02) and other_p == pytest.approx(shown[1], abs=0.02)
    assert negative_p - other_p < 0.35  # the weak model: far from hard labels' 1 and 0
    assert model._brands["acme"].baseline.prior_confusion == HARD_LABELS  # the first brand had no fleet
    labels = detector()
    run(labels, hard_labels(tweets))
    assert labels._brands["newco"].baseline.prior_confusion == HARD_LABELS  # exactly: no confusion


def test_the_prior_confusion_survives_a_restart_and_an_older_state_reads_hard_labels() -> None:
    new_start = START + timedelta(hours=30)
    tweets = with_a_new_brand(new_start, exactly_a_quarter_negative(flat(2, new_start, rate=0.5)), seed=2)
    before = detector()
    run(before, weak_model(tweets, seed=2), flush=False)
    saved = json.loads(json.dumps(before.state_dict()))
    resumed = BuzzDetector.from_state(saved, simple_tokenize)
    kept = resumed._brands["newco"].baseline.prior_confusion
    assert kept == before._brands["newco"].baseline.prior_confusion != HARD_LABELS
    older = before._brands["newco"].baseline.state_dict()
    del older["prior_confusion"]  # saved before the prior had a confusion
    assert DayProfileBaseline.from_state(DetectorConfig(), older).prior_confusion == HARD_LABELS


def test_a_brand_added_with_its_past_learns_it_with_the_fleets_confusion() -> None:
    """A new brand's past (tweets older than the watermark, as the ingester's backfill sends them) is
    learned by a detector of its own, which takes its parent's confusion."""
    new_start = START + timedelta(hours=30)
    fleet = weak_model(in_order(flat(32, START, rate=1.0, seed=3)), seed=3)
    past = weak_model(
        as_brand(exactly_a_quarter_negative(flat(3, new_start - timedelta(hours=3))), "newco"), 4
    )
    model = detector()
    run(model, fleet, flush=False)
    run(model, past + weak_model(as_brand(flat(0.5, new_start + timedelta(hours=2)), "newco"), 5))
    assert model.stats["history"] > 0
    assert model._brands["newco"].baseline.prior_confusion == pytest.approx(weak_scores(fleet), abs=0.02)


@pytest.mark.parametrize("seed", [3, 6])
def test_a_quiet_new_brands_first_hour_buzz_scored_by_a_weak_model_is_alerted(seed: int) -> None:
    """A brand at 0.2 tweets a minute, added at night (02:00 UTC) while another brand has been watched for a
    day, whose wave of complaints (a tweet a minute, nine in ten negative) starts in its 20th minute, all
    scored by a weak model (a negative's p about 0.5, any other's 0.15). With its prior's pseudo-tweets
    as hard labels its first tweets were read as far surer than they are: alerted after 50 minutes or
    not at all."""
    new_start = START + timedelta(hours=26)
    wave = new_start + timedelta(minutes=20)
    new = exactly_a_quarter_negative(flat(4, new_start, rate=0.2, seed=seed + 10))
    new += as_brand(complaint_wave(wave, 60, 1.0, seed * 100), "newco")
    tweets = weak_model(with_a_new_brand(new_start, new, seed), seed)
    fired = [a.fired_at for a in run(detector(), tweets) if a.brand == "newco" and a.kind == "new"]
    assert len(fired) == 1 and wave < fired[0] < wave + timedelta(minutes=20)
    hard = detector()
    hard._prior_confusion = lambda: HARD_LABELS  # the prior as it was scored before
    late = wave + timedelta(minutes=50)
    assert not [a for a in run(hard, tweets) if a.brand == "newco" and a.fired_at < late]


@pytest.mark.parametrize("rate", [0.2, 1.0, 3.0])
@pytest.mark.parametrize("hour", [3, 14])
def test_a_new_brands_ordinary_first_day_scored_by_a_weak_model_raises_no_alert(
    rate: float, hour: int
) -> None:
    new_start = START + timedelta(hours=24 + hour)
    new = exactly_a_quarter_negative(flat(24, new_start, rate=rate, seed=12))
    model = detector()
    alerts = run(model, weak_model(with_a_new_brand(new_start, new, seed=1), seed=1))
    assert model._brands["newco"].baseline.prior_confusion != HARD_LABELS
    assert not [a for a in alerts if a.brand == "newco"]


@pytest.mark.parametrize(("negative_p", "other_p"), [HARD_LABELS, (0.6, 0.15), (0.45, 0.2)])
def test_a_typical_brands_share_is_read_on_the_scorers_scale(negative_p: float, other_p: float) -> None:
    """The share test's 'typical brand' (the prior's share) is compared with a window's summed p, so it is
    scored as the model scores tweets: 41% negative reads 0.41 with labels, 0.33 for a model scoring a
    negative 0.6 and any other 0.15; `_true_share` reads it back."""
    expectation = Expectation(1.0, 0.25, 1.0, 1.0, 100.0, 100.0, negative_p, other_p)
    scored = _scored_share(0.41, expectation)
    assert scored == pytest.approx(0.41 * negative_p + 0.59 * other_p)
    assert _true_share(scored, expectation) == pytest.approx(0.41)
    if (negative_p, other_p) == HARD_LABELS:
        assert scored == 0.41  # exactly: the labels' tests do not move
