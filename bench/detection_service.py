"""The ceiling of ONE detection instance through the real path: Pub/Sub backlog, pull, checkpoints.

    .venv/bin/python bench/detection_service.py [--tweets 20000] [--brands 100 5000]
                                                [--stores sqlite postgresql] [--repeat 3] [--quick]

Each run publishes N scored tweets (real airline texts with their human labels, the oracle) to a fresh
scored topic of the Pub/Sub emulator, so they wait in the detection subscription's backlog, then starts the
real detection service (`buzzwatch detect`, its defaults: commit every 2 s or 2,000
messages) against a fresh database: a SQLite file, or a database on a throwaway PostgreSQL server (Debian's,
fsync off) started by the bench. The clock runs from the service's first /healthz answer (start-up is not
counted) until /healthz says every tweet is committed. The tweets are spread evenly over `--event-minutes`
of event time and over the brands (every brand gets N / brands tweets), so each run closes the same number
of event minutes, for 100 or for 5,000 brands.

Per run it prints: tweets/s; the CPU the service and the emulator spent per tweet (from /proc); the checkpoint
time the service itself reports (`processing_latency_ms{stage=checkpoint}`: the commit of ids + state +
alerts, then the per-brand metrics, p50/p99 over the run's checkpoints); the saved state (the
`bw_detector_state` row and the `bw_brand_state` rows, JSON bytes; on PostgreSQL also their stored, compressed
size) per brand; the RSS growth of the service over the run per brand. The last lines give the medians over
`--repeat` runs, the memory per brand between the two brand counts (the RSS difference / the brand
difference), and the detector's CPU split into a cost per tweet and a cost per brand-minute closed (every
brand's minute is closed once the watermark passes it, tweets or not), fitted on the smallest and largest
brand count: the bench compresses 30 event minutes into seconds, so the per-brand-minute part weighs far more
here than on a live stream.

Baselines, measured in the same run on the same tweets:
- detector alone: the same `BuzzDetector` (same configuration, same reason model) fed the same ScoredTweets
  in one process, no Pub/Sub, no database (what `buzzwatch replay --oracle` runs);
- pull and ack only: a consumer that pulls the same backlog 100 at a time (as the service does) and acks at
  once: the emulator's ceiling for one synchronous puller.

Everything the bench starts (emulator, PostgreSQL, services) is stopped when it ends, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
import psutil
import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from buzzwatch import telemetry as names  # noqa: E402
from buzzwatch.pubsub import (  # noqa: E402
    Publisher,
    SubscriptionSpec,
    ack,
    ensure_subscription,
    pull_batch,
    subscription_path,
)
from buzzwatch.schema import ScoredTweet, TweetEvent  # noqa: E402
from buzzwatch.telemetry import read_local  # noqa: E402
from stack.emulator import PubSubEmulator  # noqa: E402
from stack.ports import free_port  # noqa: E402
from stack.postgres import ThrowawayPostgres  # noqa: E402
from stack.processes import terminate  # noqa: E402

START = datetime(2015, 2, 20, tzinfo=UTC)
PULL_BATCH = 100  # what the detection service pulls at a time (worker/pull.py)
RUN_NUMBERS = itertools.count()  # unique topic, subscription, database and folder names


def make_scored(count: int, brands: int, event_minutes: float, seed: int = 0) -> list[ScoredTweet]:
    """`count` scored tweets (airline texts, human labels) spread evenly over brands and event time."""
    with open(REPO / "data" / "airline_us" / "train.csv", newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("text") and r.get("label")]
    rng = np.random.default_rng(seed)
    owner = rng.permutation(np.arange(count) % brands)
    step_s = event_minutes * 60 / count
    scored = []
    for index in range(count):
        row = rows[index % len(rows)]
        created = START + timedelta(seconds=index * step_s)
        tweet = TweetEvent(
            id=f"d{index:08d}", created_at=created, text=row["text"], brands=(f"brand{owner[index]:05d}",)
        )
        label = row["label"]
        reason = (row.get("negativereason") or None) if label == "negative" else None
        scored.append(
            ScoredTweet(tweet, label, {label: 1.0}, "oracle", negative_reason=reason, scored_at=created)
        )
    return scored


def brand_minutes(scored: Sequence[ScoredTweet]) -> int:
    """How many (brand, minute) closings the stream causes: each brand from its first minute to the end."""
    first: dict[str, int] = {}
    for one in scored:
        for brand in one.tweet.brands:
            first.setdefault(brand, int(one.tweet.created_at.timestamp() // 60))
    end = max(int(one.tweet.created_at.timestamp() // 60) for one in scored)
    return sum(end - minute for minute in first.values())


def detector_alone(scored: Sequence[ScoredTweet]) -> tuple[float, float]:
    """(tweets/s, CPU ms a tweet) of the service's detector in process on the same tweets: its upper bound."""
    from models.reasons import load_reason_model
    from worker.detection import BuzzDetector, DetectorConfig

    detector = BuzzDetector(DetectorConfig.from_env(os.environ), None, load_reason_model())
    started, cpu = time.perf_counter(), time.process_time()
    for one in scored:
        detector.observe(one)
    cpu_ms = (time.process_time() - cpu) * 1000 / len(scored)
    return len(scored) / (time.perf_counter() - started), cpu_ms


def publish_backlog(project: str, topic: str, subscription: str, scored: Sequence[ScoredTweet]) -> None:
    """A fresh topic and pull subscription holding every tweet, as the scoring workers publish them."""
    publisher = Publisher(project, topic)
    ensure_subscription(project, SubscriptionSpec(name=subscription, topic=topic))
    for one in scored:
        publisher.publish(one.to_json(), brand=",".join(one.tweet.brands), label=one.label)
    stats = publisher.close()
    if stats.failed:
        raise RuntimeError(f"{stats.failed} messages could not be published to the emulator")


def drop_backlog(project: str, topic: str, *subscriptions: str) -> None:
    """Delete a run's subscriptions and topic: the emulator keeps every topic's messages in its small heap."""
    from google.cloud import pubsub_v1

    subscriber, publisher = pubsub_v1.SubscriberClient(), pubsub_v1.PublisherClient()
    try:
        for subscription in subscriptions:
            subscriber.delete_subscription(subscription=subscription_path(project, subscription))
        publisher.delete_topic(topic=publisher.topic_path(project, topic))
    finally:
        subscriber.close()


def pull_and_ack(project: str, subscription: str, expected: int) -> float:
    """Messages/s of a consumer that only pulls (100 at a time) and acks: the emulator's pull ceiling."""
    from google.cloud import pubsub_v1

    client = pubsub_v1.SubscriberClient()
    path = subscription_path(project, subscription)
    taken = 0
    started = time.perf_counter()
    try:
        while taken < expected and time.perf_counter() - started < 600:
            received = pull_batch(client, path, PULL_BATCH)
            ack(client, path, [r.ack_id for r in received])
            taken += len(received)
    finally:
        client.close()
    return taken / (time.perf_counter() - started)


def healthz(port: int) -> dict[str, Any] | None:
    """The service's /healthz answer (None while it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return json.loads(response.read())
    except OSError:
        return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM: the peak) of one process in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


@dataclass
class ServiceRun:
    """One run of the detection service over a backlog."""

    tweets_per_s: float
    service_cpu_ms: float  # CPU per tweet, the service process
    emulator_cpu_ms: float  # CPU per tweet, the emulator
    checkpoints_ms: list[float]
    state_bytes: int  # the JSON state rows
    state_stored_bytes: int | None  # PostgreSQL: the row's stored (TOAST-compressed) size
    rss_start_mb: float
    rss_end_mb: float
    rss_peak_mb: float
    counted: int
    duplicates: int


def run_service(
    emulator: PubSubEmulator, database_url: str, topic: str, subscription: str, expected: int, workdir: Path
) -> ServiceRun:
    """Start `buzzwatch detect` on the backlog; measure until every tweet is committed."""
    port = free_port()
    env = dict(
        os.environ,
        **emulator.env(),
        BUZZWATCH_VAR_DIR=str(workdir),
        DATABASE_URL=database_url,
        PORT=str(port),
        LOG_LEVEL="WARNING",
        PUBSUB_SCORED_TOPIC=topic,
        PUBSUB_SCORED_SUBSCRIPTION=subscription,
        APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true",
    )
    env.pop("APPLICATIONINSIGHTS_CONNECTION_STRING", None)
    env.pop("SMTP_HOST", None)
    log = open(workdir / "service.log", "ab")  # noqa: SIM115 - closed with the service
    command = [sys.executable, "-m", "buzzwatch.cli", "detect"]
    service = subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while healthz(port) is None:
            if service.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the detection service did not start: see {workdir / 'service.log'}")
            time.sleep(0.02)
        started = time.perf_counter()
        rss_start, _ = _rss_mb(service.pid)
        cpu_before = (cpu_seconds(service.pid), cpu_seconds(emulator.pid or 0))
        health: dict[str, Any] = {}
        while time.perf_counter() - started < 1200:
            health = healthz(port) or health
            if health.get("counted", 0) >= expected or service.poll() is not None:
                break
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        service_cpu = cpu_seconds(service.pid) - cpu_before[0]
        emulator_cpu = cpu_seconds(emulator.pid or 0) - cpu_before[1]
        rss_end, rss_peak = _rss_mb(service.pid)
    finally:
        terminate(service, grace_s=60)
        log.close()
    counted = int(health.get("counted", 0))
    if counted < expected:
        raise RuntimeError(
            f"only {counted} of {expected} tweets were committed: see {workdir / 'service.log'}"
        )
    checkpoints = [
        float(record["value"])
        for record in read_local(workdir, "metrics", name=names.PROCESSING_LATENCY_MS)
        if record.get("dimensions", {}).get("stage") == "checkpoint"
    ]
    state_bytes, stored = _state_size(database_url)
    return ServiceRun(
        tweets_per_s=counted / elapsed,
        service_cpu_ms=service_cpu * 1000 / counted,
        emulator_cpu_ms=emulator_cpu * 1000 / counted,
        checkpoints_ms=checkpoints,
        state_bytes=state_bytes,
        state_stored_bytes=stored,
        rss_start_mb=rss_start,
        rss_end_mb=rss_end,
        rss_peak_mb=rss_peak,
        counted=counted,
        duplicates=int(health.get("duplicates", 0)),
    )


def _state_size(database_url: str) -> tuple[int, int | None]:
    """The saved detector state's JSON length (its global row and every brand's row) and, on PostgreSQL,
    its stored (compressed) size, in bytes."""
    from worker.detection_service.store import STATE_NAME, brand_state, detector_state

    engine = sa.create_engine(database_url)
    size, stored = 0, 0
    try:
        with engine.connect() as connection:
            for table in (detector_state, brand_state):
                where = table.c.name == STATE_NAME
                length = sa.func.coalesce(sa.func.sum(sa.func.length(table.c.state)), 0)
                size += int(connection.execute(sa.select(length).where(where)).scalar_one())
                if engine.dialect.name == "postgresql":
                    column = sa.func.coalesce(sa.func.sum(sa.func.pg_column_size(table.c.state)), 0)
                    stored += int(connection.execute(sa.select(column).where(where)).scalar_one())
    finally:
        engine.dispose()
    return size, stored if engine.dialect.name == "postgresql" else None


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


@dataclass
class Results:
    """Every run's figures, by brand count (and store)."""

    service: dict[tuple[str, int], list[ServiceRun]] = field(default_factory=dict)
    alone: dict[int, list[tuple[float, float]]] = field(default_factory=dict)  # (tweets/s, CPU ms)
    pulls: dict[int, list[float]] = field(default_factory=dict)
    brand_minutes: dict[int, int] = field(default_factory=dict)  # minute closings the stream causes


def measure_round(
    emulator: PubSubEmulator,
    fresh_database: Callable[[str], str],
    stores: Sequence[str],
    scored: Sequence[ScoredTweet],
    brands: int,
    workdir: Path,
    results: Results,
) -> None:
    """One round on the same tweets: the two baselines, then the service with each store."""
    rate, cpu_ms = detector_alone(scored)
    results.alone.setdefault(brands, []).append((rate, cpu_ms))
    print(f"{brands:5d} brands  baseline: detector alone   {rate:8.0f} tweets/s  CPU/tweet {cpu_ms:.2f} ms")
    tag = f"{next(RUN_NUMBERS):04d}"
    publish_backlog(emulator.project, f"bench-scored-{tag}", f"bench-detect-{tag}", scored)
    rate = pull_and_ack(emulator.project, f"bench-detect-{tag}", len(scored))
    drop_backlog(emulator.project, f"bench-scored-{tag}", f"bench-detect-{tag}")
    results.pulls.setdefault(brands, []).append(rate)
    print(f"{brands:5d} brands  baseline: pull and ack only {rate:7.0f} messages/s", flush=True)
    for store in stores:
        rundir = workdir / f"run-{next(RUN_NUMBERS):04d}"
        rundir.mkdir()
        topic, subscription = f"bench-scored-{rundir.name}", f"bench-detect-{rundir.name}"
        publish_backlog(emulator.project, topic, subscription, scored)
        result = run_service(emulator, fresh_database(store), topic, subscription, len(scored), rundir)
        drop_backlog(emulator.project, topic, subscription)
        results.service.setdefault((store, brands), []).append(result)
        _print_run(store, brands, result)


def print_medians(results: Results, brand_counts: Sequence[int], stores: Sequence[str]) -> None:
    """The medians over the runs, and the memory per brand between the smallest and largest brand count."""
    for brands in brand_counts:
        alone = results.alone[brands]
        print(
            f"{brands:5d} brands  detector alone {median(r for r, _ in alone):8.0f} tweets/s "
            f"(CPU/tweet {median(c for _, c in alone):.2f} ms)   "
            f"pull and ack only {median(results.pulls[brands]):8.0f} messages/s"
        )
        for store in stores:
            runs = results.service[(store, brands)]
            rates = [r.tweets_per_s for r in runs]
            stored = [r.state_stored_bytes / brands for r in runs if r.state_stored_bytes]
            print(
                f"{brands:5d} brands  service, {store:10s} {median(rates):8.0f} tweets/s "
                f"(range {min(rates):.0f}-{max(rates):.0f})   CPU/tweet "
                f"{median(r.service_cpu_ms for r in runs):.2f} ms (emulator "
                f"{median(r.emulator_cpu_ms for r in runs):.2f} ms)   checkpoint p50 "
                f"{median(_percentile(r.checkpoints_ms, 50) for r in runs):.0f} ms p99 "
                f"{median(_percentile(r.checkpoints_ms, 99) for r in runs):.0f} ms   state "
                f"{median(r.state_bytes / brands for r in runs):.0f} B/brand"
                + (f" (stored {median(stored):.0f})" if stored else "")
                + f"   RSS growth {median((r.rss_end_mb - r.rss_start_mb) * 1024 / brands for r in runs):.1f}"
                " KB/brand"
            )
    if len(brand_counts) >= 2:
        low, high = min(brand_counts), max(brand_counts)
        for store in stores:
            ends = {n: median(r.rss_end_mb for r in results.service[(store, n)]) for n in (low, high)}
            slope = (ends[high] - ends[low]) * 1024 / (high - low)
            print(f"memory per brand ({store}, RSS at the end, {high} vs {low} brands): {slope:.1f} KB")
        total = {n: median(r.state_bytes for r in results.service[(stores[0], n)]) for n in (low, high)}
        per_brand = (total[high] - total[low]) / (high - low)
        tweets = results.service[(stores[0], low)][0].counted  # all within the hour kept (<= 60 event min)
        per_tweet = (total[low] - per_brand * low) / tweets
        print(
            f"saved state = {per_brand:.0f} B a brand + {per_tweet:.0f} B a tweet of the last hour "
            f"(fitted on {low} and {high} brands)"
        )


def detector_cost_model(results: Results, tweets: int) -> tuple[float, float]:
    """(CPU ms a tweet, CPU ms a brand-minute closed) of the detector alone, from the extreme brand counts."""
    low, high = min(results.alone), max(results.alone)
    cpu = {n: median(c for _, c in results.alone[n]) * tweets for n in (low, high)}  # ms in all
    closings = results.brand_minutes
    per_brand_minute = (cpu[high] - cpu[low]) / (closings[high] - closings[low])
    return (cpu[low] - per_brand_minute * closings[low]) / tweets, per_brand_minute


def main(argv: Sequence[str] | None = None) -> None:
    """Measure the service with each store and brand count, beside its two baselines; print medians."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tweets", type=int, default=20000, help="scored tweets per run (default 20000)")
    parser.add_argument("--brands", type=int, nargs="+", default=[100, 5000], help="brand counts")
    parser.add_argument(
        "--stores", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"]
    )
    parser.add_argument("--event-minutes", type=float, default=30.0, help="event time the tweets span")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per brand count; medians at the end")
    parser.add_argument("--quick", action="store_true", help="5,000 tweets, one round each")
    args = parser.parse_args(argv)
    if args.quick:
        args.tweets, args.repeat = 5000, 1
    os.environ.setdefault("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL", "true")
    load = os.getloadavg()
    print(
        f"{args.tweets} scored tweets a run over {args.event_minutes:g} event minutes, one detection "
        "instance; "
        f"{os.cpu_count()} CPUs, load average at start {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}",
        flush=True,
    )
    results = Results()
    with TemporaryDirectory(prefix="bench-detection-") as tmp, PubSubEmulator() as emulator:
        os.environ.update(emulator.env())
        workdir = Path(tmp)
        with ExitStack() as stack:
            server = stack.enter_context(ThrowawayPostgres()) if "postgresql" in args.stores else None

            def fresh_database(kind: str) -> str:
                number = next(RUN_NUMBERS)
                if kind == "sqlite" or server is None:
                    return f"sqlite:///{workdir / f'detect-{number}.db'}"
                return server.create_database(f"detect_{number}")

            for brands in args.brands:
                scored = make_scored(args.tweets, brands, args.event_minutes)
                results.brand_minutes[brands] = brand_minutes(scored)
                for _ in range(max(1, args.repeat)):
                    measure_round(emulator, fresh_database, args.stores, scored, brands, workdir, results)
    print("\nmedians" + (f" of {args.repeat} rounds" if args.repeat > 1 else "") + ":")
    print_medians(results, args.brands, args.stores)
    if len(args.brands) >= 2:
        per_tweet, per_brand_minute = detector_cost_model(results, args.tweets)
        print(
            f"detector alone, CPU = {per_tweet:.3f} ms a tweet + {per_brand_minute * 1000:.0f} us a "
            "brand-minute "
            f"closed (fitted on {min(args.brands)} and {max(args.brands)} brands)"
        )
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")


def _print_run(store: str, brands: int, result: ServiceRun) -> None:
    stored = f", stored {result.state_stored_bytes / brands:.0f} B/brand" if result.state_stored_bytes else ""
    print(
        f"{brands:5d} brands  detection service, {store:10s} {result.tweets_per_s:8.0f} tweets/s  "
        f"CPU/tweet {result.service_cpu_ms:.2f} ms (emulator {result.emulator_cpu_ms:.2f})  "
        f"{len(result.checkpoints_ms)} checkpoints p50 {_percentile(result.checkpoints_ms, 50):.0f} ms "
        f"p99 {_percentile(result.checkpoints_ms, 99):.0f} ms  state {result.state_bytes / brands:.0f} "
        f"B/brand{stored}  RSS {result.rss_start_mb:.0f} -> {result.rss_end_mb:.0f} MB "
        f"(peak {result.rss_peak_mb:.0f})  counted {result.counted} duplicates {result.duplicates}",
        flush=True,
    )


if __name__ == "__main__":
    main()
