"""Detection in one place: the single consumer of the scored topic that counts, detects and alerts.

Why one place: a window split across scoring instances would see part of a bad buzz each, and each instance
would alert on its own. So scoring scales out, and exactly one detection service (a single pull subscriber;
on Cloud Run a service with min = max instances = 1 and CPU always allocated) runs `BuzzDetector` in event
time over every scored tweet.

Exactly-once counting over at-least-once delivery: messages are processed in memory and their acks are
held; every `checkpoint_interval_s` (or `checkpoint_max_messages`) ONE database transaction stores the new
tweet ids (the durable seen-id store), the detector state and the alerts fired (an alert outbox); only then
are the held messages acknowledged and the alerts dispatched. A crash before the commit loses nothing: the
messages come again and the detector resumes from the last committed state, so each tweet is counted once;
a redelivery after the commit is recognised by its id. A failed commit reloads the last committed state. If
two detection services ran by mistake, the primary key on tweet ids makes the second commit fail, so a
tweet can still not be counted twice.

Each alert goes out once per alert key, after restarts and crashes too. Dispatching an outbox row never
touches the network, so the consumer never waits on SMTP: (1) its mail is spooled under a name derived from
the alert key (`Mailer.send(..., key=)`: durable, and a no-op when that key is already pending or sent);
(2) the row is marked dispatched, by a conditional update that only one dispatch can win; (3) the winner
records the `BadBuzzAlert` event and the log line. The Mailer's own thread delivers the spool, with its
retries. A crash before (2) spools nothing new on restart and records the event then; the event comes
after the mark, so it is never recorded twice (a crash in the instant between the mark and the event loses
that event; the mail still goes). `BUZZWATCH_CRASH_AT` names a point where the process kills itself
(`crash_point`): the crash-safety tests use it, nothing else sets it.

Late tweets: the detector counts a redelivered tweet in its own minute while that minute is retained
(about 2 h of event time); an older one is dropped, counted in the detector's `stats["late"]` and reported
as `dead_lettered{reason=late, stage=detection}`. Its id is stored like any other, so it is not retried.

Idle watermark: the detector closes minutes as tweets advance event time, so on a quiet stream the last
minutes (an episode's end, the per-minute metrics) would wait for the next tweet. When the pull loop finds
nothing, `tick()` moves the watermark on by itself once no message has come for `idle_quiet_s`: to the
event clock's estimated "now" minus the lateness tolerance minus `idle_margin_s`, never backwards. The
event clock is assumed to run no faster than the wall clock since the newest tweet arrived: estimated now =
min(wall now, newest event time + wall time since it arrived). That holds live (event time = wall time
minus the pipeline's latency) and stays safe when event time is far behind the wall clock, e.g. an ingest
replay of 2015 tweets at speed x1 or faster: the estimate never passes what the replay has reached. Before
the first tweet after a start, a resumed service counts from the newest event time of its saved state as
if it had just arrived (a smaller estimate). `buzzwatch replay` and the benchmark run the detector in pure
event time and never tick.

SQLite locally (`<var_dir>/buzzwatch.db`), PostgreSQL through DATABASE_URL.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa

from buzzwatch import telemetry as names
from buzzwatch.database import make_engine
from buzzwatch.notify import Mailer, render_alert
from buzzwatch.partitions import DEFAULT_PARTITIONS, partition_of
from buzzwatch.schema import Alert, SchemaError, ScoredTweet, format_timestamp, load_json
from buzzwatch.telemetry import RecordingTelemetry, Telemetry
from buzzwatch.zones import zone_of
from worker.auth import GoogleTokenVerifier, IdTokenPolicy, TokenVerifier
from worker.detection import BuzzDetector, DetectorConfig

log = logging.getLogger("buzzwatch.detection")

STATE_NAME = "buzz-detector"
CRASH_AT_VARIABLE = "BUZZWATCH_CRASH_AT"
metadata = sa.MetaData()
seen_tweets = sa.Table(
    "bw_seen_tweets",
    metadata,
    sa.Column("tweet_id", sa.String(64), primary_key=True),
    sa.Column("seen_at", sa.Float, nullable=False, index=True),
)
detector_state = sa.Table(
    "bw_detector_state",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
alert_outbox = sa.Table(
    "bw_alert_outbox",
    metadata,
    sa.Column("alert_key", sa.String(300), primary_key=True),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("dispatched", sa.Boolean, nullable=False, default=False, index=True),
)


def crash_point(name: str) -> None:
    """Die here at once (SIGKILL, as a power cut or an OOM kill would) when BUZZWATCH_CRASH_AT names it."""
    if os.environ.get(CRASH_AT_VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def alert_key(alert: Alert) -> str:
    """One key per alert of an episode (new or update), stable across restarts."""
    return f"{alert.episode_id}|{alert.kind}|{format_timestamp(alert.fired_at)}"


RESET_HINT = (
    "set DETECTION_RESET_STATE=true to set it aside and start afresh (docs/runbook.md, detection-state)"
)


class StateError(RuntimeError):
    """The detection database or the detector state in it cannot be used; the message names it."""


class DetectionStore:
    """The durable seen-id store, the detector state and the alert outbox (SQLAlchemy).

    A SQLite file that is not a database or is damaged is refused (StateError, naming the file) unless
    `reset_corrupt`: then it is renamed `<name>.corrupt-<UTC time>` (kept for inspection) and a new one made.
    """

    def __init__(self, database_url: str, reset_corrupt: bool = False) -> None:
        self.path: Path | None = None
        if database_url.startswith("sqlite:///"):
            self.path = Path(database_url.removeprefix("sqlite:///"))
        self.engine = make_engine(database_url)
        self.location = str(self.path) if self.path else self.engine.url.render_as_string(hide_password=True)
        try:
            self._open()
        except StateError:
            if not reset_corrupt or self.path is None:
                raise
            aside = self._set_aside_file()
            log.warning(
                f"the detection database {self.location} was damaged: set aside as {aside}, starting afresh",
                extra={"database": self.location, "set_aside_as": str(aside)},
            )
            self._open()

    def _open(self) -> None:
        """Create the tables if missing; a damaged SQLite file is a StateError."""
        try:
            metadata.create_all(self.engine)
            if self.path is not None:
                with self.engine.connect() as connection:
                    verdict = connection.exec_driver_sql("PRAGMA quick_check").scalar()
                if verdict != "ok":
                    raise StateError(
                        f"the detection database {self.location} is damaged ({verdict}); {RESET_HINT}"
                    )
        except sa.exc.DatabaseError as exc:
            code = getattr(exc.orig, "sqlite_errorname", "")
            if code in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
                raise StateError(
                    f"the detection database {self.location} is damaged ({exc.orig}); {RESET_HINT}"
                ) from exc
            raise StateError(f"cannot open the detection database {self.location}: {exc.orig}") from exc

    def _set_aside_file(self) -> Path:
        """Rename the SQLite file (and its WAL files) out of the way; the new name of the main file."""
        assert self.path is not None
        self.engine.dispose()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            source = self.path.with_name(self.path.name + suffix)
            if source.exists():
                source.rename(aside.with_name(aside.name + suffix))
        return aside

    def known(self, tweet_ids: Iterable[str]) -> set[str]:
        """Which of these ids were committed before."""
        ids = list(dict.fromkeys(tweet_ids))
        found: set[str] = set()
        with self.engine.connect() as connection:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                rows = connection.execute(
                    sa.select(seen_tweets.c.tweet_id).where(seen_tweets.c.tweet_id.in_(chunk))
                )
                found.update(row[0] for row in rows)
        return found

    def load_state(self) -> dict[str, Any] | None:
        """The last committed detector state (None: none saved); ValueError when the row is not JSON."""
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(detector_state.c.state).where(detector_state.c.name == STATE_NAME)
            ).first()
        return json.loads(row[0]) if row else None

    def set_aside_state(self) -> str:
        """Rename the saved detector state row (kept for inspection), so the next start begins afresh."""
        aside = f"{STATE_NAME}.bad-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
        with self.engine.begin() as connection:
            connection.execute(
                sa.update(detector_state).where(detector_state.c.name == STATE_NAME).values(name=aside)
            )
        return aside

    def commit(self, new_ids: Sequence[str], state: Mapping[str, Any], alerts: Sequence[Alert]) -> None:
        """One transaction: the new ids, the state, the alerts. Raises if any id was already stored."""
        now = time.time()
        with self.engine.begin() as connection:
            if new_ids:
                connection.execute(seen_tweets.insert(), [{"tweet_id": i, "seen_at": now} for i in new_ids])
            connection.execute(sa.delete(detector_state).where(detector_state.c.name == STATE_NAME))
            connection.execute(
                detector_state.insert().values(name=STATE_NAME, state=json.dumps(state), updated_at=now)
            )
            for alert in alerts:
                key = alert_key(alert)
                exists = connection.execute(
                    sa.select(alert_outbox.c.alert_key).where(alert_outbox.c.alert_key == key)
                ).first()
                if exists is None:
                    connection.execute(
                        alert_outbox.insert().values(
                            alert_key=key,
                            payload=json.dumps(alert.to_dict()),
                            created_at=now,
                            dispatched=False,
                        )
                    )

    def undispatched(self) -> list[tuple[str, Alert]]:
        """Committed alerts not sent yet, oldest first."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(alert_outbox.c.alert_key, alert_outbox.c.payload)
                .where(alert_outbox.c.dispatched.is_(False))
                .order_by(alert_outbox.c.created_at, alert_outbox.c.alert_key)
            ).all()
        return [(key, Alert.from_dict(json.loads(payload))) for key, payload in rows]

    def mark_dispatched(self, key: str) -> bool:
        """Mark the alert sent (its mail is spooled); False when it was marked before (someone else won)."""
        with self.engine.begin() as connection:
            result = connection.execute(
                sa.update(alert_outbox)
                .where(alert_outbox.c.alert_key == key, alert_outbox.c.dispatched.is_(False))
                .values(dispatched=True)
            )
        return result.rowcount == 1

    def counts(self) -> dict[str, int]:
        """How many tweet ids and alerts are stored (tests, the demo summary)."""
        with self.engine.connect() as connection:
            tweets = connection.execute(sa.select(sa.func.count()).select_from(seen_tweets)).scalar_one()
            alerts = connection.execute(sa.select(sa.func.count()).select_from(alert_outbox)).scalar_one()
        return {"tweets": int(tweets), "alerts": int(alerts)}

    def prune(self, older_than_s: float) -> int:
        """Forget ids seen before `now - older_than_s` (redeliveries never come that late)."""
        with self.engine.begin() as connection:
            result = connection.execute(
                sa.delete(seen_tweets).where(seen_tweets.c.seen_at < time.time() - older_than_s)
            )
        return int(result.rowcount or 0)

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()


class AlertDispatcher:
    """Sends one alert everywhere without waiting on the network: mail spool, BadBuzzAlert event, log."""

    def __init__(
        self, telemetry: Telemetry, mailer: Mailer, zones: Mapping[str, tzinfo] | None = None
    ) -> None:
        self.telemetry = telemetry
        self.mailer = mailer
        self.zones = dict(zones or {})  # brand -> time zone of its mails (`buzzwatch.zones.brand_zones`)

    def spool(self, key: str, alert: Alert) -> None:
        """Spool the alert's mail under its key (the Mailer's thread delivers it; once per key)."""
        subject, text_body, html_body = render_alert(alert, zone_of(alert.brand, self.zones))
        self.mailer.send(subject, text_body, html_body, key=key)

    def announce(self, key: str, alert: Alert) -> None:
        """Record the BadBuzzAlert event (Azure or the local sink) and the log line: once, after the mark."""
        payload = alert.to_dict()
        self.telemetry.event(
            names.BAD_BUZZ_ALERT,
            {
                "brand": alert.brand,
                "kind": alert.kind,
                "episode_id": alert.episode_id,
                "window_start": payload["window_start"],
                "window_end": payload["window_end"],
                "top_terms": list(alert.top_terms),
                "reasons": dict(alert.reasons),
                "alert": payload,
            },
            {
                "negative_share": alert.negative_share,
                "baseline_share": alert.baseline_share,
                "volume": float(alert.volume),
                "score": alert.score,
            },
        )
        log.warning("BAD BUZZ ALERT", extra={"alert": payload, "alert_key": key})


@dataclass
class PendingWork:
    """What was processed since the last commit."""

    ids: list[str] = field(default_factory=list)
    id_set: set[str] = field(default_factory=set)
    alerts: list[Alert] = field(default_factory=list)
    scored: Counter[tuple[str, str]] = field(default_factory=Counter)
    brands: set[str] = field(default_factory=set)
    messages: int = 0
    duplicates: int = 0
    late: int = 0  # tweets the detector dropped: their minute was no longer retained
    started: float = 0.0  # perf_counter() when its commit began


class DetectionService:
    """Dedupe, detect, checkpoint, dispatch; the caller acks its held messages after `checkpoint()`.

    `clock` (wall time, seconds since the epoch) drives only the idle watermark (`tick`).
    """

    def __init__(
        self,
        store: DetectionStore,
        dispatcher: AlertDispatcher,
        telemetry: Telemetry,
        config: DetectorConfig | None = None,
        tokenizer: Any = None,
        reason_model: Any = None,
        idle_quiet_s: float = 10.0,
        idle_margin_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        reset_state: bool = False,
        owned_partitions: frozenset[int] | None = None,
        partitions: int = DEFAULT_PARTITIONS,
    ) -> None:
        self.store = store
        # A static split by brand (DETECTION_PARTITIONS): only the brands of these partitions are counted
        # here, the others by the instance owning theirs (its own database). None: every brand, here.
        self.owned_partitions = owned_partitions
        self.partitions = partitions
        self.reset_state = reset_state
        self.dispatcher = dispatcher
        self.telemetry = telemetry
        self.config = config
        self.tokenizer = tokenizer
        self.reason_model = reason_model
        self.idle_quiet_s = idle_quiet_s
        self.idle_margin_s = idle_margin_s
        self.clock = clock
        self.detector = self._load_detector()
        # Each brand's phase as of the last commit (`BuzzDetector.brand_states`), for /healthz and the feed.
        self.brand_states: dict[str, dict[str, Any]] = self.detector.brand_states()
        self.pending = PendingWork()
        self.totals: Counter[str] = Counter()
        self.last_checkpoint = time.monotonic()
        self._lock = threading.Lock()
        self._last_message = clock()
        latest = self.detector.latest_event_time
        # (newest event time, wall time it arrived): the event clock runs no faster than the wall clock since.
        self._event_clock: tuple[float, float] | None = (
            None if latest is None else (latest, self._last_message)
        )

    def _load_detector(self) -> BuzzDetector:
        """The detector from the saved state; a fresh one, said in a WARNING, when none is saved.

        A saved state that cannot be read is a StateError naming the database, unless `reset_state`: then
        the row is set aside and the detector starts afresh.
        """
        where = self.store.location
        try:
            state = self.store.load_state()
            if state is not None:
                detector = BuzzDetector.from_state(state, self.tokenizer, self.reason_model, self.config)
                log.info("detector state resumed", extra={"database": where, "brands": len(detector.brands)})
                return detector
        except Exception as exc:  # whatever the row holds, a state that does not rebuild is unreadable
            if not self.reset_state:
                raise StateError(
                    f"the detector state in {where} is unreadable ({type(exc).__name__}: {exc}); {RESET_HINT}"
                ) from exc
            aside = self.store.set_aside_state()
            log.warning(
                f"the detector state in {where} was unreadable: set aside as {aside!r}",
                extra={"database": where, "set_aside_as": aside, "error": str(exc)[:300]},
            )
        log.warning(
            f"no saved detector state in {where}: the detector starts afresh, with no baselines",
            extra={"database": where, "seen_tweet_ids": self.store.counts()["tweets"]},
        )
        return BuzzDetector(self.config or DetectorConfig(), self.tokenizer, self.reason_model)

    def process(self, payloads: Sequence[bytes]) -> None:
        """Count and detect a batch of scored-topic messages (in delivery order)."""
        parsed: list[ScoredTweet] = []
        for data in payloads:
            try:
                parsed.append(ScoredTweet.from_dict(load_json(data)))
            except (SchemaError, ValueError, TypeError, KeyError, AttributeError) as exc:
                self.totals["malformed"] += 1
                self.telemetry.metric(names.DEAD_LETTERED, 1, {"reason": "malformed", "stage": "detection"})
                log.error("unreadable scored message skipped", extra={"error": str(exc)[:300]})
        if self.owned_partitions is not None:
            owned = [self._owned_part(one) for one in parsed]
            self.totals["not_owned"] += owned.count(None)
            parsed = [one for one in owned if one is not None]
        with self._lock:
            self._last_message = self.clock()
            late_before = self.detector.stats["late"]
            candidates = [s.tweet.id for s in parsed if s.tweet.id not in self.pending.id_set]
            known = self.store.known(candidates)
            for scored in parsed:
                tweet_id = scored.tweet.id
                self.pending.messages += 1
                if tweet_id in known or tweet_id in self.pending.id_set:
                    self.totals["duplicates"] += 1
                    self.pending.duplicates += 1
                    continue
                self.pending.ids.append(tweet_id)
                self.pending.id_set.add(tweet_id)
                for brand in dict.fromkeys(scored.tweet.brands):
                    self.pending.scored[(brand, scored.label)] += 1
                    self.pending.brands.add(brand)
                self.pending.alerts.extend(self.detector.observe(scored))
            self.pending.late += self.detector.stats["late"] - late_before
            latest = self.detector.latest_event_time
            if latest is not None and (self._event_clock is None or latest > self._event_clock[0]):
                self._event_clock = (latest, self._last_message)

    def _owned_part(self, scored: ScoredTweet) -> ScoredTweet | None:
        """The tweet restricted to the brands this instance owns (None: none of them)."""
        assert self.owned_partitions is not None
        brands = tuple(
            b for b in scored.tweet.brands if partition_of(b, self.partitions) in self.owned_partitions
        )
        if brands == scored.tweet.brands:
            return scored
        return replace(scored, tweet=replace(scored.tweet, brands=brands)) if brands else None

    def tick(self) -> bool:
        """On a quiet stream, close the minutes the event clock has passed; commit and dispatch their alerts.

        Call it whenever a pull brings nothing. It acts only when nothing is waiting for a commit and no
        message has come for `idle_quiet_s` (see the module docstring for how far it moves the watermark).
        Returns whether it closed minutes (and committed them). A failed commit is logged and the last
        committed state reloaded, like any checkpoint; the next tick tries again.
        """
        with self._lock:
            now = self.clock()
            if (
                self.pending.messages
                or self._event_clock is None
                or now - self._last_message < self.idle_quiet_s
            ):
                return False
            newest, arrived = self._event_clock
            event_now = min(now, newest + (now - arrived))
            before = self.detector.watermark
            alerts = self.detector.advance_watermark(
                event_now - self.detector.config.lateness_tolerance_s - self.idle_margin_s
            )
            if self.detector.watermark == before:
                return False
            self.pending.alerts.extend(alerts)
            self.pending.brands.update(self.detector.brands)  # every brand's minute closed: fresh metrics
            try:
                pending = self._commit()
            except Exception:
                return False
        self._report(pending)
        return True

    def due(self, interval_s: float, max_messages: int) -> bool:
        """Whether it is time to commit."""
        return self.pending.messages >= max_messages or time.monotonic() - self.last_checkpoint >= interval_s

    def checkpoint(self) -> None:
        """Commit ids + state + alerts in one transaction, then dispatch alerts and emit metrics.

        On a failed commit the detector is reloaded from the last committed state and the error is raised:
        the caller must not ack, so the messages come again.
        """
        with self._lock:
            pending = self._commit()
        self._report(pending)

    def _commit(self) -> PendingWork:
        """Commit and reset the pending work (the lock is held); reload the committed state on failure."""
        pending, self.pending = self.pending, PendingWork()
        pending.started = time.perf_counter()
        try:
            self.store.commit(pending.ids, self.detector.state_dict(), pending.alerts)
        except Exception:
            log.exception("checkpoint failed; resuming from the last committed state")
            self.detector = self._load_detector()
            raise
        finally:
            # The interval runs from the END of a commit: a commit slower than the interval (a large state)
            # would otherwise make every pull commit, and the service would do little else.
            self.last_checkpoint = time.monotonic()
        self.brand_states = self.detector.brand_states()
        self.totals["counted"] += len(pending.ids)
        self.totals["alerts"] += len(pending.alerts)
        self.totals["late"] += pending.late
        return pending

    def _report(self, pending: PendingWork) -> None:
        """Metrics of committed work, then the alerts out of the outbox."""
        for (brand, label), count in pending.scored.items():
            self.telemetry.metric(names.TWEETS_SCORED, count, {"brand": brand, "label": label})
        if pending.duplicates:
            self.telemetry.metric(names.DUPLICATES_SKIPPED, pending.duplicates, {"stage": "detection"})
        if pending.late:
            self.telemetry.metric(names.DEAD_LETTERED, pending.late, {"reason": "late", "stage": "detection"})
        watermark = self.detector.watermark  # the event time the figures are of (the app's time axis)
        for brand in sorted(pending.brands):
            snapshot = self.detector.snapshot(brand)
            dimensions = {"brand": brand}
            if watermark is not None:
                dimensions["event_time"] = format_timestamp(datetime.fromtimestamp(watermark, UTC))
            self.telemetry.metric(names.NEGATIVE_SHARE, snapshot["negative_share"], dimensions)
            self.telemetry.metric(names.BASELINE_NEGATIVE_SHARE, snapshot["baseline_share"], dimensions)
            self.telemetry.metric(names.SPIKE_SCORE, snapshot["score"], dimensions)
            self.telemetry.metric(names.TWEET_VOLUME, snapshot["volume"], dimensions)
            phase = self.brand_states.get(brand)
            if phase is not None:  # learning (it can alert meanwhile), normal or bad_buzz
                state_dimensions = {**dimensions, "state": phase["state"]}
                self.telemetry.metric(names.BRAND_STATE, phase["learning_progress"], state_dimensions)
        if pending.ids:
            self.telemetry.metric(
                names.PROCESSING_LATENCY_MS,
                (time.perf_counter() - pending.started) * 1000,
                {"stage": "checkpoint"},
            )
        if pending.alerts:
            crash_point("alert-committed")
        self.dispatch_outbox()

    def dispatch_outbox(self) -> int:
        """Spool, mark and announce every committed, unsent alert (also at start-up, after a crash).

        Safe to repeat at any point: the spool is idempotent per alert key and only the dispatch that marks
        the row records the event (the module docstring gives the order and why).
        """
        sent = 0
        for key, alert in self.store.undispatched():
            try:
                self.dispatcher.spool(key, alert)
                crash_point("alert-spooled")
                if self.store.mark_dispatched(key):
                    self.dispatcher.announce(key, alert)
                    sent += 1
                crash_point("alert-dispatched")
            except Exception:  # kept in the outbox, tried again at the next checkpoint
                log.exception("alert dispatch failed; will retry", extra={"alert_key": key})
        return sent


def serve_health(
    port: int,
    service: DetectionService,
    feed: RecordingTelemetry | None = None,
    host: str = "127.0.0.1",
    feed_auth: IdTokenPolicy | None = None,
    verifier: TokenVerifier | None = None,
) -> ThreadingHTTPServer:
    """`/healthz` for the container platform and, with a `feed`, the stream's latest figures for the app.

    `/healthz` also says each brand's phase as of the last commit: `"brands": {brand: {"state":
    "learning" | "normal" | "bad_buzz", "learning_progress", "minutes_seen", "episode_id"}}`; the feed
    carries it as the `brand_state` metric (dimensions brand and state, value the learning progress).

    `GET /v1/watch/metrics?since=ISO` and `/v1/watch/events?since=ISO` answer `{"records": [...]}` in the
    local sink's line format: what the Streamlit app's Watch it page reads where it cannot read that sink
    (Cloud Run). With `feed_auth` (DETECTION_FEED_AUTH_*), they need the app's ID token (401 otherwise), on
    top of Cloud Run's IAM. It binds loopback unless told otherwise (DETECTION_HOST=0.0.0.0 in a container).
    """
    checker = verifier or GoogleTokenVerifier()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            kind = url.path.removeprefix("/v1/watch/")
            if url.path in ("/healthz", "/readyz"):
                self._json(200, {"status": "ok", **service.totals, "brands": service.brand_states})
            elif feed is not None and url.path.startswith("/v1/watch/") and kind in ("metrics", "events"):
                if feed_auth is not None and not feed_auth.allows(
                    self.headers.get("Authorization", ""), checker
                ):
                    self._json(401, {"error": "missing or invalid ID token for the detection feed"})
                    return
                since = (parse_qs(url.query).get("since") or [None])[0]
                self._json(200, {"records": feed.recent(kind, since)})
            else:
                self._json(404, {"error": f"no route {url.path}"})

        def _json(self, status: int, payload: Mapping[str, Any]) -> None:
            body = json.dumps(payload, ensure_ascii=False, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
