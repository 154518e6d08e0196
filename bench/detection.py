"""Detection benchmark: families of multi-brand streams replayed through `buzzwatch replay`'s code path.

Streams: `bench/detection_data.py` draws one week of seven brands per seed (quiet brands at about 0.2 tweets
a minute, mid and busy ones up to 10, a brand at hundreds a minute for three hours, brands added in the
morning and at night, topical and non-topical buzzes, slow ramps and decoys; its docstring says what is
drawn from which data set). Seeds are split ONCE, here: the odd seeds 1-19 are for tuning (choose any
detector setting on them), the even seeds 2-20 are for the report (look, never tune). `--half tuning` /
`--half report` picks one half, `--quick` its first three seeds. `--texts unseen` draws the same seeds'
streams from the texts the champion never trained on (its held-out splits), so its per-tweet errors are
those of new tweets; `--texts all unseen` replays both and ends with each column on unseen texts minus
itself on all (paired: the same schedule, buzzes and decoys, other texts).

Both scorings go through `worker.replay.run_replay`, the engine of `buzzwatch replay`, with the detector
built as that command builds it (`DetectorConfig.from_env`, so BUZZWATCH_DETECTOR_* variables apply, and
the negative-reason classifier): `oracle` uses the file's labels (`--oracle`), `model` the champion
Predictor's scores (its probabilities are cached beside each seed's file, per model version). `--model-uri
DIR` scores with another artifact instead (a column `model <version>`); given twice or more, the models are
replayed side by side and each later one is compared with the first, buzz by buzz (paired bootstrap). The
alerts of each run are kept in the seed's folder (`alerts-<column>.jsonl`).

Figures (pooled over the seeds of the half):
- recall: share of bad buzzes with an alert (new or update) of their brand fired between 2 minutes before
  their first tweet and 15 minutes after their end; first-hours recall: the same over the buzzes that start
  within FIRST_HOURS (6) hours of their brand's first tweet;
- delay: that first alert's `fired_at` minus the buzz's first tweet; median and p90, overall and by base
  rate band (quiet: under 0.5 tweets a minute, about 0.2; mid: 0.5-1; >= 1 a minute, the huge brand
  included);
- false alerts per brand-week: "new" alerts outside every buzz of their brand (2 minutes before its start
  to 75 minutes after its end), over the brands' lifetimes in weeks; each is also put down to the decoy it
  falls in (same margins) or to none;
- explained share: of the detected TOPICAL buzzes, the share whose first alert names the topic: one of its
  top terms or hashtags matches the topic's pattern in full (for example `bags?|luggage|baggage`), or its
  top negative reason is the topic's reason (`detection_data.names_topic`).
Intervals: 95% percentile bootstrap (2,000 resamples, fixed seed) over buzzes (recall, delays, explained
share) and over brands, each weighted by its lifetime (false alerts per brand-week).

`--real-week` replays the real airline week of data/airline_us (Feb 2015, nothing injected), prints every
alert per brand and scores the alerts against the week's storms, found from the labels alone by a rule fixed
before any detector rule was tuned on it (`storms`): a storm hour is a brand's UTC clock hour holding at
least twice its median hourly labelled negatives (over every clock hour from its first tweet to its last,
empty ones included) and at least 5, at a labelled negative share of 0.7 or more or of its share over the
week + 0.15 or more; storm hours at most 2 hours apart are one storm. An alert fired from 60 minutes before
a storm's first hour to 75 minutes after its last belongs to it. Printed: new alerts outside every storm
(what a user resents: alerts on ordinary traffic), per brand-week; storms alerted; new alerts per storm (one
storm cut into many "new" alerts is many e-mails for one event); the first alert's delay from its storm's
first hour.
`--throughput` times the exact CLI, `buzzwatch replay --speed max` (with `--oracle`, then with the model), on
the first seed's file instead of measuring detection; `--baseline DIR --pairs N` times another checkout's
code alternately with this one's (N pairs, with the load and CPU time of each run, and whether their
alerts are identical).

Usage:
  .venv/bin/python bench/detection.py --half report           # the report: oracle and model
  .venv/bin/python bench/detection.py --half tuning --quick   # three tuning seeds
  .venv/bin/python bench/detection.py --half tuning --quick --model \
      --model-uri models/artifacts/champion --model-uri var/artifacts/RUN_ID     # two models, paired
  .venv/bin/python bench/detection.py --half report --texts all unseen   # tweets the model never saw
  .venv/bin/python bench/detection.py --real-week
  .venv/bin/python bench/detection.py --throughput --baseline /tmp/before --pairs 3   # A/B replay speed
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "bench")]

from detection_data import (  # noqa: E402
    DATA_VERSION,
    DAYS,
    FIRST_HOURS,
    NIGHT_HOURS,
    TEXT_SETS,
    TOPIC_BY_NAME,
    build,
    load_pools,
    names_topic,
    original_text,
    past,
    real_week,
)

from buzzwatch.files import atomic_binary_output, atomic_text_output  # noqa: E402
from buzzwatch.schema import Alert, parse_timestamp  # noqa: E402
from buzzwatch.zones import BrandIds, BrandsFile  # noqa: E402
from worker.detection import BuzzDetector, DetectorConfig  # noqa: E402
from worker.replay import ReplayRow, ReplaySummary, read_rows, run_replay  # noqa: E402

TUNING_SEEDS = tuple(range(1, 21, 2))
REPORT_SEEDS = tuple(range(2, 21, 2))
QUICK_SEEDS = 3
MATCH_BEFORE = timedelta(minutes=2)
DETECT_AFTER = timedelta(minutes=15)
FALSE_AFTER = timedelta(minutes=75)
BOOTSTRAP_RESAMPLES = 2000
BANDS = (("quiet (~0.2/min)", 0.0, 0.5), ("mid (0.5-1/min)", 0.5, 1.0), (">= 1/min", 1.0, float("inf")))
STORM_NEGATIVES_FACTOR = 2.0  # a storm hour's labelled negatives against the brand's median hour
STORM_MIN_NEGATIVES = 5
STORM_SHARE = 0.7  # a storm hour's labelled negative share: at least this, ...
STORM_SHARE_RISE = 0.15  # ... or at least the brand's share over the week plus this
STORM_GAP = timedelta(hours=2)  # storm hours at most this far apart are one storm
STORM_BEFORE = timedelta(minutes=60)  # an alert this long before a storm's first hour belongs to it
STORM_AFTER = FALSE_AFTER


@dataclass(frozen=True)
class Fired:
    """One alert as the benchmark sees it."""

    brand: str
    kind: str
    fired_at: datetime
    terms: tuple[str, ...]
    reason: str | None  # the negative reason the alert names


@dataclass
class SeedTruth:
    """What was injected in one seed's stream."""

    episodes: list[dict[str, Any]]
    decoys: list[dict[str, Any]]
    brands: list[dict[str, Any]]


@dataclass(frozen=True)
class Storm:
    """A run of a brand's storm hours (labelled negatives well above its usual hour, mostly negative)."""

    brand: str
    start: datetime  # its first storm hour's start
    end: datetime  # its last storm hour's end
    tweets: int  # in its storm hours
    negatives: int

    def holds(self, fired_at: datetime) -> bool:
        """Whether an alert fired then belongs to this storm."""
        return self.start - STORM_BEFORE <= fired_at <= self.end + STORM_AFTER


def storms(tweets: list[tuple[str, datetime, bool]]) -> list[Storm]:
    """The storms of real traffic from its labels alone: (brand, created_at, labelled negative) per tweet.

    The rule is fixed (the module docstring says it) so that the real week scores alerts, not the rule.
    """
    hour = timedelta(hours=1)
    counts: dict[str, Counter[datetime]] = defaultdict(Counter)
    negatives: dict[str, Counter[datetime]] = defaultdict(Counter)
    for brand, created_at, negative in tweets:
        clock_hour = created_at.replace(minute=0, second=0, microsecond=0)
        counts[brand][clock_hour] += 1
        negatives[brand][clock_hour] += negative
    found = []
    for brand in sorted(counts):
        first, last = min(counts[brand]), max(counts[brand])
        hours = [first + i * hour for i in range((last - first) // hour + 1)]
        median = statistics.median(negatives[brand][h] for h in hours)
        week_share = sum(negatives[brand].values()) / sum(counts[brand].values())
        stormy = [
            h
            for h in hours
            if negatives[brand][h] >= max(STORM_NEGATIVES_FACTOR * median, STORM_MIN_NEGATIVES)
            and negatives[brand][h] >= min(STORM_SHARE, week_share + STORM_SHARE_RISE) * counts[brand][h]
        ]
        runs: list[list[datetime]] = []
        for h in stormy:
            if runs and h - (runs[-1][-1] + hour) <= STORM_GAP:
                runs[-1].append(h)
            else:
                runs.append([h])
        for run in runs:
            found.append(
                Storm(
                    brand,
                    run[0],
                    run[-1] + hour,
                    sum(counts[brand][h] for h in run),
                    sum(negatives[brand][h] for h in run),
                )
            )
    return found


def score_storms(found: list[Storm], alerts: list[Fired]) -> tuple[list[dict[str, Any]], list[Fired]]:
    """Per storm: its new alerts and its first alert's delay (minutes from its start; any kind of
    alert); and the new alerts outside every storm of their brand."""
    per_storm = []
    for storm in found:
        mine = sorted(
            (a for a in alerts if a.brand == storm.brand and storm.holds(a.fired_at)),
            key=lambda a: a.fired_at,
        )
        per_storm.append(
            {
                "storm": storm,
                "new": sum(a.kind == "new" for a in mine),
                "delay": (mine[0].fired_at - storm.start).total_seconds() / 60 if mine else None,
            }
        )
    outside = [
        a
        for a in alerts
        if a.kind == "new" and not any(s.brand == a.brand and s.holds(a.fired_at) for s in found)
    ]
    return per_storm, outside


def _read_csv(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key in ("start", "end"):
            if key in row:
                row[key] = parse_timestamp(row[key])
    return rows


def read_truth(folder: Path) -> SeedTruth:
    """The seed's episodes, decoys and brands."""
    return SeedTruth(
        _read_csv(folder / "episodes.csv"), _read_csv(folder / "decoys.csv"), _read_csv(folder / "brands.csv")
    )


@cache
def replay_brand_ids() -> BrandIds:
    """The brand ids `buzzwatch replay` gives a file's brand values (the brands file's), read once."""
    return BrandsFile.read().ids()


def brand_id(name: str) -> str:
    """A truth file's brand name as its tweets' and alerts' brand id ("SkyLark" -> skylark)."""
    return replay_brand_ids().resolve(name)


def band_of(rate: float) -> str:
    """The base-rate band of a brand's mean tweets a minute."""
    return next(name for name, low, high in BANDS if low <= rate < high)


def evaluate(
    fired: list[Fired], truth: SeedTruth, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per buzz (detected, delay, explained) and per brand (lifetime, false alerts by decoy) for one seed."""
    by_brand: dict[str, list[Fired]] = defaultdict(list)
    for alert in sorted(fired, key=lambda f: f.fired_at):
        by_brand[alert.brand].append(alert)
    outcomes = []
    for episode in truth.episodes:
        hits = [
            f
            for f in by_brand[brand_id(episode["brand"])]
            if episode["start"] - MATCH_BEFORE <= f.fired_at <= episode["end"] + DETECT_AFTER
        ]
        first = hits[0] if hits else None
        topic = TOPIC_BY_NAME.get(episode["topic"])
        outcomes.append(
            {
                "seed": seed,
                "episode": episode["episode_id"],
                "kind": episode["kind"],
                "role": episode["role"],
                "band": band_of(float(episode["rate"])),
                "first_hours": float(episode["hours_after_brand_start"]) < FIRST_HOURS,
                "night": int(episode["local_hour"]) in NIGHT_HOURS,
                "topic": episode["topic"],
                "detected": first is not None,
                "delay": (first.fired_at - episode["start"]).total_seconds() / 60 if first else None,
                "explained": names_topic(first.terms, first.reason, topic) if first and topic else None,
                "first_terms": list(first.terms[:6]) if first else [],
                "describe": f"{episode['episode_id']} {episode['role']} {episode['kind']} rate "
                f"{float(episode['rate']):.2f}/min +{float(episode['peak_per_minute']):.2f}/min for "
                f"{episode['minutes']} min, {episode['tweets']} tweets, {episode['local_time']} local, "
                f"{float(episode['hours_after_brand_start']):.1f} h after brand start",
            }
        )
    brands = []
    for brand in truth.brands:
        name = brand["name"]
        mine = [e for e in truth.episodes if e["brand"] == name]
        decoys = [d for d in truth.decoys if d["brand"] == name]
        false_by_decoy: Counter[str] = Counter()
        for alert in by_brand[brand_id(name)]:
            if alert.kind != "new" or any(
                e["start"] - MATCH_BEFORE <= alert.fired_at <= e["end"] + FALSE_AFTER for e in mine
            ):
                continue
            decoy = next(
                (d for d in decoys if d["start"] - MATCH_BEFORE <= alert.fired_at <= d["end"] + FALSE_AFTER),
                None,
            )
            false_by_decoy[decoy["kind"] if decoy else "none"] += 1
        lifetime = parse_timestamp(brand["end"]) - parse_timestamp(brand["start"])
        brands.append(
            {
                "seed": seed,
                "brand": name,
                "role": brand["role"],
                "band": band_of(float(brand["rate"])),
                "weeks": lifetime.total_seconds() / (7 * 86400),
                "false": sum(false_by_decoy.values()),
                "false_by_decoy": dict(false_by_decoy),
            }
        )
    return outcomes, brands


def _quantile(values: list[float], q: float) -> float:
    return float(np.quantile(values, q)) if values else float("nan")


def headline(episodes: list[dict[str, Any]], brands: list[dict[str, Any]]) -> dict[str, float]:
    """The report's figures from per-buzz and per-brand outcomes."""
    delays = [e["delay"] for e in episodes if e["detected"]]
    first_hours = [e for e in episodes if e["first_hours"]]
    explained = [e["explained"] for e in episodes if e["explained"] is not None]
    weeks = sum(b["weeks"] for b in brands)
    figures = {
        "recall": statistics.mean(e["detected"] for e in episodes) if episodes else float("nan"),
        "first_hours_recall": statistics.mean(e["detected"] for e in first_hours)
        if first_hours
        else float("nan"),
        "false_per_brand_week": sum(b["false"] for b in brands) / weeks if weeks else float("nan"),
        "median_delay": _quantile(delays, 0.5),
        "p90_delay": _quantile(delays, 0.9),
        "explained_share": statistics.mean(explained) if explained else float("nan"),
    }
    for name, _, _ in BANDS:
        band_delays = [e["delay"] for e in episodes if e["detected"] and e["band"] == name]
        figures[f"median_delay {name}"] = _quantile(band_delays, 0.5)
        figures[f"p90_delay {name}"] = _quantile(band_delays, 0.9)
    return figures


def bootstrap(
    episodes: list[dict[str, Any]], brands: list[dict[str, Any]], resamples: int = BOOTSTRAP_RESAMPLES
) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of the headline figures (buzzes and brands resampled independently)."""
    rng = np.random.default_rng(20261204)
    draws: dict[str, list[float]] = defaultdict(list)
    for _ in range(resamples):
        sample_episodes = [episodes[i] for i in rng.integers(0, len(episodes), len(episodes))]
        sample_brands = [brands[i] for i in rng.integers(0, len(brands), len(brands))]
        for key, value in headline(sample_episodes, sample_brands).items():
            draws[key].append(value)
    return {
        key: (float(np.nanquantile(values, 0.025)), float(np.nanquantile(values, 0.975)))
        for key, values in draws.items()
        if not all(np.isnan(values))
    }


def paired_differences(
    base: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    other: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> dict[str, tuple[float, float, float]]:
    """Each headline figure of `other` minus `base`, with a 95% paired bootstrap interval.

    Both columns replayed the same seeds, so their buzzes and brands are the same, in the same order; each
    resample takes the same buzzes and brands from both, which cancels the spread the seeds share.
    """
    (base_episodes, base_brands), (episodes, brands) = base, other
    if [(e["seed"], e["episode"]) for e in base_episodes] != [(e["seed"], e["episode"]) for e in episodes]:
        raise ValueError("paired differences need two columns replayed on the same seeds")
    rng = np.random.default_rng(20261205)
    draws: dict[str, list[float]] = defaultdict(list)
    for _ in range(resamples):
        picked_episodes = rng.integers(0, len(episodes), len(episodes))
        picked_brands = rng.integers(0, len(brands), len(brands))
        first = headline([base_episodes[i] for i in picked_episodes], [base_brands[i] for i in picked_brands])
        second = headline([episodes[i] for i in picked_episodes], [brands[i] for i in picked_brands])
        for key, value in second.items():
            draws[key].append(value - first[key])
    base_figures = headline(*base)
    figures = {key: value - base_figures[key] for key, value in headline(*other).items()}
    return {
        key: (figures[key], *map(float, np.nanquantile(draws[key], (0.025, 0.975))))
        for key in figures
        if not np.isnan(figures[key]) and not all(np.isnan(draws[key]))
    }


class _CachedModel:
    """The model's probabilities for one file, computed once and kept beside it (reruns while tuning). A
    pool text drawn again (`detection_data.reused`) is scored as its words, the text as first drawn."""

    def __init__(self, model: Any, rows: list[ReplayRow], cache: Path) -> None:
        self.labels, self.model_version = model.labels, model.model_version
        self.languages = getattr(model, "languages", None)  # replay's language gate reads it
        texts = list(dict.fromkeys(original_text(r.tweet.text) for r in rows))
        if cache.exists():
            probabilities = np.load(cache)
        else:
            probabilities = np.concatenate(
                [model.predict_proba(texts[i : i + 4096]) for i in range(0, len(texts), 4096)]
            )
            with atomic_binary_output(cache) as handle:  # a run alongside never reads half of it
                np.save(handle, probabilities)
        self._row_of = {text: index for index, text in enumerate(texts)}
        self._probabilities = probabilities

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Probabilities of texts of this file, from the cache."""
        return self._probabilities[[self._row_of[original_text(text)] for text in texts]]


def seed_brands_file(folder: Path) -> Path:
    """A brands file naming each of the seed's brands with its time zone, as a user adding the brand would
    (`timezone`: the fixed-offset zone of its day rhythm, "Etc/GMT-4" for UTC+4), written once."""
    path = folder / "brands.toml"
    if not path.exists():
        tables = []
        for brand in read_truth(folder).brands:
            offset = int(brand["utc_offset"])
            zone = f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT"
            tables.append(
                f'[[brand]]\nname = "{brand_id(brand["name"])}"\ndisplay_name = "{brand["name"]}"\n'
                f'timezone = "{zone}"\n'
            )
        path.write_text("\n".join(tables), encoding="utf-8")
    return path


def replay(
    rows: list[ReplayRow], model: Any, reason_model: Any, out: Path, brands_file: Path | None = None
) -> list[dict[str, Any]]:
    """One replay as `buzzwatch replay` runs it (its detector, its engine): its alert lines, kept in `out`.
    `brands_file`: the brands file whose time zones the detector reads (BUZZWATCH_BRANDS_FILE). The lines
    returned are this replay's own, and `out` is replaced whole once they are all written, so that two
    runs at once (two settings on the same seeds) never read or write each other's alerts."""
    env = {**os.environ, "BUZZWATCH_BRANDS_FILE": str(brands_file)} if brands_file else os.environ
    detector = BuzzDetector(DetectorConfig.from_env(env), reason_model=reason_model)
    written = io.StringIO()
    run_replay(rows, detector, written, ReplaySummary(), model=model)
    lines = written.getvalue()
    with atomic_text_output(out) as handle:
        handle.write(lines)
    return [json.loads(line) for line in lines.splitlines()]


def fired(payload: dict[str, Any]) -> Fired:
    """What the figures need of an alert line. The reason it names is `main_reason` (None: none stands
    out) where alerts carry that field, else, in alerts from before it, the reason with the largest share."""
    alert = Alert.from_dict(payload)
    terms = (*alert.top_terms, *alert.top_hashtags)
    reason = payload["main_reason"] if "main_reason" in payload else next(iter(alert.reasons), None)
    return Fired(alert.brand, alert.kind, alert.fired_at, terms, reason)


def read_seed_rows(path: Path, oracle: bool, authors: bool) -> list[ReplayRow]:
    """The replay rows of a file, without their authors when `authors` is false."""
    rows = read_rows(path, oracle, ReplaySummary(), replay_brand_ids())
    return rows if authors else [r._replace(tweet=replace(r.tweet, author_id=None)) for r in rows]


def seed_folder(seed: int, pools: Any, texts: str = "all") -> Path:
    """The seed's folder under var/bench/detection, generated if missing (from `pools`, `load_pools(texts)`:
    a stream of the texts the model never trained on has a folder of its own)."""
    suffix = "" if texts == "all" else f"-{texts}"
    name = f"family-seed{seed}-d{DAYS:g}-v{DATA_VERSION}{suffix}"
    folder = REPO_ROOT / "var" / "bench" / "detection" / name
    if not (folder / "brands.csv").exists():
        build(seed, folder, pools)
    return folder


def _fmt_interval(value: float, interval: tuple[float, float] | None, percent: bool) -> str:
    if np.isnan(value):
        return "-"
    show = (lambda v: f"{v:.0%}") if percent else (lambda v: f"{v:.2f}" if v < 10 else f"{v:.1f}")
    return f"{show(value)} [{show(interval[0])}-{show(interval[1])}]" if interval else show(value)


def report_table(results: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]]) -> list[str]:
    """A markdown table: one row per figure, one column per mode, with bootstrap intervals."""
    modes = list(results)
    figures = {mode: headline(*results[mode]) for mode in modes}
    intervals = {mode: bootstrap(*results[mode]) for mode in modes}
    episodes, brands = results[modes[0]]
    counts = {
        "recall": f"{len(episodes)} buzzes",
        "first_hours_recall": f"{sum(e['first_hours'] for e in episodes)} buzzes",
        "false_per_brand_week": f"{sum(b['weeks'] for b in brands):.1f} brand-weeks",
        "explained_share": f"{sum(bool(e['topic']) for e in episodes)} topical buzzes (share of the alerted)",
    }
    for name, _, _ in BANDS:
        counts[f"median_delay {name}"] = f"{sum(e['band'] == name for e in episodes)} buzzes"
    lines = [f"| figure | {' | '.join(modes)} | over |", f"|---|{'---|' * len(modes)}---|"]
    for key in figures[modes[0]]:
        percent = key.endswith("recall") or key == "explained_share"
        cells = [_fmt_interval(figures[m][key], intervals[m].get(key), percent) for m in modes]
        label = key.replace("_", " ") + (" (min)" if "delay" in key else "")
        lines.append(f"| {label} | {' | '.join(cells)} | {counts.get(key, '')} |")
    return lines


def load_scorings(modes: list[str], model_uris: list[str] | None) -> dict[str, Any]:
    """Column name -> its model (None: the file's labels). `model` is the shipped champion unless
    `model_uris` names artifacts; then each is a column `model <version>`, side by side."""
    from models.predictor import Predictor

    scorings: dict[str, Any] = {}
    if "oracle" in modes:
        scorings["oracle"] = None
    if "model" in modes and not model_uris:
        scorings["model"] = Predictor.load(None)
    elif "model" in modes:
        for uri in model_uris:
            model = Predictor.load(uri)
            scorings[f"model {model.model_version}"] = model
    return scorings


def _alerts_file(folder: Path, column: str, suffix: str = "") -> Path:
    """Where a column's alerts are kept in a seed's folder (`alerts-oracle.jsonl`, `alerts-model.jsonl`,
    `alerts-model-<version>.jsonl`; `suffix` as `_scorer`'s, `alerts-model-past168h.jsonl`)."""
    return folder / f"alerts-{column.replace(' ', '-')}{suffix}.jsonl"


def _scorer(model: Any, rows: list[ReplayRow], folder: Path, suffix: str = "") -> _CachedModel | None:
    """The replay's model for a file: its cached probabilities (None for the oracle); `suffix` names the
    cache of another set of rows (the file with the new brands' past)."""
    if model is None:
        return None
    return _CachedModel(model, rows, folder / f"probabilities-{model.model_version}{suffix}.npy")


def with_past(rows: list[ReplayRow], past_rows: list[ReplayRow], newest: int = 2000) -> list[ReplayRow]:
    """The stream as the detector gets it when each new brand is added with its past: the brand's `newest`
    past tweets (the recent-search source's first poll: 20 pages of 100), older than the watermark by
    then, come all at once just before its first tweet."""
    waiting: dict[str, list[ReplayRow]] = {}
    for row in past_rows:
        waiting.setdefault(row.tweet.brands[0], []).append(row)
    waiting = {brand: held[-newest:] for brand, held in waiting.items()}
    stream = []
    for row in rows:
        for brand in row.tweet.brands:
            stream.extend(waiting.pop(brand, ()))
        stream.append(row)
    return stream


def compared_pairs(columns: Sequence[str]) -> list[tuple[str, str]]:
    """The (base, other) columns `differences_table` compares: each later model with the first model on
    the same texts, and each column on other texts (`model unseen`) with itself on all of them."""
    on_all = [column for column in columns if _texts_of(column) == "all"]
    models = [column for column in on_all if column != "oracle"]
    pairs = [(models[0], other) for other in models[1:]]
    for texts in dict.fromkeys(_texts_of(column) for column in columns):
        if texts != "all":
            pairs += [(column, f"{column} {texts}") for column in on_all if f"{column} {texts}" in columns]
    return pairs


def _texts_of(column: str) -> str:
    """The text set a column replayed (`run_seeds` names it after the scoring: `model unseen`)."""
    last = column.rsplit(" ", 1)[-1]
    return last if last in TEXT_SETS and " " in column else "all"


def differences_table(results: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]]) -> list[str]:
    """The `compared_pairs` of the columns, each other minus base, paired (`paired_differences`)."""
    pairs = compared_pairs(list(results))
    if not pairs:
        return []
    differences = {pair: paired_differences(results[pair[0]], results[pair[1]]) for pair in pairs}
    lines = [
        f"| difference | {' | '.join(f'{other} - {base}' for base, other in pairs)} |",
        f"|---|{'---|' * len(pairs)}",
    ]
    for key in headline(*results[pairs[0][0]]):
        cells = []
        for pair in pairs:
            if key not in differences[pair]:
                cells.append("-")
                continue
            value, low, high = differences[pair][key]
            scale, unit = (100, " pt") if key.endswith("recall") or key == "explained_share" else (1, "")
            cells.append(f"{scale * value:+.2f}{unit} [{scale * low:+.2f}, {scale * high:+.2f}]")
        label = key.replace("_", " ") + (" (min)" if "delay" in key else "")
        lines.append(f"| {label} | {' | '.join(cells)} |")
    return lines


def only_roles(truth: SeedTruth, roles: set[str]) -> SeedTruth:
    """The seed's truth for the brands of these roles only (each brand is detected on its own)."""
    names = {b["name"] for b in truth.brands if b["role"] in roles}
    return SeedTruth(
        [e for e in truth.episodes if e["brand"] in names],
        [d for d in truth.decoys if d["brand"] in names],
        [b for b in truth.brands if b["name"] in names],
    )


def run_seeds(
    seeds: list[int],
    scorings: dict[str, Any],
    authors: bool = True,
    roles: set[str] | None = None,
    zones: bool = True,
    past_hours: float = 0.0,
    texts: Sequence[str] = ("all",),
) -> dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Replay every seed with every scoring (`load_scorings`); per-buzz and per-brand outcomes pooled per
    column. With `roles`, only the brands of those roles are replayed (their alerts kept apart). With
    `zones`, the brands file gives each brand its time zone (`seed_brands_file`); without, none has one.
    With `past_hours`, each brand added during the week comes with that much of its past (`with_past`).
    `texts`: the streams' texts (`load_pools`), all of them or only those the model never trained on; the
    same seed's streams on each (the same schedule, other texts), each scoring's column on texts other than
    all named after them (`model unseen`)."""
    from models.reasons import ReasonClassifier

    pools = {name: load_pools(name) for name in texts}
    reason_model = ReasonClassifier.load()
    columns = {
        (name, scoring): scoring if name == "all" else f"{scoring} {name}"
        for name in texts
        for scoring in scorings
    }
    results: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
        column: ([], []) for column in columns.values()
    }
    for seed, name in itertools.product(seeds, texts):
        folder = seed_folder(seed, pools[name], name)
        truth = read_truth(folder) if not roles else only_roles(read_truth(folder), roles)
        names = {brand_id(b["name"]) for b in truth.brands}
        for scoring, model in scorings.items():
            column = columns[name, scoring]
            started = time.perf_counter()
            all_rows = read_seed_rows(folder / "tweets.csv", model is None, authors)
            rows = [r for r in all_rows if not names.isdisjoint(r.tweet.brands)]
            suffix = f"-past{past_hours:g}h" if past_hours else ""
            if past_hours:
                past_file = past(seed, folder, past_hours, pools[name])
                past_rows = read_seed_rows(past_file, model is None, authors)
                all_rows = all_rows + past_rows
                rows = with_past(rows, [r for r in past_rows if not names.isdisjoint(r.tweet.brands)])
            label = f"{column} {'-'.join(sorted(roles))}" if roles else column
            out = _alerts_file(folder, label, suffix)
            brands_file = seed_brands_file(folder) if zones else REPO_ROOT / "config" / "brands.toml"
            alerts = replay(rows, _scorer(model, all_rows, folder, suffix), reason_model, out, brands_file)
            episodes, brands = evaluate([fired(a) for a in alerts], truth, seed)
            results[column][0].extend(episodes)
            results[column][1].extend(brands)
            seconds = time.perf_counter() - started
            false = Counter()
            for brand in brands:
                false.update(brand["false_by_decoy"])
            print(
                f"[{column}] seed {seed}: {len(rows)} tweets in {seconds:.0f} s; buzzes alerted "
                f"{sum(e['detected'] for e in episodes)}/{len(episodes)}, false alerts {dict(false) or 0}",
                flush=True,
            )
            for episode in episodes:
                if not episode["detected"]:
                    print(f"    missed: {episode['describe']}")
    return results


def throughput(folder: Path, baseline: Path | None = None, pairs: int = 1) -> None:
    """Time the exact CLI, `buzzwatch replay --speed max`, with and without the model.

    With `baseline` (another checkout, e.g. a `git worktree` of an earlier commit), its code and this
    checkout's run alternately, `pairs` times, each run printed with the machine's load and its CPU time,
    so a speed-up is read against a baseline measured in the same minutes.
    """
    checkouts = ([("baseline", baseline)] if baseline else []) + [("this", REPO_ROOT)]
    for extra in (["--oracle"], []):
        for name, _ in checkouts:
            (folder / f"alerts-cli-{name}.jsonl").unlink(missing_ok=True)
        for pair in range(pairs):
            for name, root in checkouts:
                command = [
                    sys.executable,
                    "-m",
                    "buzzwatch.cli",
                    "replay",
                    "--input",
                    str(folder / "tweets.csv"),
                    "--alerts-out",
                    str(folder / f"alerts-cli-{name}.jsonl"),
                    "--speed",
                    "max",
                    "--quiet",
                    *extra,
                ]
                load = os.getloadavg()[0]
                cpu_before = _children_cpu()
                started = time.perf_counter()
                done = subprocess.run(
                    command,
                    capture_output=True,
                    text=True,
                    check=False,
                    cwd=root,
                    env={**os.environ, "PYTHONPATH": str(root)},
                )
                wall = time.perf_counter() - started
                match = re.search(r"replayed (\d+) tweets .* ([\d,]+) tweets/s", done.stdout)
                label = f"pair {pair + 1}, {name} ({_commit(root)}): " if baseline else ""
                if done.returncode != 0 or not match:
                    print(
                        f"  {label}{' '.join(command[3:])}: failed ({done.returncode}): {done.stderr[-400:]}"
                    )
                    continue
                print(
                    f"  {label}buzzwatch replay --speed max {' '.join(extra) or '(model)'}: {match.group(2)} "
                    f"tweets/s (replay loop), {int(match.group(1)) / wall:,.0f} end to end "
                    f"({match.group(1)} tweets, {wall:.1f} s, {_children_cpu() - cpu_before:.1f} CPU-s; "
                    f"load {load:.1f} at {time.strftime('%H:%M:%S', time.gmtime())} UTC)",
                    flush=True,
                )
        if baseline:
            this, other = (folder / f"alerts-cli-{name}.jsonl" for name in ("this", "baseline"))
            same = this.exists() and other.exists() and this.read_bytes() == other.read_bytes()
            print(f"  alerts {'identical' if same else 'DIFFERENT'} ({' '.join(extra) or 'model'})")


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _commit(root: Path) -> str:
    """A checkout's short commit, with a + when it has uncommitted changes."""
    git = ["git", "-C", str(root)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    dirty = subprocess.run([*git, "status", "--porcelain", "-uno"], capture_output=True, text=True).stdout
    return commit.strip() + ("+" if dirty.strip() else "")


def replay_real_week(scorings: dict[str, Any], authors: bool) -> None:
    """Replay the real week with the replay command's detector: every alert, and alerts per brand-week."""
    from models.reasons import ReasonClassifier

    folder = REPO_ROOT / "var" / "bench" / "detection" / "real-week"
    path = real_week(folder)
    rows = read_rows(path, True, ReplaySummary(), replay_brand_ids())  # the report shows the authors
    brands = sorted({brand for r in rows for brand in r.tweet.brands})
    days = (rows[-1].tweet.created_at - rows[0].tweet.created_at).total_seconds() / 86400
    brand_weeks = len(brands) * days / 7
    print(
        f"real week: {len(rows)} tweets over {days:.1f} days, {len(brands)} brands "
        f"({brand_weeks:.2f} brand-weeks)"
    )
    found = storms(
        [(brand, r.tweet.created_at, r.label == "negative") for r in rows for brand in r.tweet.brands]
    )
    print(f"storms by the labels ({len(found)}):")
    for storm in found:
        print(
            f"  {storm.brand}: {storm.start:%a %d %H:%M}-{storm.end:%a %d %H:%M} UTC, {storm.tweets} tweets, "
            f"{storm.negatives / storm.tweets:.0%} negative"
        )
    reason_model = ReasonClassifier.load()
    for mode, model in scorings.items():
        replayed = read_seed_rows(path, model is None, authors)
        lines = replay(replayed, _scorer(model, rows, folder), reason_model, _alerts_file(folder, mode))
        alerts = [Alert.from_dict(line) for line in lines]
        news = [a for a in alerts if a.kind == "new"]
        print(
            f"[{mode}] real week: {len(news)} alerts, {len(news) / brand_weeks:.2f} per brand-week "
            f"({len(alerts) - len(news)} updates)"
        )
        one_author = 0
        for alert in news:
            window = [
                r
                for r in rows
                if alert.brand in r.tweet.brands
                and alert.window_start <= r.tweet.created_at <= alert.window_end
            ]
            negatives = [r for r in window if r.label == "negative"]
            authors = Counter(r.tweet.author_id for r in negatives)
            top, top_count = authors.most_common(1)[0] if negatives else ("-", 0)
            one_author += 2 * top_count >= len(negatives)
            print(
                f"  {alert.brand}: {alert.window_start:%a %d %H:%M}-{alert.window_end:%H:%M} UTC, "
                f"{len(window)} tweets by {len({r.tweet.author_id for r in window})} authors, "
                f"{len(negatives)} negative by the labels (most by one author: {top}, {top_count}), share "
                f"{alert.negative_share:.0%} vs {alert.baseline_share:.0%}; "
                f"terms: {', '.join(alert.top_terms[:6]) or '-'}; "
                f"reasons: {', '.join(list(alert.reasons)[:2]) or '-'}"
            )
        print(f"[{mode}] alerts with half or more of their labelled negatives by one author: {one_author}")
        per_storm, outside = score_storms(found, [fired(line) for line in lines])
        alerted = [s for s in per_storm if s["delay"] is not None]
        delays = [s["delay"] for s in alerted]
        print(
            f"[{mode}] storms: new alerts outside every storm {len(outside)} "
            f"({len(outside) / brand_weeks:.2f} per brand-week); storms alerted {len(alerted)} of "
            f"{len(per_storm)}; new alerts per storm max {max((s['new'] for s in per_storm), default=0)}, "
            f"storms with more than 2: {sum(s['new'] > 2 for s in per_storm)}; first alert's delay from "
            f"the storm's first hour: median {_quantile(delays, 0.5):.0f} min"
        )
        for outcome in alerted:
            storm = outcome["storm"]
            print(
                f"  {storm.brand} {storm.start:%a %d %H:%M} ({storm.negatives} labelled negatives): "
                f"{outcome['new']} new, first alert {outcome['delay']:+.0f} min"
            )
        for alert in outside:
            print(f"  outside every storm: {alert.brand} {alert.fired_at:%a %d %H:%M} UTC")


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--half", choices=("tuning", "report"), default="report", help="which seeds (default report)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="these seeds instead of a half")
    parser.add_argument("--quick", action="store_true", help=f"only the half's first {QUICK_SEEDS} seeds")
    parser.add_argument("--oracle", action="store_true", help="only the file labels (default: both)")
    parser.add_argument("--model", action="store_true", help="only the model (default: both)")
    parser.add_argument(
        "--model-uri",
        action="append",
        default=None,
        metavar="URI",
        help="score with this artifact (a directory or models:/ URI) instead of the shipped champion; "
        "repeat it to replay several models side by side, each against the first (paired bootstrap)",
    )
    parser.add_argument(
        "--real-week", action="store_true", help="replay the real Feb 2015 airline week instead"
    )
    parser.add_argument("--no-authors", action="store_true", help="replay without the author column")
    parser.add_argument(
        "--past-hours",
        type=float,
        default=0.0,
        metavar="H",
        help="each brand added during the week comes with its newest 2,000 tweets of the H hours before it "
        "(the recent-search source's first poll reaches 168)",
    )
    parser.add_argument(
        "--no-zones",
        action="store_true",
        help="the brands file gives the seeds' brands no time zone (default: each brand's own)",
    )
    parser.add_argument(
        "--texts",
        nargs="+",
        choices=TEXT_SETS,
        default=["all"],
        help="the streams' texts: every labelled one (default), or only those the shipped champion never "
        "trained on (its held-out splits), so its errors are those of new tweets; `all unseen`: both, "
        "the same schedules, each column on unseen texts compared with itself on all (paired)",
    )
    parser.add_argument(
        "--roles", nargs="+", default=None, help="only the brands of these roles (e.g. quiet quiet_new_night)"
    )
    parser.add_argument(
        "--throughput",
        action="store_true",
        help="time `buzzwatch replay --speed max` on the first seed instead",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="with --throughput: another checkout (a git worktree of an earlier commit) timed alternately",
    )
    parser.add_argument("--pairs", type=int, default=1, help="with --throughput --baseline: alternations")
    parser.add_argument(
        "--json", type=Path, default=None, help="write the per-buzz and per-brand outcomes here"
    )
    args = parser.parse_args()
    modes = [m for m, wanted in (("oracle", args.oracle), ("model", args.model)) if wanted] or [
        "oracle",
        "model",
    ]
    if args.real_week:
        replay_real_week(load_scorings(modes, args.model_uri), not args.no_authors)
        return
    seeds = args.seeds or list(TUNING_SEEDS if args.half == "tuning" else REPORT_SEEDS)
    if args.quick:
        seeds = seeds[:QUICK_SEEDS]
    overlap = sorted(set(seeds) & set(TUNING_SEEDS)) if args.half == "report" else []
    warning = f"; WARNING: tuning seeds {overlap}" if overlap else ""
    which = "as given" if args.seeds else f"{args.half} half"
    args.texts = list(dict.fromkeys(args.texts))  # a text set named twice is replayed once
    print(
        f"seeds {seeds} ({which}{warning}), {' and '.join(args.texts)} texts, "
        f"{DAYS:g} days each; detector settings from BUZZWATCH_DETECTOR_* or the defaults",
        flush=True,
    )
    if args.throughput:
        print("== throughput (exact CLI, first seed's file) ==")
        texts = args.texts[0]
        throughput(seed_folder(seeds[0], load_pools(texts), texts), args.baseline, args.pairs)
        return
    started = time.perf_counter()
    roles = set(args.roles) if args.roles else None
    results = run_seeds(
        seeds,
        load_scorings(modes, args.model_uri),
        not args.no_authors,
        roles,
        not args.no_zones,
        args.past_hours,
        args.texts,
    )
    print(f"== seeds {seeds}: {time.perf_counter() - started:.0f} s ==")
    for line in report_table(results):
        print(line)
    for line in differences_table(results):
        print(line)
    for mode, (episodes, brands) in results.items():
        false: Counter[str] = Counter()
        for brand in brands:
            false.update(brand["false_by_decoy"])
        by_kind = {}
        for kind in sorted({e["kind"] for e in episodes}):
            of_kind = [e for e in episodes if e["kind"] == kind]
            by_kind[kind] = f"{sum(e['detected'] for e in of_kind)}/{len(of_kind)}"
        night = [e for e in episodes if e["night"]]
        print(
            f"[{mode}] false alerts by decoy: {dict(false)}; alerted by kind: {by_kind}; at night: "
            f"{sum(e['detected'] for e in night)}/{len(night)}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, default=str, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
