"""A quiet brand (about 0.2 tweets a minute) added at night: its first-hours buzz is alerted although its
share rests on the prior, and its ordinary traffic alerts on nothing over a week."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from buzzwatch.settings import SettingsError
from tests.support.streams import (
    FOUR_WINDOWS,
    START,
    background,
    burst,
    hard_labels,
    in_order,
    quiet_night_brand,
    run,
    scored,
    simple_tokenize,
)
from worker.detection import BuzzDetector, DetectorConfig
from worker.detection.config import BrandParams
from worker.detection.detector import _share_can_tell, _surge
from worker.detection.stats import binomial_z

DAY_RATE, NIGHT_RATE = 0.25, 0.05  # tweets a minute: 0.2 a minute on average, quiet from 00:00 to 06:00 UTC


def detector() -> BuzzDetector:
    return BuzzDetector(DetectorConfig(), tokenizer=simple_tokenize)


def quiet_traffic(hours: float, seed: int, share: float, first_hour: int = 0) -> list:
    """A quiet brand's ordinary traffic from `first_hour` UTC on (a night hour when below 6)."""
    start = START + timedelta(hours=first_hour)
    return background(
        hours, seed=seed, day_rate=DAY_RATE, night_rate=NIGHT_RATE, negative_share=share, start=start
    )


@pytest.mark.parametrize(
    ("seed", "first_hour", "buzz_after_minutes"),
    [(1, 1, 17), (3, 3, 31), (8, 0, 36), (12, 0, 34)],
)
@pytest.mark.parametrize("labels", ["model", "oracle"])
def test_a_quiet_brand_added_at_night_alerts_on_its_first_hours_buzz(
    seed: int, first_hour: int, buzz_after_minutes: int, labels: str
) -> None:
    # A few tweets, then two hours at 0.65 tweets a minute (x3 the brand's mean, x13 its night), 92%
    # negative: the brand's share rests on the prior and two to four tweets, so the share test cannot
    # pass at any length of buzz, and the count test, negatives against the data before, must decide.
    first = START + timedelta(hours=first_hour)
    buzz_start = first + timedelta(minutes=buzz_after_minutes)
    buzz = burst(buzz_start, 120, 0.6, prefix="buzz", seed=seed) + burst(
        buzz_start, 120, 0.05, label="neutral", prefix="buzz-reply", seed=seed + 1
    )
    tweets = in_order(quiet_traffic(8, seed, 0.3, first_hour) + buzz)
    alerts = [a for a in run(detector(), hard_labels(tweets) if labels == "oracle" else tweets)]
    new = [a for a in alerts if a.kind == "new"]
    assert new, "no alert"
    assert buzz_start < new[0].fired_at < buzz_start + timedelta(minutes=80)
    assert len(new) == 1


@pytest.mark.parametrize("labels", ["model", "oracle"])
def test_a_quiet_brands_ordinary_weeks_give_at_most_the_false_alert_budget(labels: str) -> None:
    # Four brand-weeks at 40% negative, added at night, at dawn and before midnight: issue 10 allows one
    # false alert a brand-week; one chance run of negatives (seed 22, Thursday 06:50, 8 of 9 tweets in
    # 15 minutes) fires with either share z, and with the model the thin share z of 1 lets a second
    # through (seed 22, Wednesday 09:06-10:05: 26 tweets at a mean probability of 0.61 against 0.34; the
    # tuning half's quiet brands got no false alert more from it, README): two for the four weeks.
    alerts = []
    for seed, first_hour in [(21, 0), (22, 2), (23, 22), (24, 4)]:
        tweets = in_order(quiet_traffic(7 * 24, seed, 0.4, first_hour))
        alerts += run(detector(), hard_labels(tweets) if labels == "oracle" else tweets)
    assert len([a for a in alerts if a.kind == "new"]) <= (2 if labels == "model" else 1)


@pytest.mark.parametrize(
    ("negatives", "volume", "share_z", "dispersion", "can_tell"),
    [
        (9, 9, 1.5, 1.0, False),  # all negative, held back only by the baseline share's few tweets
        (40, 45, 1.9, 1.0, False),  # 89% negative: the same
        (40, 45, 2.1, 1.0, True),  # the widened share test passes by itself
        (20, 45, 0.0, 1.0, True),  # below a typical brand's share: the share test stands (and fails)
        (5, 5, 1.0, 1.0, True),  # too few tweets to be clearly above it by themselves
        (5, 5, 1.0, 0.4, False),  # ... unless they are a model's, whose soft counts vary less
        (0, 0, 0.0, 1.0, True),  # an empty window
    ],
)
def test_the_share_test_steps_aside_only_for_a_window_clearly_above_a_typical_brand(
    negatives: float, volume: float, share_z: float, dispersion: float, can_tell: bool
) -> None:
    sampling_z = binomial_z(negatives, volume, 0.51)  # against the typical share, above the null
    assert _share_can_tell(share_z, sampling_z, dispersion, 2.0) is can_tell


@pytest.mark.parametrize("seed", [1, 2, 4])
def test_a_quiet_brand_whose_first_tweets_are_all_complaints_is_alerted(seed: int) -> None:
    """Tuning seed 3's Orbital (the labels): a quiet brand added at 08:00 UTC, where the shipped day shape
    is low, whose first ten tweets are complaints, all negative. Its share rests on the prior and those
    tweets, so the share test cannot pass in the time; the count test does (z 4), and decides. It used to
    decide only where no window of any length could pass the share test: at 95% negative, not at 100%."""
    first = START + timedelta(hours=8)
    calm = background(
        8, seed, day_rate=0.2, night_rate=0.05, negative_share=0.3, start=first + timedelta(minutes=1)
    )
    wave = burst(first, 10, 1.0, prefix=f"wave{seed}", seed=seed)
    alerts = [a for a in run(detector(), hard_labels(in_order(calm + wave))) if a.kind == "new"]
    assert [first < a.fired_at < first + timedelta(minutes=10) for a in alerts] == [True]


@pytest.mark.parametrize(
    ("labels", "seed", "thin_min_negatives", "fired_after_minutes"),
    [
        ("oracle", 33, None, 12),
        ("oracle", 34, None, 12),
        ("oracle", 36, None, 12),
        ("model", 33, None, 12),
        ("oracle", 33, 4, 12),
        ("oracle", 33, 6, 15),
        ("oracle", 34, 6, 15),
        ("model", 33, 6, 15),
    ],
)
def test_a_quiet_brands_night_buzz_is_alerted_at_its_fifth_complaint(
    labels: str, seed: int, thin_min_negatives: int | None, fired_after_minutes: int
) -> None:
    # Two days of a brand at 0.2 tweets a minute (0.05 at night), then at 02:07 UTC a complaint every three
    # minutes: ten times the night's negatives. The night expects 0.2 negatives in 15 minutes, so five are
    # clear as a count (Poisson z above 4): with `thin_min_negatives` 5 (the default) the fifth, 12 minutes
    # in, is alerted; 4 changes nothing here (four are not yet clear). With six negatives needed the
    # 15-minute window never holds enough at this pace, and the 30-minute window (a quiet brand's) alerts
    # at the sixth, 15 minutes in. With the model's 0.9s five complaints are five negative tweets.
    buzz_start = START + timedelta(days=2, hours=2, minutes=7)
    complaints = [
        scored(
            f"night-{index}", buzz_start + timedelta(minutes=3 * index), "negative", f"my bag is lost {index}"
        )
        for index in range(20)
    ]
    tweets = in_order(quiet_traffic(50, seed, 0.3) + complaints)
    params = (
        BrandParams() if thin_min_negatives is None else BrandParams(thin_min_negatives=thin_min_negatives)
    )
    chosen = BuzzDetector(DetectorConfig(defaults=params), tokenizer=simple_tokenize)
    alerts = run(chosen, hard_labels(tweets) if labels == "oracle" else tweets)
    new = [a for a in alerts if a.kind == "new"]
    assert [a.fired_at for a in new] == [buzz_start + timedelta(minutes=fired_after_minutes)]


@pytest.mark.parametrize(
    ("observed", "expected", "low", "high"),
    [
        (1.0, 0.4, 1.0, 1.2),  # one neutral tweet in a quiet 3-minute window: not a surge of 2.5 times
        (4.0, 2.0, 1.3, 1.5),  # four in a window expecting two: a little more, not twice the negatives
        (40.0, 10.0, 3.0, 3.4),  # a news surge of dozens of tweets is measured nearly as it is
        (0.0, 5.0, 0.3, 0.4),  # fewer than expected: below 1 (the detector only ever raises its expectation)
    ],
)
def test_a_surge_of_non_negative_tweets_is_shrunk_towards_none_while_it_is_a_few_tweets(
    observed: float, expected: float, low: float, high: float
) -> None:
    assert low <= _surge(observed, expected, DetectorConfig().surge_prior_tweets) <= high


@pytest.mark.parametrize(
    ("labels", "seed", "thin_min_share_z", "fired_after_minutes"),
    [
        ("oracle", 38, None, 16),
        ("model", 44, None, 16),
        ("oracle", 44, None, 16),
        ("oracle", 38, 2.0, 21),
        ("model", 44, 2.0, 20),
        ("oracle", 44, 2.0, 20),
    ],
)
def test_a_quiet_brands_weak_day_buzz_is_alerted_sooner_with_the_thin_share_z(
    labels: str, seed: int, thin_min_share_z: float | None, fired_after_minutes: int
) -> None:
    # Two and a half days of a brand at 0.2 tweets a minute, 30% negative, then at 14:07 UTC a complaint every
    # two minutes: the brand's 15-minute window expects about one negative, so its count is clear after seven
    # or eight, but the share of a dozen tweets is not yet clear at z 2. A quiet brand seen a day needs a
    # share z of 1 (the default `thin_min_share_z`): alerted 16 minutes in; with any brand's 2 the same buzz
    # waits 20-21 minutes.
    params = BrandParams() if thin_min_share_z is None else BrandParams(thin_min_share_z=thin_min_share_z)
    assert day_buzz_delays(seed, 2, DetectorConfig(defaults=params), labels) == [fired_after_minutes]


def day_buzz_delays(seed: int, every_minutes: int, config: DetectorConfig, labels: str) -> list[int]:
    """The minutes from its start to each new alert of a day buzz, a complaint every `every_minutes`,
    on a brand seen for two and a half days at 0.2 tweets a minute, 30% negative."""
    buzz_start = START + timedelta(days=2, hours=14, minutes=7)
    complaints = [
        scored(
            f"day-{i}", buzz_start + timedelta(minutes=every_minutes * i), "negative", f"my bag is lost {i}"
        )
        for i in range(30)
    ]
    tweets = in_order(
        background(64, seed=seed, day_rate=DAY_RATE, night_rate=NIGHT_RATE, negative_share=0.3) + complaints
    )
    alerts = run(
        BuzzDetector(config, tokenizer=simple_tokenize), hard_labels(tweets) if labels == "oracle" else tweets
    )
    return [round((a.fired_at - buzz_start).total_seconds() / 60) for a in alerts if a.kind == "new"]


@pytest.mark.parametrize(
    ("labels", "seed", "windows", "fired_after_minutes"),
    [
        ("oracle", 52, None, 24),
        ("model", 56, None, 21),
        ("oracle", 58, None, 21),
        ("oracle", 52, (3, 5, 15, 60), 33),
        ("model", 56, (3, 5, 15, 60), 33),
        ("oracle", 58, (3, 5, 15, 60), 39),
    ],
)
def test_a_quiet_brands_slow_buzz_is_alerted_sooner_by_the_30_minute_window(
    labels: str, seed: int, windows: tuple[int, ...] | None, fired_after_minutes: int
) -> None:
    # Two and a half days of a brand at 0.2 tweets a minute, 30% negative, then at 14:07 UTC a complaint
    # every three minutes (four times its negatives a minute). The 15-minute window holds five or six of
    # them, too few to be clear; the 60-minute window, 20 minutes in, is two-thirds the calm before. The
    # 30-minute window (the default since issue 10's quiet-band work) is all buzz by then: alerted 21-24
    # minutes in, against 33-39 with the windows before it (both at any brand's share z 2, so that the
    # window alone differs).
    share_z_2 = BrandParams(thin_min_share_z=2.0)
    config = (
        DetectorConfig(defaults=share_z_2)
        if windows is None
        else DetectorConfig(windows_minutes=windows, quiet_windows_minutes=(), defaults=share_z_2)
    )
    assert day_buzz_delays(seed, 3, config, labels) == [fired_after_minutes]


@pytest.mark.parametrize(
    ("config", "fired_after_minutes"),
    [
        (DetectorConfig(), 37),  # the default: a brand at about a tweet a minute is not quiet
        (DetectorConfig(windows_minutes=(3, 5, 15, 60), quiet_windows_minutes=()), 37),  # without the window
        (DetectorConfig(quiet_windows_minutes=()), 30),  # the window for every brand
    ],
)
def test_the_30_minute_window_is_a_quiet_brands_only(
    config: DetectorConfig, fired_after_minutes: int
) -> None:
    # A brand at 1.5 tweets a minute by day (0.3 at night), 30% negative, then an hour of 0.75 more complaints
    # a minute from 14:07 UTC: its mean rate is above `thin_rate_per_minute`, so its tests and alerts are
    # those of the windows before the quiet ones (on the tuning seeds the 30-minute window fired on busier
    # brands' shifted day rhythms).
    buzz_start = START + timedelta(days=2, hours=14, minutes=7)
    tweets = in_order(
        background(64, seed=63, day_rate=1.5, night_rate=0.3, negative_share=0.3)
        + burst(buzz_start, 60, 0.75, seed=63)
    )
    alerts = run(BuzzDetector(config, tokenizer=simple_tokenize), hard_labels(tweets))
    new = [a for a in alerts if a.kind == "new"]
    assert [round((a.fired_at - buzz_start).total_seconds() / 60) for a in new] == [fired_after_minutes]


@pytest.mark.parametrize(
    ("config", "fired_after_minutes"),
    [
        (DetectorConfig(), 26),  # learning, and quiet so far: its 30-minute window is tested
        (DetectorConfig(brand_zones={"acme": "Asia/Tokyo"}), 24),
        (DetectorConfig(**FOUR_WINDOWS), 52),  # the windows before the quiet one
        (DetectorConfig(brand_zones={"acme": "Asia/Tokyo"}, **FOUR_WINDOWS), 47),
    ],
)
def test_a_brand_that_looks_quiet_while_it_learns_gets_the_quiet_window(
    config: DetectorConfig, fired_after_minutes: int
) -> None:
    # A brand added at 14:00 UTC at a tweet every 5 minutes, a quarter negative, then from its 40th minute a
    # complaint every 2 minutes for an hour (one every 90 seconds is alerted 14 minutes in with any window
    # since the share test's typical brand is read on the scorer's scale): it has not been seen a day, but
    # its tweets per unit of day
    # shape are under thin_rate_per_minute from its first tweets, so its 30-minute window is tested, with the
    # thresholds of a brand still learning (tuning half, README: 5 buzzes sooner with the labels, one more
    # alerted, 3 sooner with the model, none later, no false alert more).
    start = datetime(2026, 1, 5, 14, tzinfo=UTC)
    alerts = run(BuzzDetector(config, tokenizer=simple_tokenize), quiet_night_brand(start, 120.0))
    buzz = start + timedelta(minutes=40)
    assert [round((a.fired_at - buzz).total_seconds() / 60) for a in alerts if a.kind == "new"] == [
        fired_after_minutes
    ]


@pytest.mark.parametrize(
    ("day_rate", "night_rate", "first_hour", "hours", "quiet_so_far"),
    [
        (0.25, 0.05, 0, 3, True),  # a quiet brand's first night
        # its first 18 minutes of a day: the minutes counted (10 minutes old or more) are too few to outweigh
        # the prior's tweet
        (0.25, 0.05, 12, 0.3, False),
        (0.25, 0.05, 12, 2, True),  # ... its first two hours of a day
        (2.5, 0.5, 0, 3, False),  # a busy brand's first night: its day shape expects it quiet
        (2.5, 0.5, 0, 9, False),  # ... and its morning
        (2.5, 0.5, 12, 0.3, False),  # ... its first 18 minutes of a day
    ],
)
def test_a_brand_looks_quiet_so_far_by_its_tweets_per_unit_of_day_shape(
    day_rate: float, night_rate: float, first_hour: int, hours: float, quiet_so_far: bool
) -> None:
    # The streams' nights are 00:00-06:00 UTC: the brand's clock is UTC (the shipped UTC day is the US's)
    detector = BuzzDetector(DetectorConfig(brand_zones={"acme": "UTC"}), tokenizer=simple_tokenize)
    start = START + timedelta(hours=first_hour)
    tweets = background(hours, seed=5, day_rate=day_rate, night_rate=night_rate, start=start)
    run(detector, tweets, flush=False)
    assert detector._quiet_so_far(detector._brands["acme"], BrandParams()) is quiet_so_far


def test_a_config_whose_every_window_is_a_quiet_brands_is_refused() -> None:
    with pytest.raises(SettingsError, match="every brand needs a window"):
        DetectorConfig(windows_minutes=(30,), quiet_windows_minutes=(30,))


@pytest.mark.parametrize(
    "build",
    [
        lambda: DetectorConfig(windows_minutes=(3, 5, 15, 60)),  # the default quiet window (30) is gone
        lambda: DetectorConfig(quiet_windows_minutes=(30, 45)),
        lambda: DetectorConfig.from_dict({**DetectorConfig().to_dict(), "quiet_windows_minutes": [20]}),
    ],
)
def test_a_quiet_window_that_is_not_one_of_the_windows_is_refused(
    build: Callable[[], DetectorConfig],
) -> None:
    """It was never tested, for any brand, without a word: the quiet band lost its window silently."""
    with pytest.raises(SettingsError, match=r"quiet_windows_minutes \[.*\] must be among windows_minutes"):
        build()


def after_a_buzz_first_alert(
    seed: int, config: DetectorConfig, labels: str, gap_hours: float, complaints: int = 30, first: int = 40
) -> tuple[str, int] | None:
    """The kind and the minutes from the second buzz's start of its first alert: a brand seen two and a half
    days at 0.2 tweets a minute, 30% negative, a clear buzz at 10:07 UTC (a complaint a minute for `first`
    minutes), then `gap_hours` after that one's start the weak day buzz of `day_buzz_delays` (a complaint
    every two minutes; `complaints` of them)."""
    first_start = START + timedelta(days=2, hours=10, minutes=7)
    second_start = first_start + timedelta(hours=gap_hours)
    buzzes = [
        scored(f"first-{i}", first_start + timedelta(minutes=i), "negative", f"my flight is late {i}")
        for i in range(first)
    ] + [
        scored(f"second-{i}", second_start + timedelta(minutes=2 * i), "negative", f"my bag is lost {i}")
        for i in range(complaints)
    ]
    tweets = in_order(
        background(64, seed=seed, day_rate=DAY_RATE, night_rate=NIGHT_RATE, negative_share=0.3) + buzzes
    )
    alerts = run(
        BuzzDetector(config, tokenizer=simple_tokenize), hard_labels(tweets) if labels == "oracle" else tweets
    )
    return next(
        (
            (a.kind, round((a.fired_at - second_start).total_seconds() / 60))
            for a in alerts
            if a.fired_at >= second_start
        ),
        None,
    )


@pytest.mark.parametrize(
    ("labels", "seed", "thin_end_quiet_minutes", "thin_calm_minutes", "first_alert"),
    [
        ("oracle", 44, 15, None, ("new", 20)),  # within a day of the first buzz's episode: the share z 2
        ("model", 38, 15, None, ("new", 16)),
        ("oracle", 44, 15, 0, ("new", 16)),  # calm at once: the thin share z 1, as with no buzz before
        ("model", 38, 15, 0, ("new", 14)),
        # By default the first episode ends 120 quiet minutes after its last hot one, so the weak buzz
        # re-fires within the cooldown: it reopens that episode, an update told as soon as it fires, by
        # the tests of a new alert (`test_a_quiet_brands_second_buzz_is_told_as_soon_as_it_fires`).
        ("oracle", 44, None, None, ("update", 20)),
        ("model", 38, None, None, ("update", 16)),
    ],
)
def test_the_thin_share_z_waits_a_calm_day_after_a_buzz(
    labels: str,
    seed: int,
    thin_end_quiet_minutes: int | None,
    thin_calm_minutes: int | None,
    first_alert: tuple[str, int],
) -> None:
    # A quiet brand's weak buzz four hours after a clear one whose episode ended after 15 quiet minutes is
    # alerted as a new buzz either way, but at the share z 2 of any brand, not the thin share z 1, while a
    # buzz ended within a day: a long storm's flare-ups against a share learned before it passed the share
    # z 1 hour after hour and each was a new alert (the real Feb 2015 week: American's 40-hour storm cut
    # into 9 and 10 new alerts, README).
    settings = {"thin_end_quiet_minutes": thin_end_quiet_minutes, "thin_calm_minutes": thin_calm_minutes}
    params = BrandParams(**{name: value for name, value in settings.items() if value is not None})
    config = DetectorConfig(defaults=params)
    assert after_a_buzz_first_alert(seed, config, labels, gap_hours=4) == first_alert


@pytest.mark.parametrize(
    ("labels", "seed", "first", "gap_hours", "first_alert"),
    [
        ("oracle", 44, 40, 4, ("update", 20)),  # the first episode ended, within its cooldown
        ("model", 38, 40, 4, ("update", 16)),
        ("oracle", 44, 24, 2, ("update", 20)),  # a shorter first buzz two hours before: still open
        ("model", 38, 24, 2, ("update", 12)),
    ],
)
def test_a_quiet_brands_weak_second_buzz_is_told_as_soon_as_it_fires(
    labels: str, seed: int, first: int, gap_hours: float, first_alert: tuple[str, int]
) -> None:
    # A quiet brand's episode ends only after `thin_end_quiet_minutes` (120) quiet minutes, so a distinct
    # weak buzz (twelve complaints, one every two minutes) two or four hours after a clear one fires in its
    # episode or within its cooldown. After `end_quiet_minutes` (15) quiet minutes, when a busy brand's
    # episode would have ended and the firing been a new alert, it is told as that episode's update as soon
    # as it fires, by the tests of a new alert (at the minute the 15-minute end told it as new, above),
    # counted afresh from its firing window. It was told once it held `update_min_negatives` (15) excess
    # negatives (never, with twelve complaints) or once the whole episode's excess had doubled (never).
    assert after_a_buzz_first_alert(seed, DetectorConfig(), labels, gap_hours, 12, first) == first_alert


def storm_new_alerts(
    seed: int, config: DetectorConfig, labels: str, lull_minutes: int, day_rate: float
) -> int:
    """How many new alerts a storm of two flare-ups makes (a complaint a minute for 40 minutes each,
    `lull_minutes` of ordinary traffic between them, from 10:07 UTC) on a brand seen two and a half days
    at `day_rate` tweets a minute by day (a fifth of that at night), 30% negative."""
    first_start = START + timedelta(days=2, hours=10, minutes=7)
    second_start = first_start + timedelta(minutes=40 + lull_minutes)
    complaints = [
        scored(f"storm-{i}", start + timedelta(minutes=i), "negative", f"my flight is cancelled {i}")
        for start in (first_start, second_start)
        for i in range(40)
    ]
    tweets = in_order(
        background(64, seed=seed, day_rate=day_rate, night_rate=day_rate / 5, negative_share=0.3) + complaints
    )
    alerts = run(
        BuzzDetector(config, tokenizer=simple_tokenize), hard_labels(tweets) if labels == "oracle" else tweets
    )
    return len([a for a in alerts if a.kind == "new" and a.fired_at >= first_start])


@pytest.mark.parametrize(
    ("labels", "seed", "day_rate", "thin_end_quiet_minutes", "new_alerts"),
    [
        ("oracle", 44, DAY_RATE, None, 1),  # a quiet brand: one storm, one new alert (and its updates)
        ("model", 38, DAY_RATE, None, 1),
        ("oracle", 44, DAY_RATE, 15, 2),  # ended after 15 quiet minutes (3 tweets), as a busy brand's
        ("model", 38, DAY_RATE, 15, 2),
        ("oracle", 44, 1.5, None, 2),  # a brand at a tweet a minute or more: its 15 quiet minutes are plenty
    ],
)
def test_a_quiet_brands_storm_stays_one_episode_through_a_lull(
    labels: str, seed: int, day_rate: float, thin_end_quiet_minutes: int | None, new_alerts: int
) -> None:
    # A storm's flare-ups two and a half hours apart: on a quiet brand 15 quiet minutes are three ordinary
    # tweets, so the first episode ended, the cooldown passed, and the second flare-up was a new alert (the
    # real Feb 2015 week's Delta storm of Sun 22 came as 3 with the labels, README). A quiet brand's
    # episode ends after `thin_end_quiet_minutes` (120) quiet minutes instead.
    params = (
        BrandParams()
        if thin_end_quiet_minutes is None
        else BrandParams(thin_end_quiet_minutes=thin_end_quiet_minutes)
    )
    assert storm_new_alerts(seed, DetectorConfig(defaults=params), labels, 150, day_rate) == new_alerts
