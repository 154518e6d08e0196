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
of its day shape. Its delays are a floor, not a target.

The same ideal detector is run again on what a real detector has instead of the labels: the shipped
champion's P(negative) of every tweet. It knows what the labelled one knows (the buzz adds that many
negatives a minute to the brand's ordinary tweets) and how the model scores each kind of tweet (the
densities of P(negative) over the seed's ordinary negatives, its other ordinary tweets and its buzzes'
negatives, per brand family), so each tweet adds its exact log-likelihood ratio, log(1 + extra f_buzz(p) /
(rate f_ordinary(p))) (a marked Poisson CUSUM; with the labels for scores it is the CUSUM above); its
complaints are counted as the shipped detector counts negative tweets (`_negative_tweet`). Where its rates
and densities are right (the first such row) that is the optimal test on these scores; with only the mean
rate and the guard it is not, and the last row reads the same scores summed, as the shipped detector does
(on these seeds no later). So the gap between those rows and the labels' is the model's, and the gap
between them and the shipped detector on the model is the detector's.

Printed beside them, measured in the same run on the same buzzes: the shipped detector with the labels and
with the model (the `oracle` and `model` columns of `bench/detection.py`, `--past-hours` as there), and
every figure again for the buzzes in their brand's first day and the others. Nothing is chosen here; both
halves of the seeds may be read.

    .venv/bin/python bench/detection_bound.py                  # the report half (about 15 minutes)
    .venv/bin/python bench/detection_bound.py --half tuning --past-hours 168 --json FILE
    .venv/bin/python bench/detection_bound.py --labels-only    # without the model's rows (about 8 minutes)
    .venv/bin/python bench/detection_bound.py --texts unseen   # texts the model never trained on
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
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
from detection_data import BUZZ_REPLY_SHARE, TEXT_SETS, Brand, load_pools  # noqa: E402
from soft_evidence import family_tweets, negative_probabilities  # noqa: E402

from buzzwatch.schema import parse_timestamp  # noqa: E402
from models.predictor import Predictor  # noqa: E402

QUIET_ROLES = frozenset({"quiet", "quiet_new_night"})
REFRACTORY_MINUTES = 120  # an alarm silences the next alarms this long (a quiet brand's open episode)
SIMULATED_WEEKS = 40  # Monte-Carlo weeks of ordinary traffic per buzz, to set its threshold
BISECTION_STEPS = 18
BOOTSTRAP_RESAMPLES = 2000
MINUTE = timedelta(minutes=1)
FIRST_DAY_HOURS = 24.0  # a buzz this soon after its brand's first tweet is in its first day
SHIPPED = {"oracle": "the shipped detector, labels", "model": "the shipped detector, model"}
SCORE_BINS = np.linspace(0.0, 1.0, 21)  # the densities of the model's P(negative), in 20 bins
# (name, what it reads: the labels, the model's scores or their sum, knows the ordinary rate minute by minute
# (else only the brand's mean), fewest complaints to alarm)
VARIANTS = (
    ("ideal: knows each minute's ordinary rate and the buzz's size", "labels", True, 1),
    ("ideal, waits for 5 complaints (a rant's guard, thin_min_negatives)", "labels", True, 5),
    ("ideal, 5 complaints, knows only the brand's mean rate", "labels", False, 5),
    ("ideal on the model's scores (and how it scores each kind of tweet)", "model", True, 1),
    ("ideal on the model's scores, 5 complaints, knows only the mean rate", "model", False, 5),
    ("the same, its scores summed as the shipped detector sums them", "summed", False, 5),
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


@dataclass(frozen=True)
class Marks:
    """How the model scores a brand family's tweets in a seed (its P(negative)): the ordinary negatives, the
    other ordinary tweets and a buzz's negatives. The ideal detector on the model's scores knows all three."""

    negative: np.ndarray
    other: np.ndarray
    buzz: np.ndarray

    @classmethod
    def of(cls, tweets: list[tuple[float, bool, bool]]) -> Marks:
        """From (P(negative), labelled negative, in a buzz) of each tweet (`soft_evidence.family_tweets`)."""
        table = np.array(tweets, dtype=float)
        p, negative, buzz = table[:, 0], table[:, 1] == 1.0, table[:, 2] == 1.0
        return cls(p[negative & ~buzz], p[~negative & ~buzz], p[negative & buzz])

    def ratio(self, share: float) -> np.ndarray:
        """Per bin of P(negative): a buzz negative's density over an ordinary tweet's, at a brand whose
        ordinary traffic is `share` negative (half a tweet added to every bin of each density)."""

        def density(values: np.ndarray) -> np.ndarray:
            counts = np.histogram(values, SCORE_BINS)[0] + 0.5
            return counts / counts.sum()

        return density(self.buzz) / (share * density(self.negative) + (1.0 - share) * density(self.other))

    def complaints(self, p: np.ndarray) -> np.ndarray:
        """How much of one negative tweet each score stands for, as the shipped detector counts them
        (`_negative_tweet`), through the family's true mean scores of negatives and of other tweets."""
        low, high = float(self.other.mean()), float(self.negative.mean())
        return np.clip((p - low) / (high - low), 0.0, 1.0)

    def draw(self, count: int, share: float, rng: np.random.Generator) -> np.ndarray:
        """The scores of `count` ordinary tweets of a brand whose ordinary traffic is `share` negative."""
        negative = rng.random(count) < share
        return np.where(negative, rng.choice(self.negative, count), rng.choice(self.other, count))


def ordinary_rates(brand: Brand) -> np.ndarray:
    """The brand's expected ordinary tweets in each minute of its life (the generator's own rates)."""
    minutes = int((brand.end - brand.start) / MINUTE)
    return np.array([brand.expected_per_minute(brand.start + i * MINUTE) for i in range(minutes)])


def poisson_increments(counts: np.ndarray, assumed: np.ndarray, extra: float) -> np.ndarray:
    """Each minute's log-likelihood ratio of a rise by `extra` negatives a minute, from its count of
    negatives (`counts`: minutes x columns) against the `assumed` ordinary negatives of each minute."""
    return counts * np.log1p(extra / assumed)[:, None] - extra


def score_increments(
    minutes: np.ndarray,
    columns: np.ndarray,
    scores: np.ndarray,
    shape: tuple[int, int],
    assumed: np.ndarray,
    extra: float,
    marks: Marks,
    share: float,
    summed: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Each minute's log-likelihood ratio of a rise by `extra` negatives a minute scored as a buzz's are, from
    its tweets' scores (tweet i in minute `minutes[i]` of column `columns[i]`, `shape` minutes x columns):
    log(1 + extra f_buzz(p) / (assumed f_ordinary(p))) a tweet, less `extra`; and each minute's complaints.
    `summed`: read as the shipped detector reads them instead, each score weighing alike whatever its bin:
    the minute's summed scores over a buzz negative's mean score are taken for a count of negatives in the
    Poisson CUSUM, against the ordinary tweets' mean score x the `assumed` rate."""
    cells, size = minutes * shape[1] + columns, shape[0] * shape[1]
    if summed:
        unit = float(marks.buzz.mean())
        ordinary = share * float(marks.negative.mean()) + (1.0 - share) * float(marks.other.mean())
        counted = np.bincount(cells, scores, size).reshape(shape) / unit
        increments = poisson_increments(counted, assumed * ordinary / unit, extra)
    else:
        bins = np.clip(np.digitize(scores, SCORE_BINS) - 1, 0, len(SCORE_BINS) - 2)
        weights = np.log1p(extra * marks.ratio(share)[bins] / assumed[minutes])
        increments = np.bincount(cells, weights, size).reshape(shape) - extra
    return increments, np.bincount(cells, marks.complaints(scores), size).reshape(shape)


def cusum(
    increments: np.ndarray, complaints: np.ndarray, threshold: float, min_complaints: float
) -> tuple[np.ndarray, np.ndarray]:
    """Run a CUSUM over `increments` (each minute's log-likelihood ratio, minutes x columns): floored at 0,
    it alarms at `threshold` once the run since it left 0 holds `min_complaints` (summed `complaints`), then
    is held at 0 for REFRACTORY_MINUTES. Returns each column's alarms and first alarm's minute (-1: none)."""
    score = np.zeros(increments.shape[1])
    run = np.zeros(increments.shape[1])
    held = np.zeros(increments.shape[1], dtype=int)
    alarms = np.zeros(increments.shape[1], dtype=int)
    first = np.full(increments.shape[1], -1)
    for minute in range(increments.shape[0]):
        score = np.where(held > 0, 0.0, np.maximum(score + increments[minute], 0.0))
        run = np.where(score > 0, run + complaints[minute], 0.0)
        held = np.maximum(held - 1, 0)
        fired = (score >= threshold) & (run >= min_complaints)
        alarms += fired
        first[fired & (first < 0)] = minute
        held[fired] = REFRACTORY_MINUTES
        score[fired] = 0.0
    return alarms, first


def threshold_for(
    increments: np.ndarray, complaints: np.ndarray, budget: float, min_complaints: float
) -> float:
    """The CUSUM threshold whose false alarms on simulated weeks of ordinary traffic (`increments` and
    `complaints` of each minute, a column a week) are `budget` a brand-week."""
    weeks = increments.shape[0] / (7 * 24 * 60) * increments.shape[1]
    low, high = 0.0, 60.0
    for _ in range(BISECTION_STEPS):
        middle = (low + high) / 2
        if cusum(increments, complaints, middle, min_complaints)[0].sum() / weeks > budget:
            low = middle
        else:
            high = middle
    return high


def simulated_weeks(
    rates: np.ndarray,
    assumed: np.ndarray,
    extra: float,
    seed: int,
    marks: Marks | None = None,
    share: float = 0.0,
    summed: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """SIMULATED_WEEKS of ordinary traffic at the true `rates` (a Poisson count a minute) as the CUSUM reads
    them: each minute's increment and complaints. Without `marks`, `rates` are negatives, counted; with
    them, `rates` are tweets, each scored as the model scores the brand's ordinary tweets (`share` of them
    negative), read by `score_increments` (`summed` as there)."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rates[:, None], size=(len(rates), SIMULATED_WEEKS))
    if marks is None:
        return poisson_increments(counts, assumed, extra), counts
    minutes, columns = np.divmod(np.repeat(np.arange(counts.size), counts.ravel()), SIMULATED_WEEKS)
    scores = marks.draw(len(minutes), share, rng)
    return score_increments(minutes, columns, scores, counts.shape, assumed, extra, marks, share, summed)


def _median_interval(values: list[float], rng: np.random.Generator) -> tuple[float, float]:
    draws = [float(np.median(rng.choice(values, len(values)))) for _ in range(BOOTSTRAP_RESAMPLES)]
    return float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))


def buzz_counts(episode: dict[str, Any], negatives: list[datetime]) -> np.ndarray:
    """The buzz's true negatives a minute from its first tweet to DETECT_AFTER past its end (1 column)."""
    start = episode["start"]
    counts = np.zeros((_buzz_minutes(episode), 1))
    for moment in negatives:
        step = int((moment - start) // MINUTE)
        if 0 <= step < len(counts):
            counts[step, 0] += 1
    return counts


def _buzz_minutes(episode: dict[str, Any]) -> int:
    return math.ceil((episode["end"] + DETECT_AFTER - episode["start"]) / MINUTE)


def ideal_delays(
    brand: Brand,
    episode: dict[str, Any],
    tweets: list[tuple[datetime, bool, float]],
    budget: float,
    seed: int,
    marks: Marks | None = None,
) -> dict[str, float | None]:
    """Each variant's minutes from the buzz's first tweet to its alarm (None: none by DETECT_AFTER past its
    end); the minutes count whole, from the first tweet. `tweets`: the brand's (time, labelled negative,
    the model's P(negative)); the variants on the model's scores are run only with the family's `marks`."""
    rates = ordinary_rates(brand)
    share = brand.negative_share
    start = episode["start"]
    steps = _buzz_minutes(episode)
    offset = int((start - brand.start) // MINUTE)
    at = np.minimum(np.arange(offset, offset + steps), len(rates) - 1)
    inside = [(int((moment - start) // MINUTE), p) for moment, _, p in tweets if start <= moment]
    inside = [(step, p) for step, p in inside if step < steps]
    extra = float(episode["peak_per_minute"]) * (1.0 - BUZZ_REPLY_SHARE)  # its negatives a minute
    delays: dict[str, float | None] = {}
    for name, scores, knows_shape, min_complaints in VARIANTS:
        if scores == "labels":
            true = rates * share
            assumed = true if knows_shape else np.full(len(true), true.mean())
            weeks = simulated_weeks(true, assumed, extra, seed)
            counts = buzz_counts(episode, [moment for moment, negative, _ in tweets if negative])
            buzz = poisson_increments(counts, assumed[at], extra), counts
        elif marks is not None:
            summed = scores == "summed"
            assumed = rates if knows_shape else np.full(len(rates), rates.mean())
            weeks = simulated_weeks(rates, assumed, extra, seed, marks, share, summed)
            minutes = np.array([step for step, _ in inside], dtype=int)
            scored = np.array([p for _, p in inside], dtype=float)
            buzz = score_increments(
                minutes, np.zeros_like(minutes), scored, (steps, 1), assumed[at], extra, marks, share, summed
            )
        else:
            continue
        threshold = threshold_for(*weeks, budget, min_complaints)
        first = int(cusum(*buzz, threshold, min_complaints)[1][0])
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
    parser.add_argument(
        "--texts",
        choices=TEXT_SETS,
        default="all",
        help="the streams' texts (as bench/detection.py --texts): every labelled one, or only those the "
        "shipped champion never trained on",
    )
    parser.add_argument("--json", type=Path, default=None, help="write each buzz's delays here")
    parser.add_argument(
        "--labels-only", action="store_true", help="without the rows on the shipped champion's scores"
    )
    args = parser.parse_args()
    if not args.budget >= 1 / SIMULATED_WEEKS:  # fewer than one alarm in the simulated weeks: not measurable
        least = 1 / SIMULATED_WEEKS
        parser.error(f"--budget must be at least {least:g} (one alarm in {SIMULATED_WEEKS} simulated weeks)")
    seeds = args.seeds or list(TUNING_SEEDS if args.half == "tuning" else REPORT_SEEDS)
    model = None if args.labels_only else Predictor.load(None)
    pools = load_pools(args.texts)
    rows: list[dict[str, Any]] = []
    for seed in seeds:
        folder = seed_folder(seed, pools, args.texts)
        truth = read_truth(folder)
        quiet = {b["name"]: brand_of(b) for b in truth.brands if b["role"] in QUIET_ROLES}
        ids = {brand_id(name): name for name in quiet}
        seed_rows = read_seed_rows(folder / "tweets.csv", True, False)
        scores = np.full(len(seed_rows), math.nan)
        marks: dict[str, Marks] = {}
        if model is not None:
            scores = negative_probabilities(model, seed_rows, folder)
            marks = {f: Marks.of(t) for f, t in family_tweets(folder, seed_rows, scores).items()}
        tweets: dict[str, list[tuple[datetime, bool, float]]] = {name: [] for name in quiet}
        for row, p in zip(seed_rows, scores, strict=True):
            for brand in row.tweet.brands:
                if brand in ids:
                    tweets[ids[brand]].append((row.tweet.created_at, row.label == "negative", float(p)))
        for number, episode in enumerate(e for e in truth.episodes if e["brand"] in quiet):
            brand = quiet[episode["brand"]]
            delays = ideal_delays(
                brand, episode, tweets[brand.name], args.budget, seed * 100 + number, marks.get(brand.family)
            )
            first_day = float(episode["hours_after_brand_start"]) < FIRST_DAY_HOURS
            rows.append(
                {"seed": seed, "episode": episode["episode_id"], "first_day": first_day, "delays": delays}
            )
        print(f"seed {seed}: {sum(r['seed'] == seed for r in rows)} quiet buzzes", flush=True)
    names = [name for name, scores, _, _ in VARIANTS if model is not None or scores == "labels"]
    if not args.no_replay:
        scorings = {"oracle": None} if model is None else {"oracle": None, "model": model}
        results = run_seeds(seeds, scorings, past_hours=args.past_hours, texts=(args.texts,))
        for scoring, (episodes, _) in zip(scorings, results.values(), strict=True):
            detector = {(e["seed"], e["episode"]): e["delay"] for e in episodes}
            column = SHIPPED[scoring]
            names.append(column)
            for row in rows:
                row["delays"][column] = detector[(row["seed"], row["episode"])]
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    heading = f"quiet-brand buzzes of seeds {seeds}, {args.texts} texts"
    print(f"\n== {heading}, {args.budget:g} false alert a brand-week ==")
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
