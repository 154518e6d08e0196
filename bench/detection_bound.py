"""How soon could any detector alert the benchmark's quiet-brand buzzes? An ideal detector as a reference.

Issue 10 asks for a median delay of at most 15 minutes on brands at about 0.2 tweets a minute, with at most
one false alert a brand-week. This asks how much of that a detector can have at all on `bench/detection.py`'s
streams, on the same seeds and buzzes, by giving an ideal detector what a real one lacks:

- the brand's ordinary negatives a minute, exactly as the generator draws them (`Brand.expected_per_minute`
  x its negative share: a Poisson count, minute by minute, with its day shape, weekend and time zone);
- the buzz's size: its peak extra negatives a minute (`peak_per_minute` x the share of its tweets that are
  negative, 1 - BUZZ_REPLY_SHARE), and the true labels;
- the optimal test for a rise of known size between known Poisson rates, a CUSUM of the log-likelihood
  ratio, minute by minute (the least worst-case mean delay at a given false-alarm rate), from 0 at the
  buzz's first tweet (no unlucky run of ordinary tweets before it);
- a threshold that spends exactly the false-alert budget on Monte-Carlo weeks of the same brand's ordinary
  traffic (an alarm silencing the next REFRACTORY_MINUTES, as a quiet brand's open episode does), where a
  real detector must also sit out the decoys (a rant, a retweet storm).

Each further row (`VARIANTS`) takes one advantage away: at least 5 complaints before an alarm (a real
detector's guard against one author's rant, `thin_min_negatives`), then only the brand's mean rate instead
of its day shape. Its delays are a floor, not a target. Printed beside them, measured in the same run on the
same buzzes: the shipped detector with the true labels (the `oracle` column of `bench/detection.py`,
`--past-hours` as there), and every figure again for the buzzes in their brand's first day and the others.
Nothing is chosen here; both halves of the seeds may be read.

    .venv/bin/python bench/detection_bound.py                  # the report half (about 7 minutes)
    .venv/bin/python bench/detection_bound.py --half tuning --past-hours 168 --json FILE
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "bench")]

from detection import (  # noqa: E402
    DETECT_AFTER,
    REPORT_SEEDS,
    TUNING_SEEDS,
    _quantile,
    brand_id,
    read_seed_rows,
    read_truth,
    run_seeds,
    seed_folder,
)
from detection_data import BUZZ_REPLY_SHARE, Brand, load_pools  # noqa: E402

from buzzwatch.schema import parse_timestamp  # noqa: E402

QUIET_ROLES = frozenset({"quiet", "quiet_new_night"})
REFRACTORY_MINUTES = 120  # an alarm silences the next alarms this long (a quiet brand's open episode)
SIMULATED_WEEKS = 40  # Monte-Carlo weeks of ordinary traffic per buzz, to set its threshold
BISECTION_STEPS = 18
BOOTSTRAP_RESAMPLES = 2000
MINUTE = timedelta(minutes=1)
FIRST_DAY_HOURS = 24.0  # a buzz this soon after its brand's first tweet is in its first day
SHIPPED = "the shipped detector"
# (name, knows the ordinary rate minute by minute (else only the brand's mean), fewest negatives to alarm)
VARIANTS = (
    ("ideal: knows each minute's ordinary rate and the buzz's size", True, 1),
    ("ideal, waits for 5 complaints (a rant's guard, thin_min_negatives)", True, 5),
    ("ideal, 5 complaints, knows only the brand's mean rate", False, 5),
)


def brand_of(row: dict[str, Any]) -> Brand:
    """A brands.csv row (as `read_truth` gives it) as the generator's Brand (its rhythm, zone and shift)."""
    shift_at = row.get("shift_at") or None
    return Brand(
        name=row["name"],
        family=row["family"],
        role=row["role"],
        rate=float(row["rate"]),
        utc_offset=int(row["utc_offset"]),
        negative_share=float(row["negative_share"]),
        start=row["start"],  # read_truth parses start and end
        end=row["end"],
        shift_at=parse_timestamp(shift_at) if shift_at else None,
        shift_hours=int(row.get("shift_hours") or 0),
    )


def ordinary_negatives(brand: Brand) -> np.ndarray:
    """The brand's expected ordinary negatives in each minute of its life (the generator's own rates)."""
    minutes = int((brand.end - brand.start) / MINUTE)
    return np.array(
        [brand.expected_per_minute(brand.start + i * MINUTE) * brand.negative_share for i in range(minutes)]
    )


def cusum(
    counts: np.ndarray, assumed: np.ndarray, extra: float, threshold: float, min_negatives: int
) -> tuple[np.ndarray, np.ndarray]:
    """Run a CUSUM over `counts` (minutes x columns): each minute adds its count x log(1 + extra /
    assumed rate) less `extra` (the log-likelihood ratio of a rise by `extra` negatives a minute), floored
    at 0; it alarms at `threshold` once the run since it left 0 holds `min_negatives`, then is held at 0 for
    REFRACTORY_MINUTES. Returns each column's alarms and first alarm's minute (-1: none)."""
    weights = np.log1p(extra / assumed)
    score = np.zeros(counts.shape[1])
    run = np.zeros(counts.shape[1])
    held = np.zeros(counts.shape[1], dtype=int)
    alarms = np.zeros(counts.shape[1], dtype=int)
    first = np.full(counts.shape[1], -1)
    for minute in range(counts.shape[0]):
        score = np.where(held > 0, 0.0, np.maximum(score + counts[minute] * weights[minute] - extra, 0.0))
        run = np.where(score > 0, run + counts[minute], 0.0)
        held = np.maximum(held - 1, 0)
        fired = (score >= threshold) & (run >= min_negatives)
        alarms += fired
        first[fired & (first < 0)] = minute
        held[fired] = REFRACTORY_MINUTES
        score[fired] = 0.0
    return alarms, first


def threshold_for(
    rates: np.ndarray, assumed: np.ndarray, extra: float, budget: float, min_negatives: int, seed: int
) -> float:
    """The CUSUM threshold whose false alarms on Poisson weeks of the true `rates` are `budget` a
    brand-week (the same simulated weeks for every threshold tried)."""
    counts = np.random.default_rng(seed).poisson(rates[:, None], size=(len(rates), SIMULATED_WEEKS))
    weeks = len(rates) / (7 * 24 * 60) * SIMULATED_WEEKS
    low, high = 0.0, 60.0
    for _ in range(BISECTION_STEPS):
        middle = (low + high) / 2
        if cusum(counts, assumed, extra, middle, min_negatives)[0].sum() / weeks > budget:
            low = middle
        else:
            high = middle
    return high


def _median_interval(values: list[float], rng: np.random.Generator) -> tuple[float, float]:
    draws = [float(np.median(rng.choice(values, len(values)))) for _ in range(BOOTSTRAP_RESAMPLES)]
    return float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))


def buzz_counts(episode: dict[str, Any], negatives: list[datetime]) -> np.ndarray:
    """The buzz's true negatives a minute from its first tweet to DETECT_AFTER past its end (1 column)."""
    start = episode["start"]
    steps = math.ceil((episode["end"] + DETECT_AFTER - start) / MINUTE)
    counts = np.zeros((steps, 1))
    for moment in negatives:
        step = int((moment - start) // MINUTE)
        if 0 <= step < steps:
            counts[step, 0] += 1
    return counts


def ideal_delays(
    brand: Brand, episode: dict[str, Any], negatives: list[datetime], budget: float, seed: int
) -> dict[str, float | None]:
    """Each variant's minutes from the buzz's first tweet to its alarm (None: none by DETECT_AFTER past its
    end); the minutes count whole, from the first tweet."""
    rates = ordinary_negatives(brand)
    extra = float(episode["peak_per_minute"]) * (1.0 - BUZZ_REPLY_SHARE)
    counts = buzz_counts(episode, negatives)
    offset = int((episode["start"] - brand.start) // MINUTE)
    at = np.minimum(np.arange(offset, offset + len(counts)), len(rates) - 1)
    delays: dict[str, float | None] = {}
    for name, knows_shape, min_negatives in VARIANTS:
        assumed = rates if knows_shape else np.full(len(rates), rates.mean())
        threshold = threshold_for(rates, assumed, extra, budget, min_negatives, seed)
        first = int(cusum(counts, assumed[at], extra, threshold, min_negatives)[1][0])
        delays[name] = first + 1.0 if first >= 0 else None
    return delays


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--half", choices=("tuning", "report"), default="report", help="which seeds")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="these seeds instead of a half")
    parser.add_argument("--budget", type=float, default=1.0, help="false alerts a brand-week (default 1)")
    parser.add_argument("--no-replay", action="store_true", help="the ideal detectors only")
    parser.add_argument(
        "--past-hours",
        type=float,
        default=0.0,
        metavar="H",
        help="the shipped detector learns each brand added during the week from H hours of its past first "
        "(as bench/detection.py --past-hours)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write each buzz's delays here")
    args = parser.parse_args()
    if not args.budget >= 1 / SIMULATED_WEEKS:  # fewer than one alarm in the simulated weeks: not measurable
        least = 1 / SIMULATED_WEEKS
        parser.error(f"--budget must be at least {least:g} (one alarm in {SIMULATED_WEEKS} simulated weeks)")
    seeds = args.seeds or list(TUNING_SEEDS if args.half == "tuning" else REPORT_SEEDS)
    pools = load_pools()
    rows: list[dict[str, Any]] = []
    for seed in seeds:
        folder = seed_folder(seed, pools)
        truth = read_truth(folder)
        quiet = {b["name"]: brand_of(b) for b in truth.brands if b["role"] in QUIET_ROLES}
        ids = {brand_id(name): name for name in quiet}
        negatives: dict[str, list[datetime]] = {name: [] for name in quiet}
        for row in read_seed_rows(folder / "tweets.csv", True, False):
            if row.label == "negative":
                for brand in row.tweet.brands:
                    if brand in ids:
                        negatives[ids[brand]].append(row.tweet.created_at)
        for number, episode in enumerate(e for e in truth.episodes if e["brand"] in quiet):
            brand = quiet[episode["brand"]]
            delays = ideal_delays(brand, episode, negatives[brand.name], args.budget, seed * 100 + number)
            first_day = float(episode["hours_after_brand_start"]) < FIRST_DAY_HOURS
            rows.append(
                {"seed": seed, "episode": episode["episode_id"], "first_day": first_day, "delays": delays}
            )
        print(f"seed {seed}: {sum(r['seed'] == seed for r in rows)} quiet buzzes", flush=True)
    names = [name for name, _, _ in VARIANTS]
    if not args.no_replay:
        episodes, _ = run_seeds(seeds, {"oracle": None}, past_hours=args.past_hours)["oracle"]
        detector = {(e["seed"], e["episode"]): e["delay"] for e in episodes}
        names.append(SHIPPED)
        for row in rows:
            row["delays"][SHIPPED] = detector[(row["seed"], row["episode"])]
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print(
        f"\n== quiet-brand buzzes of seeds {seeds}, true labels, {args.budget:g} false alert a brand-week =="
    )
    print(delay_table(rows, names))


def delay_table(rows: list[dict[str, Any]], names: list[str]) -> str:
    """Per detector: alerted, median delay [95% bootstrap interval], p90 and alerted within 15 minutes, of
    every buzz; then the median and within 15 minutes of those in their brand's first day and the others."""
    rng = np.random.default_rng(20261207)
    first_day = [r for r in rows if r["first_day"]]
    later = [r for r in rows if not r["first_day"]]
    lines = [
        f"| detector | alerted | median delay (min) | p90 | within 15 min | first day ({len(first_day)}): "
        f"median, within 15 | seen a day ({len(later)}): median, within 15 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        found = [r["delays"][name] for r in rows if r["delays"][name] is not None]
        low, high = _median_interval(found, rng) if found else (math.nan, math.nan)
        parts = [f"{len(found)}/{len(rows)}", f"{_quantile(found, 0.5):.1f} [{low:.1f}-{high:.1f}]"]
        parts += [f"{_quantile(found, 0.9):.1f}", f"{sum(d <= 15 for d in found)}"]
        for subset in (first_day, later):
            delays = [r["delays"][name] for r in subset if r["delays"][name] is not None]
            parts.append(f"{_quantile(delays, 0.5):.1f}, {sum(d <= 15 for d in delays)}")
        lines.append(f"| {name} | " + " | ".join(parts) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
