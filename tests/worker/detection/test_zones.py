"""A brand's time zone (its `timezone` in the brands file) turns the shipped day to its clock: a new brand
expects its night quiet and its afternoon busy in its own hours; a brand without one keeps the shipped
day; the clock a brand was first seen with survives a restart; its hours follow that clock through summer
time."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from buzzwatch.settings import SettingsError
from tests.support.streams import FOUR_WINDOWS, START, background, quiet_night_brand, run, simple_tokenize
from worker.detection import BuzzDetector, DetectorConfig
from worker.detection.baseline import DayProfileBaseline, Evidence, FirstDayHour
from worker.detection.config import zone_offset_hours
from worker.detection.state import inside_sums, recent_sum

SPRING = datetime(2026, 3, 29, 1, tzinfo=UTC)  # Europe's summer time begins: Paris from UTC+1 to UTC+2
AUTUMN = datetime(2026, 10, 25, 1, tzinfo=UTC)  # and ends


def minute_of(moment: datetime) -> int:
    return int(moment.timestamp() // 60)


def test_a_brand_without_a_zone_keeps_the_shipped_day() -> None:
    config = DetectorConfig(brand_zones={"tokyo-air": "Asia/Tokyo"})
    assert config.utc_offset_of("acme", minute_of(START)) is None
    assert config.day_shape_at(None) == config.day_shape
    assert DayProfileBaseline(config).shape == config.day_shape


@pytest.mark.parametrize(
    ("zone", "moment", "offset"),
    [
        ("Europe/Paris", datetime(2026, 1, 5, 12, tzinfo=UTC), 1),
        ("Europe/Paris", datetime(2026, 7, 6, 12, tzinfo=UTC), 2),  # summer time
        # the hour after each change (01:00 UTC): read as Paris's wall time, 01:30 was still winter
        # time in March and still summer time in October
        ("Europe/Paris", datetime(2026, 3, 29, 1, 30, tzinfo=UTC), 2),
        ("Europe/Paris", datetime(2026, 10, 25, 1, 30, tzinfo=UTC), 1),
        ("Asia/Tokyo", datetime(2026, 1, 5, 12, tzinfo=UTC), 9),
        ("America/Los_Angeles", datetime(2026, 1, 5, 12, tzinfo=UTC), -8),
        ("Asia/Kolkata", datetime(2026, 1, 5, 12, tzinfo=UTC), 6),  # +5:30 rounds up
        ("America/St_Johns", datetime(2026, 1, 5, 12, tzinfo=UTC), -3),  # -3:30 rounds up too
        ("Etc/GMT+8", datetime(2026, 1, 5, 12, tzinfo=UTC), -8),  # the POSIX sign: 8 hours behind
    ],
)
def test_the_day_turns_to_the_brands_clock(zone: str, moment: datetime, offset: int) -> None:
    config = DetectorConfig(brand_zones={"brand": zone})
    assert config.utc_offset_of("brand", minute_of(moment)) == offset
    shape = config.day_shape_at(offset)
    local = config.local_day_shape
    for utc_hour in range(24):
        assert shape[utc_hour] == local[(utc_hour + offset) % 24]
    # its quietest UTC hour is its local small hours, wherever it is
    assert shape.index(min(shape)) == (local.index(min(local)) - offset) % 24


def test_the_zones_come_from_the_brands_file(tmp_path: Path) -> None:
    brands = tmp_path / "brands.toml"
    brands.write_text(
        '[[brand]]\nname = "tokyo-air"\ntimezone = "Asia/Tokyo"\n\n[[brand]]\nname = "nowhere"\n',
        encoding="utf-8",
    )
    config = DetectorConfig.from_env({"BUZZWATCH_BRANDS_FILE": str(brands)})
    assert config.brand_zones == {"tokyo-air": "Asia/Tokyo"}  # a brand without one keeps the shipped day
    # the shipped brands file gives the US airlines their hubs' zones
    shipped = DetectorConfig.from_env({})
    assert shipped.brand_zones["united"] == "America/Chicago"
    assert shipped.brand_zones["airparadis"] == "Europe/Paris"
    brands.write_text('[[brand]]\nname = "tokyo-air"\ntimezone = "Asia/Tokio"\n', encoding="utf-8")
    with pytest.raises(
        SettingsError, match=r"brands.toml: brand #1 \(tokyo-air\): unknown time zone 'Asia/Tokio'"
    ):
        DetectorConfig.from_env({"BUZZWATCH_BRANDS_FILE": str(brands)})
    with pytest.raises(SettingsError, match="the time zone of brand 'acme'"):
        DetectorConfig(brand_zones={"acme": "Mars/Olympus"})


def test_a_new_brand_expects_its_own_night_quiet() -> None:
    """Tokyo's 03:00 is 18:00 UTC, the shipped day's (US) afternoon: a new brand there expects a fraction
    of what a brand without a zone does in that hour, and more at its own afternoon (05:00 UTC)."""
    zoned = DayProfileBaseline(DetectorConfig(), utc_offset=9)
    plain = DayProfileBaseline(DetectorConfig())
    night, afternoon = 18, 5
    assert zoned.expect(night).rate < 0.4 * plain.expect(night).rate
    assert zoned.expect(afternoon).rate > 2.0 * plain.expect(afternoon).rate


def test_a_quiet_brand_added_in_its_night_alerts_sooner_on_its_own_clock() -> None:
    """Added at 23:00 in Tokyo (14:00 UTC): by the shipped day its night is the US morning rush, so the
    prior expects several times its tweets and the buzz must outgrow that; on its own clock it does not.
    Without the quiet brands' 30-minute window, which alerts this buzz (a complaint every 2 minutes) 24-26
    minutes in on either clock (the brand looks quiet so far: `test_quiet_brand`), so that the clock alone
    differs: 47 minutes in on its own clock, 52 on the shipped one."""
    start = datetime(2026, 1, 5, 14, tzinfo=UTC)
    tweets = quiet_night_brand(start, 120.0)
    plain = run(BuzzDetector(DetectorConfig(**FOUR_WINDOWS), tokenizer=simple_tokenize), tweets)
    zoned_config = DetectorConfig(brand_zones={"acme": "Asia/Tokyo"}, **FOUR_WINDOWS)
    zoned = run(BuzzDetector(zoned_config, simple_tokenize), tweets)
    zoned_new = [a for a in zoned if a.kind == "new"]
    assert zoned_new, "the buzz on its own clock is alerted"
    plain_new = [a for a in plain if a.kind == "new"]
    assert not plain_new or zoned_new[0].fired_at <= plain_new[0].fired_at - timedelta(minutes=4)


def test_a_restart_keeps_a_brands_clock_and_follows_a_zone_the_brands_file_names_since() -> None:
    """A brand keeps its clock across a restart; a zone named, corrected or moved in the brands file since
    is followed from the restart on (its learned hours, UTC hours of its own traffic, kept as they are); a
    zone taken out of the file leaves it on the one it had."""
    config = DetectorConfig(brand_zones={"acme": "Asia/Tokyo"})
    detector = BuzzDetector(config, tokenizer=simple_tokenize)
    run(detector, quiet_night_brand(START)[:20], flush=False)
    state = json.loads(json.dumps(detector.state_dict()))
    assert state["brands"]["acme"]["baseline"]["utc_offset"] == 9
    learned = [row[0] for row in state["brands"]["acme"]["baseline"]["hourly_volume"]]
    resumed = BuzzDetector.from_state(state, simple_tokenize)
    assert resumed._brands["acme"].baseline.shape == config.day_shape_at(9)
    # moved in the brands file since (a user correcting it): Paris's clock from the restart on
    moved = BuzzDetector.from_state(
        state, simple_tokenize, config=DetectorConfig(brand_zones={"acme": "Europe/Paris"})
    )
    baseline = moved._brands["acme"].baseline
    assert (baseline.zone, baseline.utc_offset) == ("Europe/Paris", 1)
    assert baseline.shape == config.day_shape_at(1)
    assert [bucket.mean for bucket in baseline.hourly_volume] == learned
    # taken out of the file: it keeps Tokyo's
    unnamed = BuzzDetector.from_state(state, simple_tokenize, config=DetectorConfig())
    assert unnamed._brands["acme"].baseline.zone == "Asia/Tokyo"
    # first seen without a zone, one named since: taken at the restart
    plain = BuzzDetector(DetectorConfig(), tokenizer=simple_tokenize)
    run(plain, quiet_night_brand(START)[:20], flush=False)
    named = BuzzDetector.from_state(
        json.loads(json.dumps(plain.state_dict())), simple_tokenize, config=config
    )
    assert named._brands["acme"].baseline.shape == config.day_shape_at(9)
    # a state saved before zones were kept (no offset, no zone) takes the zone the file names
    del state["brands"]["acme"]["baseline"]["utc_offset"], state["brands"]["acme"]["baseline"]["zone"]
    older = BuzzDetector.from_state(state, simple_tokenize)
    assert older._brands["acme"].baseline.shape == config.day_shape_at(9)
    bare = BuzzDetector.from_state(state, simple_tokenize, config=DetectorConfig())  # and none named:
    assert bare._brands["acme"].baseline.shape == DetectorConfig().day_shape  # the shipped day, as before


def test_summer_time_turns_the_learned_hours_with_the_clock() -> None:
    config = DetectorConfig(brand_zones={"acme": "Europe/Paris"})
    baseline = DayProfileBaseline(config, utc_offset=1, zone="Europe/Paris")
    for hour, bucket in enumerate(baseline.hourly_volume):
        bucket.mean = float((hour + 1) % 24)  # marked with the local hour it learned (UTC + 1)
    shares = list(baseline.hourly_share)
    assert not baseline.follow_clock(minute_of(SPRING) - 1)
    assert baseline.follow_clock(minute_of(SPRING))
    assert baseline.utc_offset == 2
    assert baseline.shape == config.day_shape_at(2)
    # local 07:00 was 06:00 UTC and is 05:00 UTC now: what was learned of it moved there
    assert [bucket.mean for bucket in baseline.hourly_volume] == [float((h + 2) % 24) for h in range(24)]
    assert baseline.hourly_share[5] is shares[6]
    assert not baseline.follow_clock(minute_of(SPRING) + 60)
    assert baseline.follow_clock(minute_of(AUTUMN))
    assert baseline.utc_offset == 1
    assert [bucket.mean for bucket in baseline.hourly_volume] == [float((h + 1) % 24) for h in range(24)]
    # without a zone kept (no zone configured, or a state saved before zones were kept) nothing turns
    assert not DayProfileBaseline(config, utc_offset=1).follow_clock(minute_of(SPRING))


def test_a_southern_brand_turns_the_other_way_in_april() -> None:
    """Sydney leaves summer time on 5 April 2026 (16:00 UTC on the 4th): UTC+11 to UTC+10, so its local
    07:00 moves from 20:00 to 21:00 UTC; it comes back on 4 October."""
    config = DetectorConfig(brand_zones={"acme": "Australia/Sydney"})
    baseline = DayProfileBaseline(config, utc_offset=11, zone="Australia/Sydney")
    for hour, bucket in enumerate(baseline.hourly_volume):
        bucket.mean = float((hour + 11) % 24)  # the local hour it learned
    autumn = datetime(2026, 4, 4, 16, tzinfo=UTC)
    assert not baseline.follow_clock(minute_of(autumn) - 15)
    assert baseline.follow_clock(minute_of(autumn))
    assert baseline.utc_offset == 10
    assert baseline.hourly_volume[21].mean == 7.0
    assert [bucket.mean for bucket in baseline.hourly_volume] == [float((h + 10) % 24) for h in range(24)]
    assert baseline.follow_clock(minute_of(datetime(2026, 10, 3, 16, tzinfo=UTC)))
    assert baseline.utc_offset == 11


def test_the_running_sums_follow_the_turn() -> None:
    """A Paris brand through the change: its hours turn, and the running sums of its closed minutes'
    evidence (whose exposure reads the day shape) are those of its closed minutes on the new clock. (How
    right its expectations are then: `bench/detection_dst.py` and its test.)"""
    tweets = background(30, seed=3, start=SPRING - timedelta(hours=20))
    detector = BuzzDetector(DetectorConfig(brand_zones={"acme": "Europe/Paris"}), simple_tokenize)
    run(detector, tweets, flush=False)
    state = detector._brands["acme"]
    assert state.baseline.utc_offset == 2
    assert state.baseline.shape == detector.config.day_shape_at(2)
    for held, summed in zip(
        [state.recent, *state.inside],
        [
            recent_sum(state.closed, detector.config, state.baseline),
            *inside_sums(state.closed, detector.config, state.baseline),
        ],
        strict=True,
    ):
        assert held.to_list() == pytest.approx(summed.to_list(), rel=1e-9, abs=1e-9)


def test_a_restart_across_summer_time_turns_as_without_it() -> None:
    """A state saved before the change keeps the zone: resumed, the brand turns at the change as a detector
    that ran through it does. A state saved before zones were kept follows its configured zone from the
    restart, at its offset then, as does one whose zone was changed in the brands file since."""
    config = DetectorConfig(brand_zones={"acme": "Europe/Paris"})
    tweets = background(72, seed=5, start=SPRING - timedelta(days=2))
    before = [t for t in tweets if t.tweet.created_at < SPRING - timedelta(hours=3)]
    after = tweets[len(before) :]
    through = BuzzDetector(config, simple_tokenize)
    alerts = run(through, tweets, flush=False)
    detector = BuzzDetector(config, simple_tokenize)
    first = run(detector, before, flush=False)
    state = json.loads(json.dumps(detector.state_dict()))
    assert state["brands"]["acme"]["baseline"]["zone"] == "Europe/Paris"
    resumed = BuzzDetector.from_state(state, simple_tokenize)
    assert [a.to_dict() for a in first + run(resumed, after, flush=False)] == [a.to_dict() for a in alerts]
    assert resumed._brands["acme"].baseline.utc_offset == 2
    ours = resumed._brands["acme"].baseline.hourly_volume
    theirs = through._brands["acme"].baseline.hourly_volume
    assert [b.mean for b in ours] == pytest.approx([b.mean for b in theirs], rel=1e-9)
    # saved before zones were kept, in summer time: it takes its zone at its offset then, its learned
    # hours as they are (they have followed its clock since)
    del state["brands"]["acme"]["baseline"]["zone"]
    state["next_minute"] = state["brands"]["acme"]["next_minute"] = minute_of(SPRING + timedelta(days=3))
    older = BuzzDetector.from_state(state, simple_tokenize)
    assert older._brands["acme"].baseline.zone == "Europe/Paris"
    assert older._brands["acme"].baseline.shape == config.day_shape_at(2)
    saved = [row[0] for row in state["brands"]["acme"]["baseline"]["hourly_volume"]]
    assert [b.mean for b in older._brands["acme"].baseline.hourly_volume] == saved
    # its zone changed in the brands file since: it takes that one, at its offset then
    moved = BuzzDetector.from_state(
        state, simple_tokenize, config=DetectorConfig(brand_zones={"acme": "Asia/Tokyo"})
    )
    assert moved._brands["acme"].baseline.zone == "Asia/Tokyo"
    assert moved._brands["acme"].baseline.utc_offset == 9
    assert [b.mean for b in moved._brands["acme"].baseline.hourly_volume] == saved


def test_the_minutes_before_a_turn_are_counted_in_their_own_hour() -> None:
    """The minutes closed before the change are still in the windows, and learned only after the lag:
    each is counted and learned in the hour its own clock gave it. The night of the spring change, UTC
    00:00-01:00 was 01:00-02:00 CET, the hour just before 23:00 UTC on the new clock; learned as its UTC
    hour it went to 00:00 UTC, 02:00 CEST, an hour that night did not have."""
    config = DetectorConfig(brand_zones={"acme": "Europe/Paris"})
    baseline = DayProfileBaseline(config, utc_offset=1, zone="Europe/Paris")
    before, after = minute_of(SPRING) - 30, minute_of(SPRING) + 30
    assert baseline.hour_of(before) == 0  # no turn yet
    assert baseline.follow_clock(minute_of(SPRING) + 7)  # seen at a check a few minutes later
    assert [baseline.hour_of(m) for m in (before, minute_of(SPRING), after)] == [23, 1, 1]
    restored = DayProfileBaseline.from_state(config, json.loads(json.dumps(baseline.state_dict())))
    assert restored.turned_at == baseline.turned_at and restored.hour_of(before) == 23
    assert baseline.follow_clock(minute_of(AUTUMN))  # 00:30 UTC was 02:30 CEST: 01:00 UTC on UTC+1
    assert [baseline.hour_of(minute_of(AUTUMN) + m) for m in (-30, 30)] == [1, 1]

    tweets = background(26, seed=4, start=SPRING - timedelta(hours=20))  # from 05:00 UTC the day before
    detector = BuzzDetector(config, simple_tokenize)
    run(detector, tweets, flush=False)
    learned = detector._brands["acme"].baseline.hourly_volume
    # the minutes of 23:00-01:00 UTC learned (an unusual one with little weight) in 00:00 and 01:00 CET,
    # 22:00 and 23:00 UTC on the new clock
    assert learned[22].weight > 55 and learned[23].weight > 55
    assert learned[0].weight == 0.0  # 02:00 CEST: never on the brand's clock that night


def test_a_learning_brands_first_day_hours_are_compared_on_their_own_clock() -> None:
    """A brand learning through the spring change: its first day's hours are compared by tweets per unit
    of the day shape (`surges`), each hour at the shape of its own local hour. Traffic that follows the
    shape is no surge; read at its UTC hour on the new clock, 01:00 CET took the shape of 02:00, an hour
    that here expects a quarter of the traffic, and its 60 tweets looked like a buzz."""
    local = [1.0] * 24
    local[2], local[3] = 0.25, 4.0  # 02:00 quiet, 03:00 busy (a test's shape: only the hours matter)
    config = DetectorConfig(brand_zones={"acme": "Europe/Paris"}, local_day_shape=tuple(local))
    baseline = DayProfileBaseline(config, utc_offset=1, zone="Europe/Paris")
    first = minute_of(SPRING) // 60 - 1  # 00:00 UTC, 01:00 CET
    for clock, tweets in ((first, 60.0), (first + 1, 240.0)):  # 1 a minute, then 03:00 CEST's 4 a minute
        baseline.first_day[clock] = FirstDayHour(Evidence(60, 60, tweets, tweets / 4, tweets, 0), tweets, 60)
    assert baseline.follow_clock(minute_of(SPRING))
    assert baseline.surges({}).to_list() == Evidence().to_list()
    baseline.first_day[first].tweets = 240.0  # a buzz: four times what 01:00 brings
    assert baseline.surges({}).total == pytest.approx(0.9 * 60)  # all but anomaly_weight of its share


@pytest.mark.parametrize(
    ("history", "outage_tweets"),  # settled (silence learned by the hour) and an outage or none; learning
    [(3000, 30.0), (3000, math.inf), (600, 30.0)],
)
def test_a_silence_across_a_turn_is_learned_as_closing_its_minutes_would(
    history: int, outage_tweets: float
) -> None:
    """A stream silent for a week across the spring change is skipped (`learn_silence`), not closed minute
    by minute: its hours turn with the brand's clock all the same, where the closings would have turned
    them, and the silent minutes after the change are learned in their hours on the new clock."""
    config = DetectorConfig(outage_silence_tweets=outage_tweets)
    by_minute, by_hour = (DayProfileBaseline(config, utc_offset=1, zone="Europe/Paris") for _ in range(2))
    first = minute_of(SPRING) - history - 2000
    for baseline in (by_minute, by_hour):
        for minute in range(first, first + history):  # 2 tweets a minute, one negative in three minutes
            hour = baseline.hour_of(minute)
            negative = float(minute % 3 == 0)
            baseline.learn(hour, baseline.contribution(hour, 2, negative, negative, 2, 1.0), 2, minute // 60)
    start = first + history + 7
    for minute in range(start, start + 10_080):  # as `BuzzDetector._close_minute` does
        if minute % 15 == 0:
            by_minute.follow_clock(minute)
        hour = by_minute.hour_of(minute)
        if not by_minute.outage(hour, 0.0):
            by_minute.learn(hour, by_minute.contribution(hour, 0, 0, 0, 1.0, 1.0), 0, minute // 60)
    by_hour.learn_silence(start, 10_080)
    expected, got = by_minute.state_dict(), by_hour.state_dict()
    assert got["utc_offset"] == expected["utc_offset"] == 2 and got["turned_at"] == expected["turned_at"]
    assert got["minutes_seen"] == expected["minutes_seen"] and got["first_day"] == expected["first_day"]
    for key in ("hourly_volume", "hourly_share"):
        flat = [value for row in got[key] for value in row]
        assert flat == pytest.approx([value for row in expected[key] for value in row], rel=1e-9, abs=1e-12)
    assert got["overall"] == pytest.approx(expected["overall"], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    ("zone", "change"),
    [
        ("Europe/Paris", SPRING),
        ("Europe/Paris", AUTUMN),
        ("America/New_York", datetime(2026, 3, 8, 7, tzinfo=UTC)),  # 02:00 EST
        ("America/New_York", datetime(2026, 11, 1, 6, tzinfo=UTC)),  # 02:00 EDT
        ("Australia/Sydney", datetime(2026, 4, 4, 16, tzinfo=UTC)),  # 03:00 AEDT
        ("America/Santiago", datetime(2026, 4, 5, 3, tzinfo=UTC)),  # 00:00 CLST
    ],
)
def test_every_minute_around_a_turn_is_counted_in_its_local_hour(zone: str, change: datetime) -> None:
    """Three hours either side of a change, checked each quarter hour as the detector does: the hour a
    minute is counted in, on the brand's clock of the moment, is its local hour of the day."""
    config = DetectorConfig(brand_zones={"acme": zone})
    start = minute_of(change) - 180
    baseline = DayProfileBaseline(config, utc_offset=config.utc_offset_of("acme", start), zone=zone)
    turns = 0
    for now in range(start, start + 360, 15):
        turns += baseline.follow_clock(now)
        assert baseline.utc_offset is not None
        for minute in range(now - 180, now + 1):  # what the windows and the lag still hold, and this one
            local = (minute // 60 + zone_offset_hours(zone, minute)) % 24
            assert (baseline.hour_of(minute) + baseline.utc_offset) % 24 == local
    assert turns == 1
