"""Throughput of ONE scoring worker instance with real push delivery from the Pub/Sub emulator.

    .venv/bin/python bench/stream.py [--tweets 20000] [--subscriptions 1 8 16] [--workers 1] [--threads 32]
                                     [--repeat 1]

The emulator pushes each subscription's messages through two loops, each waiting for the answer before its
next push (NUM_CONCURRENT_PUSH_REQUESTS = 2 in its FakePubsubServer): one subscription never has more than
two pushes in flight, whatever the endpoint, where Pub/Sub itself keeps many in flight to a Cloud Run
instance. So the bench feeds the one instance through 1 and through K push subscriptions (K topics, tweets
spread evenly over them).

Each run starts a fresh emulator and one server (the worker's own, `worker.cli.push_server_command`),
publishes N real airline tweets while the subscriptions are still pull subscriptions (so the tweets wait in
their backlogs), then turns them into push subscriptions to the server and times the stream from that moment
to the last message out. The emulator is a fresh JVM each time: the first few thousand pushes also pay for
its JIT compilation, so short runs read lower than the steady state.

- The BuzzWatch worker (`buzzwatch worker --mode push`: the shared Predictor on ONNX Runtime, every scored
  tweet published to the scored topic and confirmed before the push is acked). "Out" is the emulator's
  publish time of the last scored message; every scored message is pulled afterwards to check for lost
  tweets (ids that never came out) and repeated ones (ids scored twice after a redelivery: the detection
  service skips them by id).
- The baseline, in the same run and configuration: an endpoint that reads each push and answers 204 without
  doing anything: the emulator's push ceiling, against which the worker's figure reads.

Each line also gives the CPU time (from /proc) that the server and the emulator spent per message: on a
small machine they share the cores, and that sum, not the endpoint, sets the ceiling.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from tempfile import TemporaryDirectory
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.api import wait_ready  # noqa: E402
from buzzwatch.pubsub import (  # noqa: E402
    Publisher,
    StreamTopology,
    SubscriptionSpec,
    ack,
    ensure_subscription,
    ensure_topic,
    pull_batch,
    subscription_path,
)
from buzzwatch.schema import TweetEvent  # noqa: E402
from buzzwatch.settings import CommonSettings  # noqa: E402
from stack.emulator import PubSubEmulator  # noqa: E402
from stack.ports import free_port  # noqa: E402
from worker.cli import push_server_command  # noqa: E402

COUNT_FILE = "BENCH_PUSH_COUNT_FILE"


def noop_app() -> Callable[..., Iterable[bytes]]:
    """The baseline endpoint (an app factory, as the worker's): read the push, answer 204, count it.

    Each push appends one byte to the file named by $BENCH_PUSH_COUNT_FILE (O_APPEND: safe across the
    server's processes), so its size is the number of pushes taken.
    """
    counter = os.open(os.environ[COUNT_FILE], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/readyz":
            start_response("200 OK", [("Content-Length", "0")])
            return []
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        os.write(counter, b".")
        start_response("204 No Content", [])
        return []

    return app


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


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its direct children (the server's workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for one in [pid, *map(int, children)]:
        fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _quiet(pid: int, window_s: float = 1.0) -> bool:
    """Whether the server used almost no CPU over `window_s` (it has taken every push)."""
    before = _cpu_seconds(pid)
    time.sleep(window_s)
    return _cpu_seconds(pid) - before < 0.05 * window_s


def _drain_scored(project: str, subscription: str, expected: int) -> tuple[Counter[str], float]:
    """Every scored message: how many times each tweet id came out, and the latest publish time (epoch s)."""
    import json

    from google.cloud import pubsub_v1

    seen: Counter[str] = Counter()
    latest = 0.0
    client = pubsub_v1.SubscriberClient()
    path = subscription_path(project, subscription)
    quiet_since = time.monotonic()
    try:
        while time.monotonic() - quiet_since < (5.0 if len(seen) < expected else 2.0):
            batch = pull_batch(client, path, 1000, return_immediately=False)
            if not batch:
                time.sleep(0.2)
                continue
            quiet_since = time.monotonic()
            for received in batch:
                seen[json.loads(received.message.data)["id"]] += 1
                latest = max(latest, received.message.publish_time.timestamp())
            ack(client, path, [r.ack_id for r in batch])
    finally:
        client.close()
    return seen, latest


def run_once(
    tweets: list[TweetEvent], subscriptions: int, workers: int, threads: int, noop: bool, workdir: Path
) -> dict[str, float]:
    """One measured run on a fresh emulator and server: the worker, or the no-op baseline."""
    with PubSubEmulator() as emulator:
        os.environ.update(emulator.env())
        env = dict(os.environ, BUZZWATCH_VAR_DIR=str(workdir), LOG_LEVEL="WARNING")
        settings = CommonSettings.from_env(env)
        topology = StreamTopology.from_settings(settings)
        topology.ensure()  # the scored topic, its detection subscription (drained below), the dead letter
        feeds = [
            SubscriptionSpec(name=f"bench-push-{k}", topic=f"bench-tweets-{k}") for k in range(subscriptions)
        ]
        for feed in feeds:  # pull subscriptions for now: the tweets wait in their backlogs
            ensure_topic(settings.gcp_project, feed.topic)
            ensure_subscription(settings.gcp_project, feed)
        port = free_port()
        count_file = workdir / f"pushes-{port}"
        if noop:
            env[COUNT_FILE] = str(count_file)
            command = push_server_command(
                "127.0.0.1", port, workers, threads, app_factory="bench.stream:noop_app"
            )
        else:
            command = [sys.executable, "-m", "buzzwatch.cli", "worker", "--mode", "push", "--host",
                       "127.0.0.1", "--port", str(port), "--workers", str(workers), "--threads",
                       str(threads)]  # fmt: skip
        log = open(workdir / f"server-{port}.log", "ab")  # noqa: SIM115 - closed with the server
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            wait_ready(f"http://127.0.0.1:{port}", server)
            publishers = [Publisher(settings.gcp_project, feed.topic) for feed in feeds]
            for index, tweet in enumerate(tweets):
                publishers[index % len(publishers)].publish(
                    tweet.to_json(), brand="united", lang="und", source="bench"
                )
            for publisher in publishers:
                publisher.close()
            cpu_before = (_cpu_seconds(emulator.pid or 0), _cpu_seconds(server.pid))
            started = time.time()
            for feed in feeds:
                push = replace(feed, push_endpoint=f"http://127.0.0.1:{port}/pubsub/push")
                ensure_subscription(settings.gcp_project, push)
            if noop:
                while count_file.stat().st_size < len(tweets) and time.time() - started < 300:
                    time.sleep(0.01)
                count = count_file.stat().st_size
                elapsed = time.time() - started
            else:
                while time.time() - started < 300 and not _quiet(server.pid):
                    time.sleep(0.2)
            cpu_ms = [
                (_cpu_seconds(pid) - before) * 1000 / len(tweets)
                for pid, before in zip((emulator.pid or 0, server.pid), cpu_before, strict=True)
            ]
            if noop:
                return {
                    "tweets_per_s": count / elapsed,
                    "seconds": elapsed,
                    "lost": len(tweets) - count,
                    "emulator_cpu_ms": cpu_ms[0],
                    "worker_cpu_ms": cpu_ms[1],
                }
            seen, last_out = _drain_scored(settings.gcp_project, topology.scored_subscription, len(tweets))
            elapsed = last_out - started
            return {
                "tweets_per_s": len(seen) / elapsed if elapsed > 0 else 0.0,
                "seconds": elapsed,
                "lost": len(tweets) - len(seen),
                "repeated": sum(c - 1 for c in seen.values()),
                "emulator_cpu_ms": cpu_ms[0],
                "worker_cpu_ms": cpu_ms[1],
            }
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()


def main() -> None:
    """Measure the no-op ceiling and the worker for each subscription count; print both."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tweets", type=int, default=20000)
    parser.add_argument(
        "--subscriptions", type=int, nargs="+", default=[1, 8, 16], help="push subscriptions to feed it"
    )
    parser.add_argument("--workers", type=int, default=1, help="server processes of the instance")
    parser.add_argument("--threads", type=int, default=32, help="threads per server process")
    parser.add_argument(
        "--repeat", type=int, default=1, help="measure each line N times (alternating), then the medians"
    )
    args = parser.parse_args()
    os.environ.setdefault("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL", "true")
    tweets = load_tweets(args.tweets)
    shape = f"{args.workers} process{'es' if args.workers > 1 else ''} x {args.threads} threads"
    print(f"{args.tweets} real tweets, one instance ({shape}), push delivery from the Pub/Sub emulator")
    with TemporaryDirectory() as tmp:
        for subscriptions in args.subscriptions:
            feed = f"{subscriptions} push subscription{'s' if subscriptions > 1 else ''}"
            rates: dict[bool, list[float]] = {True: [], False: []}
            for _ in range(max(1, args.repeat)):
                ceiling = run_once(tweets, subscriptions, args.workers, args.threads, True, Path(tmp))
                rates[True].append(ceiling["tweets_per_s"])
                print(
                    f"{feed:22s} baseline, no-op endpoint {ceiling['tweets_per_s']:7.0f} pushes/s  "
                    f"({ceiling['seconds']:.1f} s)  CPU a push: endpoint {ceiling['worker_cpu_ms']:.2f} ms, "
                    f"emulator {ceiling['emulator_cpu_ms']:.2f} ms",
                    flush=True,
                )
                result = run_once(tweets, subscriptions, args.workers, args.threads, False, Path(tmp))
                rates[False].append(result["tweets_per_s"])
                print(
                    f"{feed:22s} BuzzWatch worker         {result['tweets_per_s']:7.0f} tweets/s  "
                    f"({result['seconds']:.1f} s)  lost {result['lost']}  scored twice {result['repeated']}  "
                    f"CPU a tweet: worker {result['worker_cpu_ms']:.2f} ms, "
                    f"emulator {result['emulator_cpu_ms']:.2f} ms",
                    flush=True,
                )
            if args.repeat > 1:
                print(
                    f"{feed:22s} median of {args.repeat}: no-op endpoint {median(rates[True]):.0f} pushes/s, "
                    f"BuzzWatch worker {median(rates[False]):.0f} tweets/s "
                    f"(range {min(rates[False]):.0f}-{max(rates[False]):.0f})",
                    flush=True,
                )


if __name__ == "__main__":
    main()
