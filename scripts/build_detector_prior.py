"""Build (or check) worker/detection/detector_prior.json: what the detector assumes of a new brand.

- `day_shape`: tweets per minute in each UTC hour of the day relative to the day's mean, from the real
  airline week (data/airline_us, Feb 2015, six airlines): each airline's hourly counts over the hours of
  that hour-of-day the week covers, divided by its mean, averaged over the airlines and smoothed with
  the neighbouring hours (a week is seven samples per hour). A new brand's expected volume follows this
  shape until its own hours of the day are learned, so its first morning is not a surge.
- `local_day_shape`: the same in local hours, each airline's tweets on its own clock (the `timezone` of
  its table in config/brands.toml: its main hub's zone). A brand whose table names its zone expects its
  first days by this shape turned to its clock, so a brand in Paris or Tokyo is not expected at its
  busiest in its night (`DetectorConfig.day_shape_at`).
- `negative_share` and `share_prior_tweets`: a Beta prior for a brand's negative share matching how the
  share varies between real brands (the six airlines and the four brands of data/sanders; method of
  moments): its mean and its weight in tweets. Brands differ a lot (7% to 78% negative), so the weight is
  a few tweets: a brand's own tweets outweigh it within minutes.

    .venv/bin/python scripts/build_detector_prior.py            # rewrite the file
    .venv/bin/python scripts/build_detector_prior.py --check    # exit 1 if the file is not what it builds
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from collections import Counter, defaultdict
from datetime import UTC, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from buzzwatch.files import check_or_write  # noqa: E402 - the repository root is on the path first
from buzzwatch.schema import parse_timestamp  # noqa: E402
from buzzwatch.zones import DEFAULT_BRANDS_FILE, BrandsFile  # noqa: E402
from worker.detection.config import PRIOR_PATH  # noqa: E402

AIRLINES = REPO_ROOT / "data" / "airline_us" / "train.csv"
SANDERS = REPO_ROOT / "data" / "sanders" / "all.csv"
HOURS = 24


def _rows(path: Path) -> list[dict[str, str]]:
    """The file's unique tweets (one per id)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list({row["id"]: row for row in csv.DictReader(handle)}.values())


def airline_zones() -> dict[str, tzinfo]:
    """Each airline of the data (as its `airline` column names it) -> the zone config/brands.toml gives it."""
    brands = BrandsFile.read(DEFAULT_BRANDS_FILE)
    ids, zones = brands.ids(), brands.configured_zones()
    airlines = {row["airline"] for row in _rows(AIRLINES)}
    return {airline: ZoneInfo(zones[ids.resolve(airline)]) for airline in sorted(airlines)}


def day_shape(rows: list[dict[str, str]], zones: dict[str, tzinfo] | None = None) -> list[float]:
    """Relative volume per hour of the day (mean 1), pooled over brands and smoothed (see above): by UTC
    hour, or by each brand's local hour when `zones` gives each its zone."""
    times = {row["id"]: parse_timestamp(row["created_at"]) for row in rows}
    first, last = min(times.values()), max(times.values())
    counts: dict[str, Counter[int]] = defaultdict(Counter)
    for row in rows:
        zone = zones[row["airline"]] if zones else UTC
        counts[row["airline"]][times[row["id"]].astimezone(zone).hour] += 1
    pooled = [0.0] * HOURS
    for airline, per_hour in counts.items():
        zone = zones[airline] if zones else UTC
        covered = Counter()  # how many hours of each (local) hour-of-day the week spans
        moment = first.replace(minute=0, second=0, microsecond=0)
        while moment <= last:
            covered[moment.astimezone(zone).hour] += 1
            moment += timedelta(hours=1)
        rates = [per_hour[hour] / covered[hour] for hour in range(HOURS)]
        mean = sum(rates) / HOURS
        for hour in range(HOURS):
            pooled[hour] += rates[hour] / mean / len(counts)
    smoothed = [
        0.25 * pooled[hour - 1] + 0.5 * pooled[hour] + 0.25 * pooled[(hour + 1) % HOURS]
        for hour in range(HOURS)
    ]
    mean = sum(smoothed) / HOURS
    return [round(value / mean, 4) for value in smoothed]


def brand_shares(airlines: list[dict[str, str]], sanders: list[dict[str, str]]) -> dict[str, float]:
    """Each real brand's share of negative tweets."""
    labels: dict[str, list[bool]] = defaultdict(list)
    for row in airlines:
        labels[row["airline"]].append(row["label"] == "negative")
    for row in sanders:
        labels[row["topic"]].append(row["label"] == "negative")
    return {brand: round(sum(flags) / len(flags), 4) for brand, flags in sorted(labels.items())}


def share_prior(shares: dict[str, float]) -> tuple[float, float]:
    """(mean, weight in tweets) of the Beta distribution with the brands' mean and variance of shares."""
    values = list(shares.values())
    mean, variance = statistics.fmean(values), statistics.variance(values)
    return round(mean, 4), round(mean * (1.0 - mean) / variance - 1.0, 2)


def build() -> dict[str, object]:
    """The prior file's content."""
    airlines, sanders = _rows(AIRLINES), _rows(SANDERS)
    shares = brand_shares(airlines, sanders)
    mean, weight = share_prior(shares)
    return {
        "source": "scripts/build_detector_prior.py: data/airline_us (Feb 2015 week) and data/sanders",
        "built_from_tweets": len(airlines) + len(sanders),
        "day_shape": day_shape(airlines),
        "local_day_shape": day_shape(airlines, airline_zones()),
        "negative_share": mean,
        "share_prior_tweets": weight,
        "brand_negative_shares": shares,
    }


def render(prior: dict[str, object]) -> str:
    """The file's text: JSON, keys sorted."""
    return json.dumps(prior, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the prior file, or with --check compare it with a fresh build."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only check that the file is up to date")
    args = parser.parse_args(argv)
    prior = build()
    status = check_or_write(
        {PRIOR_PATH: render(prior)}, check=args.check, command="python scripts/build_detector_prior.py"
    )
    if not args.check:
        print(
            f"share prior {prior['negative_share']} over {prior['share_prior_tweets']} tweets, "
            f"day shape {min(prior['day_shape'])}..{max(prior['day_shape'])}"
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
