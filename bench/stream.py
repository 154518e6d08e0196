"""Throughput of ONE scoring worker instance with real push delivery from the Pub/Sub emulator.

    .venv/bin/python bench/stream.py [--tweets 5000] [--threads 32]

For each configuration: start the emulator, one gunicorn worker (`buzzwatch worker --mode push`, the shared
Predictor on ONNX Runtime), a push subscription to it; publish N real airline tweets as fast as the emulator
takes them; pull the scored topic until every tweet has come out. Prints tweets/s from the first publish to
the last scored message, lost tweets (ids that never came out) and duplicates (ids that came out twice: the
detection service would skip them by id). The baseline, measured in the same run, is the same worker with
micro-batching off (WORKER_MAX_BATCH=1: one model call per push request).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from buzzwatch.emulator import PubSubEmulator, free_port  # noqa: E402
from buzzwatch.pubsub import Publisher, StreamTopology, pull_messages  # noqa: E402
from buzzwatch.schema import TweetEvent  # noqa: E402
from buzzwatch.settings import CommonSettings  # noqa: E402


def load_tweets(count: int) -> list[TweetEvent]:
    """Real airline tweets, with unique ids and one-second event-time spacing."""
    with open(REPO / "data" / "airline_us" / "train.csv", newline="", encoding="utf-8") as handle:
        texts = [r["text"] for r in csv.DictReader(handle) if r.get("text")]
    start = datetime(2015, 2, 20, tzinfo=UTC)
    return [
        TweetEvent(
            id=f"b{i:07d}",
            created_at=start + timedelta(seconds=i),
            text=texts[i % len(texts)],
            brands=("united",),
        )
        for i in range(count)
    ]


def run_once(tweets: list[TweetEvent], threads: int, max_batch: int, workdir: Path) -> dict[str, float]:
    """One measured run on a fresh emulator and worker."""
    with PubSubEmulator() as emulator:
        os.environ.update(emulator.env())
        env = dict(
            os.environ, BUZZWATCH_VAR_DIR=str(workdir), WORKER_MAX_BATCH=str(max_batch), LOG_LEVEL="WARNING"
        )
        settings = CommonSettings.from_env(env)
        topology = StreamTopology.from_settings(settings, env)
        port = free_port()
        log = open(workdir / f"worker-{max_batch}.log", "ab")  # noqa: SIM115
        worker = subprocess.Popen(
            [sys.executable, "-m", "buzzwatch.cli", "worker", "--mode", "push", "--host", "127.0.0.1",
             "--port", str(port), "--threads", str(threads)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.2)
            topology.ensure(push_endpoint=f"http://127.0.0.1:{port}/pubsub/push")
            seen: Counter[str] = Counter()
            done = threading.Event()
            last_at = [0.0]

            def drain() -> None:
                import json

                while not done.is_set():
                    batch = pull_messages(settings.gcp_project, topology.scored_subscription, 1000, 5.0)
                    for message in batch:
                        seen[json.loads(message.data)["id"]] += 1
                    if batch:
                        last_at[0] = time.perf_counter()
                    if len(seen) >= len(tweets):
                        done.set()

            drainer = threading.Thread(target=drain, daemon=True)
            drainer.start()
            started = time.perf_counter()
            with Publisher(settings.gcp_project, settings.tweets_topic) as publisher:
                for tweet in tweets:
                    publisher.publish(tweet.to_json(), brand="united", lang="und", source="bench")
            published_s = time.perf_counter() - started
            done.wait(timeout=300)
            time.sleep(2)  # late duplicates, if any
            done.set()
            drainer.join(timeout=10)
            elapsed = last_at[0] - started
            return {
                "tweets_per_s": len(seen) / elapsed if elapsed > 0 else 0.0,
                "seconds": elapsed,
                "publish_s": published_s,
                "lost": len(tweets) - len(seen),
                "duplicates": sum(c - 1 for c in seen.values()),
            }
        finally:
            worker.terminate()
            worker.wait(timeout=30)


def main() -> None:
    """Measure micro-batched and one-per-request scoring, print both."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tweets", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=32, help="gunicorn threads of the worker")
    args = parser.parse_args()
    os.environ.setdefault("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL", "true")
    tweets = load_tweets(args.tweets)
    print(
        f"{args.tweets} real tweets, one worker instance (1 gunicorn process, {args.threads} threads), push"
    )
    with TemporaryDirectory() as tmp:
        for label, max_batch in (("micro-batched (WORKER_MAX_BATCH=256)", 256), ("baseline: batch of 1", 1)):
            result = run_once(tweets, args.threads, max_batch, Path(tmp))
            print(
                f"{label:38s} {result['tweets_per_s']:8.0f} tweets/s  ({result['seconds']:.1f} s; publish "
                f"{result['publish_s']:.1f} s)  lost {result['lost']}  duplicates {result['duplicates']}",
                flush=True,
            )


if __name__ == "__main__":
    main()
