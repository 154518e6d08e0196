"""A brand through summer time: its expectations, its false alerts and its buzzes' delays, with its hours
turned with its clock (shipped) and, measured in the same run, kept on the clock it was first seen with
(the detector before 2026-12-07).

    .venv/bin/python bench/detection_dst.py [--seeds 8] [--per-minute 5] [--workers 2] [--json FILE]

Air Paradis is in Europe/Paris: twice a year its people's day moves an hour in UTC. For each change of
2026 (summer time from 29 March, 01:00 UTC; winter time from 25 October) and each seed, one brand's
ordinary traffic by its local clock (`local_clock_traffic`: Poisson counts at `--per-minute` on average
times the shipped local day shape, a quarter negative, hard labels) from 10 days before the change to 7
days after, replayed through a `BuzzDetector` (default settings) three ways:
- `followed`: the brand's zone is Europe/Paris, its hours turn with its clock (shipped);
- `fixed`: the same tweets, the zone given as the offset before the change (Etc/GMT-1 in March, Etc/GMT-2
  in October), so its hours stay an hour off after it: what the detector did before, which kept the
  offset a brand was first seen with;
- `no change`: the same seed's traffic drawn on that fixed clock, detected on it: the noise floor, a week
  like any other.
Printed per change: the mean relative error of the brand's expected tweets a minute over the 24 hours at the
end of the day after the change (against the rate its traffic is drawn at, on the clock it keeps), the new
alerts (all false: no buzz is injected) in the week before and the week after, and, in runs of their own,
the delay of a bad buzz (45 minutes, `--buzz-per-minute` extra negatives a minute on a brand at 2 tweets a
minute, a day or two after the change at the local hour the run names) in the morning rise (07:00-08:00
local) and the evening fall (21:00-22:00 local), where an hour's error in the day shape weighs most,
followed against fixed.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from buzzwatch.cli import positive_count  # noqa: E402
from buzzwatch.schema import Alert, ScoredTweet, TweetEvent  # noqa: E402
from worker.detection import BuzzDetector, DetectorConfig  # noqa: E402
from worker.detection.config import zone_offset_hours  # noqa: E402

ZONE = "Europe/Paris"
CHANGES = {  # the change, the fixed zone at the offset before it
    "summer time (29 Mar)": (datetime(2026, 3, 29, 1, tzinfo=UTC), "Etc/GMT-1"),
    "winter time (25 Oct)": (datetime(2026, 10, 25, 1, tzinfo=UTC), "Etc/GMT-2"),
}
DAYS_BEFORE, DAYS_AFTER = 10, 7
BUZZ_BRAND_RATE = 2.0
BUZZ_MINUTES = 45
LOCAL_BUZZ_HOURS = {"morning rise": 7, "evening fall": 21}


WORDS = ("gate", "crew", "seat", "snack", "app", "lounge", "fare", "delay", "bag", "wifi")


def _tweet(tweet_id: str, moment: datetime, label: str, text: str) -> ScoredTweet:
    """One tweet of the brand, scored with a hard label (as `buzzwatch replay --oracle` scores it)."""
    probabilities = {name: float(name == label) for name in ("negative", "neutral", "positive")}
    event = TweetEvent(id=tweet_id, created_at=moment, text=text, brands=("acme",))
    return ScoredTweet(tweet=event, label=label, probabilities=probabilities, model_version="bench")


def local_clock_traffic(
    zone: str, start: datetime, days: float, mean_rate: float, seed: int
) -> list[ScoredTweet]:
    """Ordinary traffic that keeps the brand's clock, summer time included, as people do: each minute a
    Poisson count at `mean_rate` times the shipped local day shape (`DetectorConfig.local_day_shape`) at
    that minute's local hour in `zone`, a quarter negative, in event-time order."""
    shape = DetectorConfig().local_day_shape
    clock = ZoneInfo(zone)
    rng = random.Random(seed)
    tweets = []
    for step in range(int(days * 24 * 60)):
        minute = start + timedelta(minutes=step)
        threshold = math.exp(-mean_rate * shape[minute.astimezone(clock).hour])
        count, product = 0, rng.random()
        while product > threshold:  # Knuth's Poisson draw
            count += 1
            product *= rng.random()
        for moment in sorted(minute + timedelta(seconds=rng.uniform(0, 60)) for _ in range(count)):
            roll = rng.random()
            label = "negative" if roll < 0.25 else ("neutral" if roll < 0.6 else "positive")
            index = len(tweets)
            tweets.append(
                _tweet(f"t{index}", moment, label, f"{label} words on the {rng.choice(WORDS)} {index}")
            )
    return tweets


def _buzz(begins: datetime, per_minute: float, seed: int) -> list[ScoredTweet]:
    """A bad buzz: `per_minute` complaints a minute for `BUZZ_MINUTES`, each its own text."""
    rng = random.Random(seed)
    count = round(BUZZ_MINUTES * per_minute)
    moments = sorted(begins + timedelta(seconds=rng.uniform(0, BUZZ_MINUTES * 60)) for _ in range(count))
    return [
        _tweet(f"b{i}", at, "negative", f"my bag is lost again, worst airline {i}")
        for i, at in enumerate(moments)
    ]


def _replay(
    zone: str, tweets: list[ScoredTweet], detector: BuzzDetector | None = None
) -> tuple[BuzzDetector, list[Alert]]:
    """Feed `tweets` (event-time order) to `detector` (a new one for a brand in `zone` when None)."""
    detector = detector or BuzzDetector(DetectorConfig(brand_zones={"acme": zone}))
    return detector, [alert for tweet in tweets for alert in detector.observe(tweet)]


def expectation_error(detector: BuzzDetector, rate: float, clock: str) -> float:
    """Mean relative error of the brand's expected tweets a minute over the 24 UTC hours of the day
    against the rate `local_clock_traffic` draws at on `clock` (the zone its traffic keeps), at the
    detector's minute."""
    baseline = detector._brands["acme"].baseline
    local = DetectorConfig().local_day_shape
    offset = zone_offset_hours(clock, detector._next_minute)
    errors = [
        abs(baseline.expect(hour).rate / (rate * local[(hour + offset) % 24]) - 1.0) for hour in range(24)
    ]
    return sum(errors) / len(errors)


def quiet_weeks(change: datetime, fixed: str, seed: int, rate: float) -> dict[str, dict[str, float]]:
    """One seed's three replays of one change (see the module's docstring)."""
    start = change - timedelta(days=DAYS_BEFORE)
    day_after = change.replace(hour=0) + timedelta(days=2)  # the end of the day after the change
    drawn = {ZONE: local_clock_traffic(ZONE, start, DAYS_BEFORE + DAYS_AFTER, rate, seed)}
    drawn[fixed] = local_clock_traffic(fixed, start, DAYS_BEFORE + DAYS_AFTER, rate, seed)
    out = {}
    for name, clock, zone in (("followed", ZONE, ZONE), ("fixed", ZONE, fixed), ("no change", fixed, fixed)):
        traffic = drawn[clock]
        early = [t for t in traffic if t.tweet.created_at < day_after]
        detector, alerts = _replay(zone, early)
        error = expectation_error(detector, rate, clock)
        alerts += _replay(zone, traffic[len(early) :], detector)[1] + detector.flush()
        new = [a.fired_at for a in alerts if a.kind == "new"]
        out[name] = {
            "error": error,
            "week_before": sum(change - timedelta(days=7) <= t < change for t in new),
            "week_after": sum(change <= t < change + timedelta(days=7) for t in new),
        }
    return out


def buzz_delay(
    change: datetime, fixed: str, seed: int, local_hour: int, per_minute: float
) -> dict[str, float]:
    """The delay (minutes; nan: missed within an hour) of one buzz at `local_hour` Paris time, a day or two
    after the change (by seed), followed and fixed."""
    start = change - timedelta(days=7)
    traffic = local_clock_traffic(ZONE, start, 9, BUZZ_BRAND_RATE, seed)
    day = (change + timedelta(days=1 + seed % 2)).astimezone(ZoneInfo(ZONE)).date()
    local_start = datetime(day.year, day.month, day.day, local_hour, 7 * (seed % 5), tzinfo=ZoneInfo(ZONE))
    begins = local_start.astimezone(UTC)
    stream = sorted(traffic + _buzz(begins, per_minute, seed), key=lambda t: (t.tweet.created_at, t.tweet.id))
    delays = {}
    for name, zone in (("followed", ZONE), ("fixed", fixed)):
        fired = [
            a.fired_at
            for a in _replay(zone, stream)[1]
            if a.kind == "new"
            and begins - timedelta(minutes=2) <= a.fired_at <= begins + timedelta(minutes=60)
        ]
        delays[name] = (fired[0] - begins).total_seconds() / 60 if fired else math.nan
    return delays


def _median(values: list[float]) -> str:
    found = [v for v in values if not math.isnan(v)]
    return f"{statistics.median(found):.1f}" if found else "-"


def _buzz_line(when: str, hour: int, per_minute: float, delays: list[dict[str, float]]) -> str:
    followed = [d["followed"] for d in delays]
    kept = [d["fixed"] for d in delays]
    paired = [f - k for f, k in zip(followed, kept, strict=True) if not (math.isnan(f) or math.isnan(k))]
    missed = f"{sum(map(math.isnan, followed))} / {sum(map(math.isnan, kept))}"
    return (
        f"buzz in the {when} ({hour:02d}:00 local, +{per_minute:g}/min for {BUZZ_MINUTES} min): median delay"
        f" followed {_median(followed)} min, fixed {_median(kept)} min; missed {missed} of {len(delays)};"
        f" followed minus fixed, buzz by buzz: {', '.join(f'{p:+.1f}' for p in paired)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=positive_count, default=8)
    parser.add_argument("--per-minute", type=float, default=5.0, help="the quiet weeks' mean tweets a minute")
    parser.add_argument("--buzz-per-minute", type=float, default=2.0)
    parser.add_argument("--workers", type=positive_count, default=2)
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    if not (args.per_minute > 0 and args.buzz_per_minute > 0):
        parser.error("--per-minute and --buzz-per-minute must be above 0")
    seeds = list(range(args.seeds))
    report: dict[str, object] = {}
    with ProcessPoolExecutor(args.workers) as pool:
        for label, (change, fixed) in CHANGES.items():
            weeks = list(pool.map(partial(quiet_weeks, change, fixed, rate=args.per_minute), seeds))
            print(f"== {label}, Europe/Paris, {args.per_minute:g} tweets a minute, {len(seeds)} seeds ==")
            print("| replay | expectation error, day after | new alerts week before | week after |")
            print("|---|---|---|---|")
            for name in ("followed", "fixed", "no change"):
                errors = [w[name]["error"] for w in weeks]
                error = f"{statistics.mean(errors):.3f} ({min(errors):.3f}-{max(errors):.3f})"
                before = sum(w[name]["week_before"] for w in weeks)
                after = sum(w[name]["week_after"] for w in weeks)
                print(f"| {name} | {error} | {before} | {after} |")
            buzzes = {}
            for when, hour in LOCAL_BUZZ_HOURS.items():
                delay = partial(buzz_delay, change, fixed, local_hour=hour, per_minute=args.buzz_per_minute)
                buzzes[when] = list(pool.map(delay, seeds))
                print(_buzz_line(when, hour, args.buzz_per_minute, buzzes[when]), flush=True)
            report[label] = {"weeks": weeks, "buzzes": buzzes}
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
