"""Helpers for the stream tests: a deterministic tweet stream with one bad buzz, and real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from buzzwatch.replay import paced
from buzzwatch.schema import TweetEvent
from stack.ports import free_port
from stack.processes import answers_ok
from tests.support.polling import wait_for
from worker.detection_service.store import DetectionStore

BRAND = "acme"
START = datetime(2015, 2, 20, 6, 0, tzinfo=UTC)
CALM = (
    "@acme what time does boarding start for flight {n}?",
    "@acme thanks for the lovely flight {n}, great crew!",
    "@acme is there wifi on flight {n} tomorrow",
    "@acme loved the new seats on flight {n}, thank you",
    "@acme can I change my seat on flight {n} online?",
)
ANGRY = (
    "@acme worst airline ever, flight {n} delayed again and nobody helps #fail",
    "@acme flight {n} cancelled and the customer service line hung up on me. terrible",
    "@acme lost my bag on flight {n}, three hours waiting, awful service",
)


def stream_events(
    calm_minutes: int = 150, buzz_minutes: int = 10, buzz_per_minute: int = 10, tail_minutes: int = 15
) -> list[TweetEvent]:
    """Two calm tweets a minute (one in five angry), a bad buzz, calm again; event-time order, unique ids.

    The calm tail moves the watermark past the bad buzz, so its minutes are evaluated live.
    """
    events = []
    counter = 0
    for minute in range(calm_minutes + buzz_minutes + tail_minutes):
        calm = not calm_minutes <= minute < calm_minutes + buzz_minutes
        per_minute = 2 if calm else buzz_per_minute
        for index in range(per_minute):
            counter += 1
            angry = (counter % 5 == 0) if calm else True
            templates = ANGRY if angry else CALM
            text = templates[counter % len(templates)].format(n=1000 + counter)
            events.append(
                TweetEvent(
                    id=f"t{counter:06d}",
                    created_at=START + timedelta(minutes=minute, seconds=index * 60 / per_minute),
                    text=text,
                    brands=(BRAND,),
                    lang="en",
                    source="test",
                )
            )
    return events


DETECTOR_ENV = {
    "BUZZWATCH_DETECTOR_LATENESS_S": "600",
    "DETECTION_CHECKPOINT_S": "0.5",
}


def stack_env(var_dir: Path, emulator_env: Mapping[str, str], **extra: str) -> dict[str, str]:
    """The environment for worker processes of one test."""
    env = dict(os.environ)
    env.update(emulator_env)
    env.update(DETECTOR_ENV)
    env.update(
        BUZZWATCH_VAR_DIR=str(var_dir),
        APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true",
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def buzzwatch(*args: str, env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start `buzzwatch ARGS` with its output in a log file."""
    log = open(log_path, "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        [sys.executable, "-m", "buzzwatch.cli", *args], env=dict(env), stdout=log, stderr=subprocess.STDOUT
    )


def start_push_worker(env: Mapping[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A push worker (its granian server) on a free port, ready (model loaded) when this returns."""
    port = free_port()
    process = buzzwatch(
        "worker", "--mode", "push", "--host", "127.0.0.1", "--port", str(port), env=env, log_path=log_path
    )
    wait_for(
        lambda: answers_ok(f"http://127.0.0.1:{port}/readyz"),
        60,
        f"worker on {port} ready",
        process,
        log_path,
    )
    return process, port


def stop(processes: Sequence[subprocess.Popen[bytes]], grace_s: float = 20.0) -> None:
    """SIGTERM, then SIGKILL what still runs `grace_s` later."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def publish(events: Sequence[TweetEvent], project: str, topic: str, speed: float | None = None) -> None:
    """Publish with the ingest Publisher, paced at `speed` x event time (None: as fast as possible)."""
    from buzzwatch.pubsub import Publisher

    with Publisher(project, topic) as publisher:
        for event in paced(events, lambda event: event.created_at, speed):
            publisher.publish(
                event.to_json(), brand=",".join(event.brands), lang=event.lang, source=event.source
            )


def publish_scored(events: Sequence[TweetEvent], project: str, topic: str) -> int:
    """Publish to the scored topic as the scoring worker would (angry texts negative), in order; the count."""
    from google.cloud import pubsub_v1

    from buzzwatch.pubsub import topic_path
    from buzzwatch.schema import ScoredTweet

    angry_openings = tuple(template.split("{n}")[0] for template in ANGRY)
    publisher = pubsub_v1.PublisherClient()
    path = topic_path(project, topic)
    for event in events:  # one at a time: concurrent batches would reach the emulator out of event order
        label = "negative" if event.text.startswith(angry_openings) else "positive"
        scored = ScoredTweet(tweet=event, label=label, probabilities={label: 1.0}, model_version="test")
        publisher.publish(path, json.dumps(scored.to_dict()).encode()).result(timeout=30)
    return len(events)


def start_demo(env: Mapping[str, str], *options: str) -> tuple[subprocess.Popen[str], list[str]]:
    """`buzzwatch demo OPTIONS`, and the list its output lines go into as they come."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "buzzwatch.cli", "demo", *options],
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(demo.stdout or ()), daemon=True).start()
    return demo, lines


@contextmanager
def stack_store(var_dir: Path) -> Iterator[DetectionStore]:
    """The detection service's store that a test stack left in `var_dir` (its SQLite file), closed after."""
    store = DetectionStore(f"sqlite:///{var_dir / 'buzzwatch.db'}")
    try:
        yield store
    finally:
        store.close()
