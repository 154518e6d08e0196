"""Wiring of the ingester: settings, the chosen source, brand attribution and the Pub/Sub publisher.

`run_ingest` runs one source until it ends or `stop` is set, then waits for every publish and returns a
summary. The CLI (`buzzwatch ingest`) adds logging and signal handling around it.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from google.api_core import exceptions as api_exceptions

from buzzwatch.pubsub import Publisher, PublisherSettings, StreamTopology
from buzzwatch.replay import paced
from buzzwatch.schema import TweetEvent
from buzzwatch.settings import CommonSettings, SettingsError, env_bool, env_float, env_str
from ingest.brands import DEFAULT_BRANDS_PATH, BrandBook
from ingest.sources import InputReport, replay_file_events, stdin_events

log = logging.getLogger("buzzwatch.ingest")

SOURCES = ("x-stream", "x-search", "replay", "stdin")


@dataclass(frozen=True)
class IngestSettings:
    """The ingester's own settings (environment variables in brackets)."""

    brands_path: Path  # BUZZWATCH_BRANDS_FILE
    failed_path: Path  # where messages given up on are spooled, under the var dir
    search_state_path: Path  # since_id per brand for x-search
    keep_unattributed: bool  # INGEST_KEEP_UNATTRIBUTED: publish tweets that match no brand (brands=[])
    create_subscriptions: bool  # INGEST_CREATE_SUBSCRIPTIONS: create missing subscriptions (never alter)
    push_endpoint: str | None  # PUBSUB_PUSH_ENDPOINT: used when a missing tweets subscription is recreated
    heartbeat_timeout_s: float  # X_STREAM_HEARTBEAT_TIMEOUT_S
    search_poll_interval_s: float  # X_SEARCH_POLL_INTERVAL_S
    publisher: PublisherSettings = field(default_factory=PublisherSettings)  # PUBSUB_PUBLISH_*
    bearer_token: str | None = field(default=None, repr=False)  # X_BEARER_TOKEN: the X sources need it
    # X_STREAM_BACKFILL: a brand new to the filtered stream first gets its past from recent search
    backfill_new_brands: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str], common: CommonSettings) -> IngestSettings:
        """Build from the environment, with paths under the var dir."""
        ingest_dir = common.var_dir / "ingest"
        return cls(
            brands_path=Path(env_str(env, "BUZZWATCH_BRANDS_FILE", str(DEFAULT_BRANDS_PATH)) or ""),
            failed_path=ingest_dir / "failed.jsonl",
            search_state_path=ingest_dir / "x_search_since_ids.json",
            keep_unattributed=env_bool(env, "INGEST_KEEP_UNATTRIBUTED", False),
            create_subscriptions=env_bool(env, "INGEST_CREATE_SUBSCRIPTIONS", True),
            push_endpoint=env_str(env, "PUBSUB_PUSH_ENDPOINT"),
            heartbeat_timeout_s=env_float(env, "X_STREAM_HEARTBEAT_TIMEOUT_S", 30.0),
            search_poll_interval_s=env_float(env, "X_SEARCH_POLL_INTERVAL_S", 60.0),
            publisher=PublisherSettings.from_env(env),
            bearer_token=env_str(env, "X_BEARER_TOKEN"),
            backfill_new_brands=env_bool(env, "X_STREAM_BACKFILL", True),
        )


class Ingester:
    """Publishes each attributed tweet as JSON with the attributes brand (comma-separated), lang, source."""

    def __init__(self, publisher: Publisher, keep_unattributed: bool = False) -> None:
        self.publisher = publisher
        self.keep_unattributed = keep_unattributed
        self.accepted = 0
        self.unattributed = 0
        self.last_event_at: datetime | None = None  # event time reached, for progress lines
        self._lock = threading.Lock()

    def __call__(self, event: TweetEvent) -> None:
        if not event.brands and not self.keep_unattributed:
            with self._lock:
                self.unattributed += 1
            log.debug("tweet matches no brand", extra={"tweet_id": event.id})
            return
        self.publisher.publish(
            event.to_json(), brand=",".join(event.brands), lang=event.lang, source=event.source
        )
        with self._lock:
            self.accepted += 1
            self.last_event_at = event.created_at


def prepare_topology(topology: StreamTopology, settings: IngestSettings) -> None:
    """Create what is missing (topics; subscriptions too unless disabled) without altering what exists."""
    try:
        if settings.create_subscriptions:
            topology.ensure(push_endpoint=settings.push_endpoint, update=False)
    except api_exceptions.PermissionDenied as exc:
        # In production the deployment creates the subscriptions; the ingester may only publish.
        log.warning("cannot create subscriptions; relying on the deployed ones", extra={"error": str(exc)})


class ProgressReporter:
    """Logs a progress line every `every_s` seconds from `start()` to `stop()` (0: never), so a long
    replay or a quiet stream shows that it is alive and how far it got."""

    def __init__(self, ingester: Ingester, report: InputReport, every_s: float) -> None:
        self.ingester = ingester
        self.report = report
        self.every_s = every_s
        self.total: int | None = None  # tweets to publish, once the source knows
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-progress", daemon=True)
        self._started = time.monotonic()

    def start(self) -> None:
        """Begin reporting (nothing when every_s is 0)."""
        self._started = time.monotonic()
        if self.every_s > 0:
            self._thread.start()

    def stop(self) -> None:
        """Stop reporting; returns once the reporting thread is gone."""
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(self.every_s):
            of = f" of {self.total:,}" if self.total else ""
            reached = self.ingester.last_event_at
            event_time = reached.isoformat() if reached else None
            sent = self.ingester.publisher.stats  # "published": confirmed by Pub/Sub, not only handed over
            log.info(
                f"ingest progress: {self.ingester.accepted:,}{of} tweets sent, {sent.published:,} published "
                f"({sent.pending:,} waiting for Pub/Sub, {sent.failed:,} given up), "
                f"event time {event_time or 'none yet'}",
                extra={
                    "read": self.report.read,
                    "accepted": self.ingester.accepted,
                    "published": sent.published,
                    "pending": sent.pending,
                    "failed": sent.failed,
                    "unattributed": self.ingester.unattributed,
                    "bad_input": self.report.bad,
                    "total": self.total,
                    "event_time": event_time,
                    "elapsed_s": round(time.monotonic() - self._started, 1),
                },
            )


@dataclass(frozen=True)
class SourceOptions:
    """What the chosen source needs from the command line."""

    source: str
    input_path: Path | None = None
    file_format: str | None = None
    speed: float | None = None  # None: as fast as possible
    limit: int | None = None
    stdin: TextIO | None = None
    bearer_token: str | None = None
    progress_every_s: float = 30.0


def run_ingest(
    options: SourceOptions,
    topology: StreamTopology,
    settings: IngestSettings,
    stop: threading.Event,
) -> dict[str, Any]:
    """Run one source to its end (or until `stop`), wait for every publish, return the summary."""
    if options.source not in SOURCES:
        raise ValueError(f"unknown source {options.source!r}; choose one of {', '.join(SOURCES)}")
    token = None
    if options.source in ("x-stream", "x-search"):
        token = options.bearer_token or settings.bearer_token
        if token is None:
            raise SettingsError("missing required setting X_BEARER_TOKEN")
    brands = BrandBook.load(settings.brands_path)
    prepare_topology(topology, settings)
    publisher = Publisher(
        topology.project,
        topology.tweets_topic,
        settings=settings.publisher,
        failed_path=settings.failed_path,
        on_topic_missing=lambda: prepare_topology(topology, settings),
    )
    ingester = Ingester(publisher, keep_unattributed=settings.keep_unattributed)
    report = InputReport()
    extra: dict[str, Any] = {}
    progress = ProgressReporter(ingester, report, options.progress_every_s)
    progress.start()
    try:
        if options.source == "replay":
            if options.input_path is None:
                raise ValueError("--input is required with --source replay")
            replayed = replay_file_events(options.input_path, brands, report, options.file_format, stop=stop)
            with replayed as events:
                total = len(events) if options.limit is None else min(len(events), options.limit)
                progress.total = total
                log.info("replay starts", extra={"tweets": total, "speed": options.speed or "max"})
                chosen = itertools.islice(events, total)
                for event in paced(chosen, lambda event: event.created_at, options.speed, stop.wait):
                    if stop.is_set():
                        break
                    ingester(event)
        elif options.source == "stdin":
            for count, event in enumerate(stdin_events(brands, report, stop, options.stdin), start=1):
                ingester(event)
                if options.limit is not None and count >= options.limit:
                    break
        else:
            extra = _run_x_source(options.source, token or "", brands, ingester, report, settings, stop)
    finally:
        progress.stop()
        try:
            stats = publisher.close()
        except KeyboardInterrupt:  # a second Ctrl-C while waiting for Pub/Sub: nothing unconfirmed is lost
            publisher.abandon("interrupted while waiting for Pub/Sub")
            raise
    summary = {
        "source": options.source,
        "read": report.read,
        "bad_input": report.bad,
        "without_offset": report.without_offset,
        "unattributed": ingester.unattributed,
        "accepted": ingester.accepted,
        # a replay stopped by a signal is not whole: its last tweet sent says where to resume
        "stopped": stop.is_set(),
        "last_event_time": ingester.last_event_at.isoformat() if ingester.last_event_at else None,
        **stats.as_dict(),
        **extra,
    }
    if report.without_offset:
        log.warning(
            "created_at without a UTC offset (Z, +01:00) read as UTC",
            extra={"tweets": report.without_offset},
        )
    log.info("ingest finished", extra=summary)
    return summary


def _run_x_source(
    source: str,
    token: str,
    brands: BrandBook,
    ingester: Ingester,
    report: InputReport,
    settings: IngestSettings,
    stop: threading.Event,
) -> dict[str, Any]:
    from ingest.xapi import FilteredStream, RecentSearchPoller

    if source == "x-stream":
        stream = FilteredStream(
            token, brands, ingester, report, heartbeat_timeout_s=settings.heartbeat_timeout_s
        )
        change = stream.sync_rules_with_retry(brands.rules())
        # a brand whose rule is new (not one rewritten: none of its rules deleted) is new to the pipeline
        new = [tag for tag in change["added"] if tag not in change["deleted"]]
        past = _backfill(token, brands, ingester, report, new, stop) if settings.backfill_new_brands else 0
        _until_done_or_stopped(stream.start(), stop, stream.disconnect)
        if stream.fatal_error is not None:
            raise stream.fatal_error
        return {"stream": {k: v for k, v in vars(stream.stats).items() if k != "waits"}, "backfilled": past}
    poller = RecentSearchPoller(
        token,
        brands,
        ingester,
        report,
        poll_interval_s=settings.search_poll_interval_s,
        state_path=settings.search_state_path,
    )
    worker = threading.Thread(target=poller.run, name="x-search", daemon=True)
    worker.start()
    _until_done_or_stopped(worker, stop, poller.stop)
    if poller.fatal_error is not None:
        raise poller.fatal_error
    return {"search_requests": poller.requests_made}


def _until_done_or_stopped(thread: threading.Thread, stop: threading.Event, halt: Callable[[], None]) -> None:
    """Wait for a started X source's `thread` to end or `stop` to be set; then `halt` it and give it 30 s."""
    while thread.is_alive() and not stop.wait(0.5):
        pass
    halt()
    thread.join(timeout=30)


def _backfill(
    token: str,
    brands: BrandBook,
    ingester: Ingester,
    report: InputReport,
    tags: list[str],
    stop: threading.Event,
) -> int:
    """Before the filtered stream connects, each brand new to it gets its past from recent search
    (`RecentSearchPoller.backfill`): the detector learns the brand from it instead of starting it new.
    Tweets of the seconds between the backfill and the connection are not fetched."""
    if not tags:
        return 0
    from ingest.xapi import RecentSearchPoller

    poller = RecentSearchPoller(token, brands, ingester, report)
    published: list[int] = []
    worker = threading.Thread(
        target=lambda: published.append(poller.backfill(tags)), name="x-backfill", daemon=True
    )
    worker.start()
    _until_done_or_stopped(worker, stop, poller.stop)
    log.info("backfill done", extra={"brands": tags, "tweets": sum(published)})
    return sum(published)
