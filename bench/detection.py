"""Detection benchmark: injected bad buzzes and decoys replayed through the detector, several seeds.

Measures, per seed and pooled over the report seeds:
- recall: share of injected bad-buzz episodes with an alert between their start and 15 min after their end;
- false alerts per brand per week: "new" alerts outside every episode (start - 2 min to end + 75 min);
- median delay: first alert's `fired_at` (event time of the triggering tweet) minus the episode's start,
  and the same for `detected_at` (the event time at which the alert was emitted, after the watermark);
- duplicates: "new" alerts per detected episode beyond the first, and updates per episode;
and the same figures for a naive detector measured in the same pass over the same scored stream: a fixed
threshold on the trailing 15-minute negative count per brand (re-armed when the count falls below half).

Scoring: `--oracle` uses the file labels; `--model` scores with the shared Predictor (the champion).
Tuning (`--tune`) sweeps the detector's fire thresholds and the naive threshold on the TUNE seeds; the
defaults in worker/detection/config.py were chosen that way; the report runs on other seeds.
Throughput: `--throughput` times the exact CLI, `buzzwatch replay --speed max`, with and without --oracle.
Real traffic: `--real-week` replays the real airline week of data/airline_us (Feb 2015, nothing injected)
and prints every alert per brand with its window, volume, distinct authors, the most active author and its
terms, so a reader can judge which alerts are real events (the Feb 21-23 storms) and which are not; its
figure is alerts per brand-week. `--no-authors` drops the author column (copies are then the only
discount), to compare with the detector as it was before authors counted.

Usage:
  .venv/bin/python bench/detection.py --oracle --model --seeds 3 4 5 --throughput
  .venv/bin/python bench/detection.py --oracle --model --real-week
  .venv/bin/python bench/detection.py --tune --seeds 1 2
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "bench")]

from detection_data import DATA_VERSION, build, load_pools, real_week  # noqa: E402

from buzzwatch.schema import ScoredTweet  # noqa: E402
from worker.detection import BrandParams, BuzzDetector, DetectorConfig  # noqa: E402
from worker.replay import ReplayRow, ReplaySummary, read_rows, scored_batches  # noqa: E402

MATCH_BEFORE = timedelta(minutes=2)
DETECT_AFTER = timedelta(minutes=15)
FALSE_AFTER = timedelta(minutes=75)


@dataclass(frozen=True)
class Fired:
    """One alert as the benchmark sees it."""

    brand: str
    kind: str
    fired_at: datetime
    detected_at: datetime


class NaiveDetector:
    """Alert when a brand's trailing 15-minute negative count reaches `threshold`; re-arm below half."""

    def __init__(self, threshold: int, window: timedelta = timedelta(minutes=15)) -> None:
        self.threshold = threshold
        self.window = window
        self._negatives: dict[str, deque[datetime]] = defaultdict(deque)
        self._armed: dict[str, bool] = defaultdict(lambda: True)

    def observe(self, scored: ScoredTweet) -> list[Fired]:
        """One tweet in event-time order; returns the alert it fires, if any."""
        moment = scored.tweet.created_at
        fired = []
        for brand in scored.tweet.brands:
            queue = self._negatives[brand]
            if scored.label == "negative":
                queue.append(moment)
            while queue and queue[0] <= moment - self.window:
                queue.popleft()
            if self._armed[brand] and len(queue) >= self.threshold:
                self._armed[brand] = False
                fired.append(Fired(brand, "new", moment, moment))
            elif not self._armed[brand] and len(queue) < self.threshold / 2:
                self._armed[brand] = True
        return fired


def _read_truth(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["start"] = datetime.fromisoformat(row["start"])
        row["end"] = datetime.fromisoformat(row["end"])
    return rows


def evaluate(fired: list[Fired], episodes: list[dict[str, Any]], brand_weeks: float) -> dict[str, Any]:
    """Recall, false alerts per brand-week, delays and duplicates for one list of alerts."""
    delays, emit_delays, news_per_episode, updates_per_episode, missed = [], [], [], [], []
    detected = 0
    for episode in episodes:
        mine = [f for f in fired if f.brand == episode["brand"]]
        hits = [
            f for f in mine if episode["start"] - MATCH_BEFORE <= f.fired_at <= episode["end"] + DETECT_AFTER
        ]
        if not hits:
            missed.append(
                f"{episode['episode_id']} {episode['kind']} {episode['peak_per_minute']}/min for "
                f"{episode['minutes']} min (ramp {episode['ramp_minutes']} min, {episode['tweets']} tweets)"
            )
        if hits:
            detected += 1
            first = min(hits, key=lambda f: f.fired_at)
            delays.append((first.fired_at - episode["start"]).total_seconds() / 60)
            emit_delays.append((first.detected_at - episode["start"]).total_seconds() / 60)
            spell = [
                f
                for f in mine
                if episode["start"] - MATCH_BEFORE <= f.fired_at <= episode["end"] + FALSE_AFTER
            ]
            news_per_episode.append(max(sum(f.kind == "new" for f in spell), 1))
            updates_per_episode.append(sum(f.kind == "update" for f in spell))
    false_alerts = [
        f
        for f in fired
        if f.kind == "new"
        and not any(
            e["brand"] == f.brand and e["start"] - MATCH_BEFORE <= f.fired_at <= e["end"] + FALSE_AFTER
            for e in episodes
        )
    ]
    return {
        "episodes": len(episodes),
        "recall": detected / len(episodes) if episodes else 0.0,
        "false_alerts": len(false_alerts),
        "false_per_brand_week": len(false_alerts) / brand_weeks,
        "median_delay_min": statistics.median(delays) if delays else float("nan"),
        "p90_delay_min": statistics.quantiles(delays, n=10)[-1] if len(delays) >= 2 else float("nan"),
        "median_emit_delay_min": statistics.median(emit_delays) if emit_delays else float("nan"),
        "extra_new_per_episode": statistics.mean(n - 1 for n in news_per_episode)
        if news_per_episode
        else 0.0,
        "updates_per_episode": statistics.mean(updates_per_episode) if updates_per_episode else 0.0,
        "false_alert_times": [(f.brand, f.fired_at.isoformat()) for f in false_alerts],
        "delays": delays,
        "emit_delays": emit_delays,
        "missed": missed,
    }


class _CachedModel:
    """The model's probabilities for one file, computed once and kept beside it (reruns of the tuning)."""

    def __init__(self, model: Any, rows: list[ReplayRow], cache: Path) -> None:
        self.labels, self.model_version = model.labels, model.model_version
        texts = [r.text for r in rows]
        if cache.exists():
            probabilities = np.load(cache)
        else:
            probabilities = model.predict_proba(texts)
            np.save(cache, probabilities)
        self._row_of = {text: index for index, text in enumerate(texts)}  # same text, same probabilities
        self._probabilities = probabilities

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return self._probabilities[[self._row_of[text] for text in texts]]


def score_stream(rows: list[ReplayRow], model: Any, folder: Path) -> list[ScoredTweet]:
    """All tweets scored once (oracle labels when model is None; model scores cached per file)."""
    if model is not None:
        model = _CachedModel(model, rows, folder / f"probabilities-{model.model_version}.npy")
    return [s for batch in scored_batches(rows, model, 2048) for s in batch]


def run_detectors(
    stream: list[ScoredTweet], config: DetectorConfig, naive_thresholds: list[int]
) -> tuple[list[Fired], dict[int, list[Fired]], float]:
    """The detector and the naive detectors over one scored stream; also the detector's own seconds."""
    detector = BuzzDetector(config, tokenizer=str.split)  # explanations are not what is measured here
    naive = {t: NaiveDetector(t) for t in naive_thresholds}
    fired: list[Fired] = []
    naive_fired: dict[int, list[Fired]] = {t: [] for t in naive_thresholds}
    spent = 0.0
    for scored in stream:
        started = time.perf_counter()
        alerts = detector.observe(scored)
        spent += time.perf_counter() - started
        for alert in alerts:
            fired.append(Fired(alert.brand, alert.kind, alert.fired_at, scored.tweet.created_at))
        for threshold, other in naive.items():
            naive_fired[threshold].extend(other.observe(scored))
    last = stream[-1].tweet.created_at
    fired.extend(Fired(a.brand, a.kind, a.fired_at, last) for a in detector.flush())
    return fired, naive_fired, spent


def seed_files(seed: int, weeks: float, pools: Any) -> Path:
    """The seed's folder under var/bench/detection, generated if missing."""
    folder = REPO_ROOT / "var" / "bench" / "detection" / f"seed{seed}-w{weeks:g}-v{DATA_VERSION}"
    if not (folder / "tweets.csv").exists():
        build(seed, weeks, folder, pools)
    return folder


def fmt(result: dict[str, Any]) -> str:
    """One line of figures."""
    return (
        f"recall {result['recall']:.1%} "
        f"({round(result['recall'] * result['episodes'])}/{result['episodes']}), "
        f"false/brand/week {result['false_per_brand_week']:.2f} ({result['false_alerts']}), "
        f"median delay {result['median_delay_min']:.1f} min (p90 {result['p90_delay_min']:.1f}; emitted "
        f"{result['median_emit_delay_min']:.1f}), extra new/episode {result['extra_new_per_episode']:.2f}, "
        f"updates/episode {result['updates_per_episode']:.2f}"
    )


def pooled(results: list[dict[str, Any]], brand_weeks: float) -> dict[str, Any]:
    """Figures over several seeds: episodes, alerts and brand-weeks summed, delays pooled."""
    episodes = sum(r["episodes"] for r in results)
    delays = sorted(d for r in results for d in r["delays"])
    emit_delays = [d for r in results for d in r["emit_delays"]]
    return {
        "episodes": episodes,
        "recall": sum(r["recall"] * r["episodes"] for r in results) / episodes,
        "false_alerts": sum(r["false_alerts"] for r in results),
        "false_per_brand_week": sum(r["false_alerts"] for r in results) / (brand_weeks * len(results)),
        "median_delay_min": statistics.median(delays) if delays else float("nan"),
        "p90_delay_min": statistics.quantiles(delays, n=10)[-1] if len(delays) >= 2 else float("nan"),
        "median_emit_delay_min": statistics.median(emit_delays) if emit_delays else float("nan"),
        "extra_new_per_episode": statistics.mean(r["extra_new_per_episode"] for r in results),
        "updates_per_episode": statistics.mean(r["updates_per_episode"] for r in results),
        "delays": delays,
    }


def throughput(folder: Path) -> None:
    """Time the exact CLI contract with and without the model, and the model alone on the same texts."""
    from models.predictor import Predictor

    model = Predictor.load(None)
    texts = [r.text for r in read_rows(folder / "tweets.csv", False, ReplaySummary())]
    started = time.perf_counter()
    for start in range(0, len(texts), 2048):
        model.predict_proba(texts[start : start + 2048])
    seconds = time.perf_counter() - started
    print(
        f"  model alone (Predictor.predict_proba, batches of 2,048, every text): {len(texts) / seconds:,.0f} "
        f"tweets/s ({model.model_version}, {len(texts)} texts)"
    )
    for extra in (["--oracle"], []):
        out = folder / "alerts-cli.jsonl"
        command = [
            str(REPO_ROOT / ".venv" / "bin" / "buzzwatch"),
            "replay",
            "--input",
            str(folder / "tweets.csv"),
            "--alerts-out",
            str(out),
            "--speed",
            "max",
            "--quiet",
            *extra,
        ]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        match = re.search(r"replayed (\d+) tweets .* ([\d,]+) tweets/s", done.stdout)
        if done.returncode != 0 or not match:
            print(f"  {' '.join(command[1:])}: failed ({done.returncode}): {done.stderr.strip()[-400:]}")
            continue
        tweets = int(match.group(1))
        print(
            f"  buzzwatch replay --speed max {' '.join(extra) or '(model)'}: {match.group(2)} tweets/s "
            f"(replay loop), {tweets / wall:,.0f} tweets/s end to end incl. start-up and CSV reading "
            f"({tweets} tweets, {wall:.1f} s)"
        )


def replay_real_week(modes: list[str], model: Any, authors: bool) -> None:
    """Replay the real week with the default detector: every alert, and alerts per brand-week."""
    folder = REPO_ROOT / "var" / "bench" / "detection" / "real-week"
    rows = read_rows(real_week(folder), True, ReplaySummary())  # the report shows the authors either way
    replayed = rows if authors else [replace(r, author=None) for r in rows]
    brands = sorted({r.brand for r in rows})
    days = (rows[-1].created_at - rows[0].created_at).total_seconds() / 86400
    brand_weeks = len(brands) * days / 7
    print(
        f"real week: {len(rows)} tweets over {days:.1f} days, {len(brands)} brands "
        f"({brand_weeks:.2f} brand-weeks)"
    )
    for mode in modes:
        stream = score_stream(replayed, model if mode == "model" else None, folder)
        negative = {s.tweet.id for s in stream if s.label == "negative"}
        detector = BuzzDetector(DetectorConfig())
        alerts = [a for s in stream for a in detector.observe(s)] + detector.flush()
        news = [a for a in alerts if a.kind == "new"]
        one_author = 0
        print(
            f"[{mode}] real week: {len(news)} alerts, {len(news) / brand_weeks:.2f} per brand-week "
            f"({len(alerts) - len(news)} updates)"
        )
        for alert in news:
            window = [
                r
                for r in rows
                if r.brand == alert.brand and alert.window_start <= r.created_at <= alert.window_end
            ]
            negatives = [r for r in window if r.id in negative]
            top, top_count = Counter(r.author for r in negatives).most_common(1)[0] if negatives else ("-", 0)
            one_author += 2 * top_count >= len(negatives)
            print(
                f"  {alert.brand}: {alert.window_start:%a %d %H:%M}-{alert.window_end:%H:%M} UTC, "
                f"{len(window)} tweets by {len({r.author for r in window})} authors, "
                f"{len(negatives)} negative "
                f"(most by one author: {top}, {top_count}), share {alert.negative_share:.0%} vs "
                f"{alert.baseline_share:.0%}; terms: {', '.join(alert.top_terms[:6]) or '-'}"
            )
        print(f"[{mode}] alerts with half or more of their negatives by one author: {one_author}")


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5])
    parser.add_argument("--weeks", type=float, default=4.0)
    parser.add_argument("--oracle", action="store_true", help="measure with the file labels")
    parser.add_argument("--model", action="store_true", help="measure with the champion Predictor")
    parser.add_argument("--tune", action="store_true", help="sweep thresholds (use the tuning seeds)")
    parser.add_argument(
        "--naive-threshold", type=int, nargs="+", default=None, help="naive 15-min negative counts"
    )
    parser.add_argument("--fire", type=float, nargs="+", default=[3.0, 3.5, 4.0, 5.0], help="--tune grid")
    parser.add_argument("--share-z", type=float, nargs="+", default=[2.0, 2.5, 3.0], help="--tune grid")
    parser.add_argument("--margin", type=float, nargs="+", default=[0.05, 0.10], help="--tune grid")
    parser.add_argument(
        "--windows", nargs="+", default=["3,5,15,60"], help="--tune grid: window sets, minutes"
    )
    parser.add_argument("--throughput", action="store_true", help="time `buzzwatch replay --speed max`")
    parser.add_argument("--only-throughput", action="store_true", help="skip the detection figures")
    parser.add_argument(
        "--real-week", action="store_true", help="replay the real Feb 2015 week instead of the seeds"
    )
    parser.add_argument("--no-authors", action="store_true", help="replay without the author column")
    args = parser.parse_args()
    pools = load_pools()
    brand_weeks = 6 * args.weeks
    modes = (["oracle"] if args.oracle or args.tune or not args.model else []) + (
        ["model"] if args.model else []
    )
    if args.only_throughput:
        modes, args.throughput = [], True
    configs = {"default": DetectorConfig()}
    naive_thresholds = args.naive_threshold or ([12, 16, 20, 24, 28, 32] if args.tune else [20, 28])
    if args.tune:
        configs = {
            f"fire={fire} share_z={share_z} margin={margin} windows={windows}": DetectorConfig(
                windows_minutes=tuple(int(w) for w in windows.split(",")),
                defaults=replace(BrandParams(), fire_score=fire, min_share_z=share_z, share_margin=margin),
            )
            for windows in args.windows
            for fire in args.fire
            for share_z in args.share_z
            for margin in args.margin
        }
    model = None
    if "model" in modes:
        from models.predictor import Predictor

        model = Predictor.load(None)
        print(f"model: {model.model_version}")
    if args.real_week:
        replay_real_week(modes, model, not args.no_authors)
        return
    print(f"seeds {args.seeds}, {args.weeks:g} weeks each, 6 brands ({brand_weeks:g} brand-weeks per seed)")
    for mode in modes:
        results: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for seed in args.seeds:
            folder = seed_files(seed, args.weeks, pools)
            rows = read_rows(folder / "tweets.csv", True, ReplaySummary())
            if args.no_authors:
                rows = [replace(r, author=None) for r in rows]
            episodes = _read_truth(folder / "episodes.csv")
            started = time.perf_counter()
            stream = score_stream(rows, model if mode == "model" else None, folder)
            scoring_s = time.perf_counter() - started
            for name, config in configs.items():
                fired, naive_fired, spent = run_detectors(stream, config, naive_thresholds)
                result = evaluate(fired, episodes, brand_weeks)
                results[name].append(result)
                print(
                    f"[{mode}] seed {seed} detector {name}: {fmt(result)}; "
                    f"{len(stream) / spent:,.0f} tweets/s in observe()"
                )
                if args.tune or seed == args.seeds[0]:
                    for when in result["false_alert_times"][:8]:
                        print(f"    false alert: {when}")
                    for episode in result["missed"]:
                        print(f"    missed: {episode}")
            for threshold, alerts in naive_fired.items():
                result = evaluate(alerts, episodes, brand_weeks)
                results[f"naive>={threshold}"].append(result)
                print(f"[{mode}] seed {seed} naive 15-min negatives >= {threshold}: {fmt(result)}")
            print(
                f"[{mode}] seed {seed}: {len(stream)} tweets, {len(episodes)} episodes, "
                f"scoring {scoring_s:.1f} s"
            )
        print(f"== [{mode}] pooled over seeds {args.seeds} ==")
        for name, per_seed in results.items():
            print(f"  {name}: {fmt(pooled(per_seed, brand_weeks))}")
    if args.throughput:
        print("== throughput (exact CLI, first seed's file) ==")
        throughput(seed_files(args.seeds[0], args.weeks, pools))


if __name__ == "__main__":
    main()
