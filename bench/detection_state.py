"""The detector's state after a simulated month of one busy brand: does it stay bounded? (issue 10)

    .venv/bin/python bench/detection_state.py [--per-minute 100] [--days 30] [--report-days 1 7 14 30]

One brand at `--per-minute` tweets a minute for `--days` days, fed in event time to one `BuzzDetector`
built as `buzzwatch replay` builds it (`DetectorConfig.from_env`, the real tokenizer, the shipped reason
model), pre-scored: texts and labels of data/airline_us's training file (each text with a number of its
own, so two tweets are copies only when meant to be), authors drawn from 50,000, a tenth of the tweets
retweets of a tweet of the last ten minutes, probabilities as a model gives them (its label at 0.8, the
others at 0.1), so copy and author weights, soft counts and their squares all run. Every day at a drawn
hour a bad buzz of 30 minutes (three times the volume, 70% of it negative), so episodes open and end,
alerts are explained and the reference corpus is recounted, as live.

After each of `--report-days` days it prints the bytes of the saved state (JSON of `state_dict()`, and of
the brand's row `brand_state_dict`, what an incremental checkpoint writes), what the brand holds (tweet ids,
copy and author keys, reference texts and their cached forms, closed minutes, minutes of tweets), the
alerts so far, the CPU time and the process's resident memory. Bounded means the figures of day 30 are
those of day 1: everything the detector keeps is a window, a capped history or a fixed-size baseline.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from buzzwatch.schema import ScoredTweet, TweetEvent  # noqa: E402
from models.reasons import load_reason_model  # noqa: E402
from worker.detection import BuzzDetector, DetectorConfig  # noqa: E402

START = datetime(2026, 1, 5, tzinfo=UTC)
BRAND = "busy"
AUTHORS = 50_000
RETWEET_SHARE = 0.1
BUZZ_MINUTES = 30
LABELS = ("negative", "neutral", "positive")


@dataclass(frozen=True)
class DaySize:
    """What the detector holds after one simulated day."""

    day: int
    tweets: int
    state_bytes: int  # JSON of the whole `state_dict()`
    brand_bytes: int  # JSON of the brand's row (`brand_state_dict`)
    parts: dict[str, int]  # JSON bytes of each part of the brand's row
    ids: int
    keys: int  # copy and author keys of the tweets held
    reference: int
    reference_forms: int
    closed: int
    chunks: int
    alerts: int
    cpu_s: float
    rss_mb: float


def _texts() -> dict[str, list[str]]:
    """The training file's texts by label."""
    by_label: dict[str, list[str]] = {label: [] for label in LABELS}
    with open(REPO / "data" / "airline_us" / "train.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row.get("text") and row.get("label") in by_label:
                by_label[row["label"]].append(row["text"])
    return by_label


def stream(per_minute: int, days: float, seed: int = 0) -> Iterator[ScoredTweet]:
    """The brand's tweets in event time: `per_minute` a minute, a quarter negative, a buzz a day."""
    rng = random.Random(seed)
    texts = _texts()
    probabilities = {
        label: {name: 0.8 if name == label else 0.1 for name in LABELS} for label in LABELS
    }  # shared: the detector only reads them
    recent_ids: deque[str] = deque(maxlen=10 * per_minute)
    buzz_start = 0
    for minute in range(int(days * 24 * 60)):
        if minute % (24 * 60) == 0:  # the day's buzz, at a drawn minute of it
            buzz_start = minute + rng.randrange(24 * 60 - BUZZ_MINUTES)
        in_buzz = buzz_start <= minute < buzz_start + BUZZ_MINUTES
        count = 3 * per_minute if in_buzz else per_minute
        negative_share = 0.7 if in_buzz else 0.25
        base = START + timedelta(minutes=minute)
        for index in range(count):
            label = "negative" if rng.random() < negative_share else LABELS[1 + rng.randrange(2)]
            tweet_id = f"m{minute}-{index}"
            retweet_of = rng.choice(recent_ids) if recent_ids and rng.random() < RETWEET_SHARE else None
            recent_ids.append(tweet_id)
            created = base + timedelta(seconds=60 * index / count)
            event = TweetEvent(
                id=tweet_id,
                created_at=created,
                text=f"{rng.choice(texts[label])} {rng.randrange(10**6)}",
                brands=(BRAND,),
                author_id=f"a{rng.randrange(AUTHORS)}",
                retweet_of=retweet_of,
            )
            yield ScoredTweet(event, label, probabilities[label], "bench", scored_at=created)


def measure(detector: BuzzDetector, day: int, tweets: int, alerts: int, cpu_s: float) -> DaySize:
    """The detector's saved-state sizes and held objects now."""
    state = detector._brands[BRAND]  # what it holds beyond the saved row (copy keys, cached forms)
    row = detector.brand_state_dict(BRAND)
    return DaySize(
        day=day,
        tweets=tweets,
        state_bytes=len(json.dumps(detector.state_dict())),
        brand_bytes=len(json.dumps(row)),
        parts={key: len(json.dumps(value)) for key, value in row.items()},
        ids=len(state.ids),
        keys=len(state.copies),
        reference=len(state.reference),
        reference_forms=len(state.reference_forms),
        closed=len(state.closed),
        chunks=len(state.chunks),
        alerts=alerts,
        cpu_s=cpu_s,
        rss_mb=_rss_mb(),
    )


def _rss_mb() -> float:
    """The process's resident memory now, in MB (Linux)."""
    status = Path("/proc/self/status")
    if not status.exists():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024


def simulate(per_minute: int, days: float, report_days: Sequence[int], seed: int = 0) -> list[DaySize]:
    """Run the month; the sizes after each of `report_days` (whole days from the start)."""
    detector = BuzzDetector(DetectorConfig.from_env(os.environ), reason_model=load_reason_model())
    wanted = sorted(set(report_days))
    sizes: list[DaySize] = []
    tweets = alerts = 0
    cpu = time.process_time()
    for scored in stream(per_minute, days, seed):
        day = int((scored.tweet.created_at - START).total_seconds() // 86400)
        if wanted and day >= wanted[0]:  # the first tweet of the next day: the day is over
            sizes.append(measure(detector, wanted.pop(0), tweets, alerts, time.process_time() - cpu))
            _print(sizes[-1])
        alerts += len(detector.observe(scored))
        tweets += 1
    if wanted and wanted[0] <= days:
        alerts += len(detector.flush())
        sizes.append(measure(detector, wanted.pop(0), tweets, alerts, time.process_time() - cpu))
        _print(sizes[-1])
    return sizes


def _print(size: DaySize) -> None:
    print(
        f"day {size.day:>3}: {size.tweets:>9,} tweets, state {size.state_bytes:>9,} B (brand row "
        f"{size.brand_bytes:,} B); held: {size.ids:,} ids, {size.keys:,} copy/author keys, "
        f"{size.reference} reference texts ({size.reference_forms} with forms), {size.closed} closed "
        f"minutes, {size.chunks} minutes of tweets; {size.alerts} alerts; {size.cpu_s:.0f} CPU-s, "
        f"RSS {size.rss_mb:.0f} MB",
    )
    largest = sorted(size.parts.items(), key=lambda kv: -kv[1])[:5]
    print(
        "         largest parts of the row: " + ", ".join(f"{key} {n:,} B" for key, n in largest), flush=True
    )


def main(argv: Sequence[str] | None = None) -> list[DaySize]:
    """Command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--per-minute", type=int, default=100, help="the brand's tweets a minute (default 100)"
    )
    parser.add_argument("--days", type=float, default=30.0, help="simulated days (default 30)")
    parser.add_argument(
        "--report-days", type=int, nargs="+", default=[1, 7, 14, 30], help="days after which to measure"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"one brand at {args.per_minute} tweets a minute for {args.days:g} days, a 30-minute buzz a day")
    return simulate(args.per_minute, args.days, args.report_days, args.seed)


if __name__ == "__main__":
    main()
