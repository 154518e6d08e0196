"""Publish throughput to the Pub/Sub emulator: BuzzWatch's publisher against two baselines, same run.

    .venv/bin/python bench/ingest.py [--messages 20000] [--repeats 3]

Rows (real airline tweets from data/airline_us, as TweetEvent JSON with brand/lang/source attributes):
- "wait per message": publish, then wait for that future (the naive loop), on 300 messages;
- "library defaults": PublisherClient() with its default batching (100 messages / 10 ms), no flow control,
  all futures awaited at the end (the plain sample);
- "buzzwatch Publisher": explicit batching, BLOCK flow control, callbacks, retries, wait at close;
- "buzzwatch ingest replay": the whole `buzzwatch ingest --source replay --speed max` path (CSV read,
  event-time sort, brand attribution, publish), in-process; also its CPU a tweet (this process's CPU time,
  every thread, over the tweets published: the ingester's own cost, the emulator's not included).
The Publisher's messages are then pulled back and counted (zero loss, zero duplicates).
Uses PUBSUB_EMULATOR_HOST when set, else starts its own emulator.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from buzzwatch.settings import REPO_ROOT
from stack.emulator import PubSubEmulator

DATA = REPO_ROOT / "data" / "airline_us" / "train.csv"


def _messages(count: int) -> list[tuple[bytes, dict[str, str]]]:
    from ingest.brands import BrandBook
    from ingest.events import event_from_record

    brands = BrandBook.load()
    with open(DATA, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    messages = []
    for index in range(count):
        row = dict(rows[index % len(rows)])
        row["id"] = f"{row['id']}-{index}"
        event = event_from_record(row, brands, "replay")
        attributes = {"brand": ",".join(event.brands), "lang": event.lang, "source": event.source}
        messages.append((event.to_json(), attributes))
    return messages


def _wait_per_message(project: str, topic: str, messages) -> float:
    from google.cloud import pubsub_v1

    client = pubsub_v1.PublisherClient()
    path = client.topic_path(project, topic)
    started = time.perf_counter()
    for data, attributes in messages:
        client.publish(path, data, **attributes).result()
    elapsed = time.perf_counter() - started
    client.stop()
    return len(messages) / elapsed


def _library_defaults(project: str, topic: str, messages) -> float:
    from google.cloud import pubsub_v1

    client = pubsub_v1.PublisherClient()
    path = client.topic_path(project, topic)
    started = time.perf_counter()
    futures = [client.publish(path, data, **attributes) for data, attributes in messages]
    for future in futures:
        future.result()
    elapsed = time.perf_counter() - started
    client.stop()
    return len(messages) / elapsed


def _buzzwatch_publisher(project: str, topic: str, messages) -> tuple[float, dict]:
    from buzzwatch.pubsub import Publisher

    publisher = Publisher(project, topic)
    started = time.perf_counter()
    for data, attributes in messages:
        publisher.publish(data, **attributes)
    stats = publisher.close()
    return len(messages) / (time.perf_counter() - started), stats.as_dict()


def _ingest_replay(count: int, tmp: Path, topic: str) -> tuple[float, float, dict]:
    from buzzwatch.pubsub import StreamTopology
    from buzzwatch.settings import CommonSettings
    from ingest.service import IngestSettings, SourceOptions, run_ingest

    env = dict(os.environ, BUZZWATCH_VAR_DIR=str(tmp), PUBSUB_TWEETS_TOPIC=topic, LOG_LEVEL="WARNING")
    env["INGEST_CREATE_SUBSCRIPTIONS"] = "false"
    common = CommonSettings.from_env(env)
    options = SourceOptions("replay", DATA, limit=count)
    started, cpu = time.perf_counter(), time.process_time()
    settings = IngestSettings.from_env(env, common)
    summary = run_ingest(options, StreamTopology.from_settings(common), settings, threading.Event())
    cpu_ms = (time.process_time() - cpu) * 1000 / summary["published"]
    return summary["published"] / (time.perf_counter() - started), cpu_ms, summary


def _count_back(project: str, subscription: str, expected: int) -> tuple[int, int]:
    from buzzwatch.pubsub import pull_messages

    seen: set[str] = set()
    total = 0
    while True:
        batch = pull_messages(project, subscription, max_messages=1000, timeout_s=5)
        if not batch:
            break
        total += len(batch)
        seen.update(json.loads(message.data)["id"] for message in batch)
        if total >= expected:
            # one more pull to catch duplicates, then stop
            extra = pull_messages(project, subscription, max_messages=1000, timeout_s=2)
            total += len(extra)
            seen.update(json.loads(message.data)["id"] for message in extra)
            break
    return len(seen), total


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    with ExitStack() as stack:
        if not os.environ.get("PUBSUB_EMULATOR_HOST"):
            emulator = stack.enter_context(PubSubEmulator())
            os.environ.update(emulator.env())
        project = os.environ.get("GOOGLE_CLOUD_PROJECT", "buzzwatch-local")
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        from buzzwatch.pubsub import SubscriptionSpec, ensure_subscription, ensure_topic

        messages = _messages(args.messages)
        rows: dict[str, list[float]] = {
            "wait per message": [],
            "library defaults": [],
            "buzzwatch Publisher": [],
            "buzzwatch ingest replay": [],
        }
        check = None
        replay_cpu_ms: list[float] = []
        for repeat in range(args.repeats):
            run = uuid.uuid4().hex[:8]
            topics = {name: f"bench-{run}-{index}" for index, name in enumerate(rows)}
            for topic in topics.values():
                ensure_topic(project, topic)
            checked_topic = topics["buzzwatch Publisher"]
            ensure_subscription(project, SubscriptionSpec(name=f"{checked_topic}-sub", topic=checked_topic))
            naive = messages[:300]
            rows["wait per message"].append(_wait_per_message(project, topics["wait per message"], naive))
            rows["library defaults"].append(_library_defaults(project, topics["library defaults"], messages))
            rate, stats = _buzzwatch_publisher(project, checked_topic, messages)
            rows["buzzwatch Publisher"].append(rate)
            replay_count = min(args.messages, 11_465)
            rate, cpu_ms, _ = _ingest_replay(replay_count, tmp, topics["buzzwatch ingest replay"])
            rows["buzzwatch ingest replay"].append(rate)
            replay_cpu_ms.append(cpu_ms)
            if repeat == 0:
                unique, total = _count_back(project, f"{checked_topic}-sub", len(messages))
                check = {
                    "published": stats["published"],
                    "failed": stats["failed"],
                    "pulled": total,
                    "unique": unique,
                }
        print(
            f"Publish throughput to the Pub/Sub emulator, {args.messages} messages, median of {args.repeats}"
        )
        print(f"{'path':<26}{'msg/s (median)':>16}{'runs':>32}")
        for name, rates in rows.items():
            runs = ", ".join(f"{rate:,.0f}" for rate in rates)
            print(f"{name:<26}{statistics.median(rates):>16,.0f}{runs:>32}")
        runs = ", ".join(f"{cpu_ms:.3f}" for cpu_ms in replay_cpu_ms)
        print(f"ingest replay CPU a tweet: {statistics.median(replay_cpu_ms):.3f} ms (median; runs {runs})")
        print(f"zero-loss check (Publisher run 1): {json.dumps(check)}")
        print(
            json.dumps(
                {
                    "msg_per_s": {name: round(statistics.median(r)) for name, r in rows.items()},
                    "ingest_replay_cpu_ms": round(statistics.median(replay_cpu_ms), 4),
                    **(check or {}),
                }
            )
        )
        ok = (
            check is not None and check["pulled"] == check["unique"] == args.messages and check["failed"] == 0
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
