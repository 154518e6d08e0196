"""Durable state of the API through SQLAlchemy: the prediction log, the feedback and the drift cooldown.

A SQLite file under `var/` by default, PostgreSQL through `DATABASE_URL`. Predictions are logged so that
feedback can name a prediction by its id alone; they are written by a background thread in small
batches (the predict route only appends to a queue) and pruned after a retention period. Feedback is
stored once per prediction id: the unique constraint is the arbiter, across processes and instances.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    case,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from buzzwatch.database import is_lock_timeout, lock_wait_left_s, make_engine

logger = logging.getLogger(__name__)

WRITE_PROBE = "write_probe"  # the row of the secrets table each write check (`write_problem`) rewrites
MAX_CLOCK_SKEW_S = 1.0  # an id from an instance whose clock runs this far ahead still counts as new

metadata = MetaData()

predictions_table = Table(
    "api_predictions",
    metadata,
    Column("prediction_id", String(64), primary_key=True),
    Column("text", Text, nullable=False),
    Column("label", String(16), nullable=False),
    Column("probabilities", Text, nullable=False),
    Column("model_version", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
)

feedback_table = Table(
    "api_feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("prediction_id", String(64), nullable=False, unique=True),
    Column("text", Text, nullable=False),
    Column("predicted_label", String(16), nullable=False),
    Column("correct_label", String(16), nullable=False),
    Column("correct", Boolean, nullable=False),
    Column("comment", Text, nullable=True),
    Column("model_version", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("provenance", String(32), nullable=True),  # FEEDBACK_PROVENANCES; None: stored before it existed
)

secrets_table = Table(
    "api_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(128), nullable=False),
)

drift_table = Table(
    "api_drift_monitor",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("last_fired_at", DateTime(timezone=True), nullable=True),
)

EXPORT_COLUMNS = (
    "text",
    "label",
    "predicted_label",
    "model_version",
    "created_at",
    "prediction_id",
    "comment",
    "provenance",
)


class PredictionIds:
    """Issues prediction ids and recognises its own: time (12 hex, ms) + random (20 hex) + HMAC tag (16 hex).

    Time first, so the feedback route can tell a brand-new prediction (still in another worker's write queue:
    worth waiting a moment for) from an old one; the tag, keyed by a secret every worker and instance reads
    from the database, proves the API issued the id, so a made-up id is answered at once, never awaited.
    """

    LENGTH = 48

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _tag(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:16]

    def new(self) -> str:
        """A fresh id for one prediction."""
        body = f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"
        return body + self._tag(body)

    def issued_age_s(self, prediction_id: str) -> float | None:
        """Seconds since this API issued the id; None when the API did not issue it (no valid tag)."""
        if len(prediction_id) != self.LENGTH:
            return None
        body, tag = prediction_id[:32], prediction_id[32:]
        if not hmac.compare_digest(tag.encode(), self._tag(body).encode()):
            return None
        return time.time() - int(body[:12], 16) / 1000.0


class DuplicateFeedback(Exception):
    """Feedback for this prediction id is already stored."""


class StoreUnwritable(Exception):
    """The database refused a write (full or read-only disk, server down); the message names it."""


class StoreBusy(StoreUnwritable):
    """Another process held the database's lock for longer than this request's lock-wait budget."""


@dataclass(frozen=True)
class LoggedPrediction:
    """A prediction the API made, as the feedback route needs it."""

    prediction_id: str
    text: str
    label: str
    model_version: str


@dataclass(frozen=True)
class FeedbackRecord:
    """One piece of feedback on one prediction."""

    prediction_id: str
    text: str
    predicted_label: str
    correct_label: str
    comment: str | None
    model_version: str
    created_at: datetime
    provenance: str | None = None  # who wrote it: one of FEEDBACK_PROVENANCES

    @property
    def correct(self) -> bool:
        """Whether the model was right."""
        return self.predicted_label == self.correct_label


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time in BuzzWatch is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class FeedbackStore:
    """The API's tables: prediction log, feedback, drift cooldown."""

    def __init__(
        self,
        database_url: str,
        *,
        flush_interval_s: float = 0.2,
        max_pending: int = 100_000,
        retention_s: float = 7 * 24 * 3600.0,
        max_logged: int = 100_000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.engine = make_engine(database_url, lock_wait_budgets=True)
        self._flush_interval_s = flush_interval_s
        self._max_pending = max_pending
        self.dropped_predictions = 0
        self._retention_s = retention_s
        self._max_logged = max_logged
        self._logged_since_prune = 0
        self._clock = clock
        self._sleep = sleep  # each wait for another worker's queued prediction (find_prediction)
        self._pending: list[dict[str, Any]] = []  # under _pending_lock
        self._in_flight: list[dict[str, Any]] = []  # the rows a flush is writing now, under _pending_lock
        self._pending_lock = threading.Lock()
        self.write_error: str | None = None  # why the last write failed (names the database), until one works
        self._writer_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._writer_pid: int | None = None
        self._stopping = threading.Event()
        self._last_prune = 0.0
        self._create_tables()
        self.ids = PredictionIds(self._shared_secret("prediction_id_key"))

    def _create_tables(self) -> None:
        """Create the tables, and columns added since a database was made; workers may race to do it."""
        for attempt in range(5):
            try:
                metadata.create_all(self.engine, checkfirst=True)
                self._add_missing_columns()
                return
            except (OperationalError, ProgrammingError, IntegrityError):
                if attempt == 4:
                    raise
                time.sleep(0.1 * (attempt + 1))

    def _add_missing_columns(self) -> None:
        """Add the nullable columns a table made by an older version lacks (its rows get NULL)."""
        for table in (feedback_table,):
            present = {column["name"] for column in inspect(self.engine).get_columns(table.name)}
            for column in table.columns:
                if column.name not in present:
                    kind = column.type.compile(dialect=self.engine.dialect)
                    with self.engine.begin() as connection:
                        connection.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))

    def _shared_secret(self, name: str) -> bytes:
        """A random key made once and kept in the database, so every worker and instance has the same."""
        lookup = select(secrets_table.c.value).where(secrets_table.c.name == name)
        with self.engine.begin() as connection:
            value = connection.execute(lookup).scalar_one_or_none()
            if value is None:
                try:
                    with connection.begin_nested():
                        made = secrets.token_hex(32)
                        connection.execute(insert(secrets_table).values(name=name, value=made))
                except IntegrityError:  # another worker made it first: use theirs
                    pass
                value = connection.execute(lookup).scalar_one()
        return bytes.fromhex(value)

    @property
    def location(self) -> str:
        """The database, as an operator finds it: the SQLite file's path, else the URL without password."""
        url = self.engine.url
        if url.get_backend_name() == "sqlite":
            return str(Path(url.database).resolve()) if url.database else ":memory:"
        return url.render_as_string(hide_password=True)

    def _write_failed(self, exc: Exception) -> StoreUnwritable:
        """Remember and log (once per outage) why a write failed; the error to raise, naming the database."""
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        if is_lock_timeout(exc):  # nothing is broken: another process holds the lock; logged by the caller
            return StoreBusy(f"the database {self.location} is busy (another process holds a lock): {reason}")
        message = f"the database {self.location} cannot be written: {reason}"
        if self.write_error is None:
            logger.error("database write failed", extra={"database": self.location, "error": reason})
        self.write_error = message
        return StoreUnwritable(message)

    def _write_worked(self) -> None:
        if self.write_error is not None:
            logger.warning("database writes work again", extra={"database": self.location})
        self.write_error = None

    def write_problem(self) -> StoreUnwritable | None:
        """None when the database takes writes now (queued predictions are written first); else why not."""
        try:
            self.flush()
            # An update of the one probe row (made once, as a shared secret is): workers checking at once
            # wait for each other's row lock. New content: SQLite skips rewriting an identical row.
            probe = secrets_table.update().where(secrets_table.c.name == WRITE_PROBE)
            with self.engine.begin() as connection:
                written = connection.execute(probe.values(value=secrets.token_hex(8))).rowcount
            if written == 0:  # a database made before the probe row, or the row deleted by hand
                self._shared_secret(WRITE_PROBE)
        except StoreUnwritable as exc:
            return exc
        except Exception as exc:
            return self._write_failed(exc)
        self._write_worked()
        return None

    # ---- health -------------------------------------------------------------------------------------

    def ping(self) -> bool:
        """True when the database answers."""
        try:
            with self.engine.connect() as connection:
                connection.execute(select(1))
            return True
        except OperationalError:
            return False

    # ---- prediction log -----------------------------------------------------------------------------

    def log_predictions(self, rows: list[LoggedPrediction], probabilities: list[dict[str, float]]) -> None:
        """Queue predictions for the background writer; never blocks the request on the database."""
        now = self._clock()
        queued = [
            {
                "prediction_id": row.prediction_id,
                "text": row.text,
                "label": row.label,
                "probabilities": json.dumps(probs, separators=(",", ":")),
                "model_version": row.model_version,
                "created_at": now,
            }
            for row, probs in zip(rows, probabilities, strict=True)
        ]
        with self._pending_lock:
            self._pending.extend(queued)
        self._ensure_writer()

    def _ensure_writer(self) -> None:
        """Start the writer thread in this process (after a fork, the parent's thread is gone)."""
        if self._writer_pid == os.getpid():
            return
        with self._writer_lock:
            if self._writer_pid == os.getpid():
                return
            self._writer_pid = os.getpid()
            threading.Thread(target=self._writer_loop, name="prediction-log-writer", daemon=True).start()

    def _writer_loop(self) -> None:
        while not self._stopping.wait(self._flush_interval_s):
            try:
                self.flush()
                self._maybe_prune()
            except StoreBusy as exc:  # another process holds the lock; the rows stay queued
                logger.warning("prediction log writer waits for the database", extra={"error": str(exc)})
            except StoreUnwritable:  # logged once per outage by _write_failed; the rows stay queued
                pass
            except Exception:  # the writer must outlive any database hiccup
                logger.exception("prediction log flush failed")

    def flush(self) -> int:
        """Write every queued prediction now; returns how many were written (StoreUnwritable: none).

        Inside a lock-wait budget (a request), waiting for another thread's flush counts against it too.
        """
        budget_s = lock_wait_left_s()
        if not self._flush_lock.acquire(timeout=-1 if budget_s is None else budget_s):
            raise StoreBusy(
                f"the database {self.location} is busy: this process's prediction log writer has been "
                "waiting for its lock"
            )
        try:
            return self._flush_locked()
        finally:
            self._flush_lock.release()

    def _flush_locked(self) -> int:
        with self._pending_lock:
            rows, self._pending = self._pending, []
            self._in_flight = rows
        if not rows:
            return 0
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(predictions_table), rows)
        except Exception as exc:
            with self._pending_lock:
                self._in_flight = []
                if len(self._pending) + len(rows) <= self._max_pending:
                    self._pending[:0] = rows  # kept for the next flush: the database may be back by then
                else:  # bounded memory during a long outage; feedback by text still works for these
                    self.dropped_predictions += len(rows)
                    logger.error("prediction log full: %d predictions not logged", len(rows))
            raise self._write_failed(exc) from exc
        with self._pending_lock:
            self._in_flight = []
        self._write_worked()
        self._logged_since_prune += len(rows)
        if self._logged_since_prune >= max(1, self._max_logged // 10):
            try:  # the rows are written: a prune that fails (a busy database) is tried again later
                self.prune()
            except Exception as exc:
                logger.warning("prediction log prune failed", extra={"error": str(exc).splitlines()[0]})
        return len(rows)

    def _maybe_prune(self) -> None:
        if time.monotonic() - self._last_prune >= 600:
            self.prune()

    def prune(self) -> int:
        """Drop logged predictions past the retention, then the oldest beyond the row cap; how many went.

        Checked every 10 minutes and whenever this process has logged a tenth of the cap, so the log stays
        within about the cap (plus a tenth per worker) however fast predictions come.
        """
        self._last_prune = time.monotonic()
        self._logged_since_prune = 0
        cutoff = self._clock() - timedelta(seconds=self._retention_s)
        with self.engine.begin() as connection:
            dropped = connection.execute(
                predictions_table.delete().where(predictions_table.c.created_at < cutoff)
            ).rowcount
            count = connection.execute(select(func.count()).select_from(predictions_table)).scalar_one()
            excess = count - self._max_logged
            # the earliest ids, as `dropped_from_log` reads the log (a batch's rows share one time)
            if excess > 0:
                oldest = (
                    select(predictions_table.c.prediction_id)
                    .order_by(predictions_table.c.prediction_id)
                    .limit(excess)
                )
                dropped += connection.execute(
                    predictions_table.delete().where(predictions_table.c.prediction_id.in_(oldest))
                ).rowcount
        return dropped

    def find_prediction(self, prediction_id: str) -> LoggedPrediction | None:
        """The logged prediction with this id, or None.

        A prediction made a moment ago by another worker may still be in that worker's write queue: for an
        id this API issued (its tag checks out) less than two flush intervals ago, look again until it is
        that old. Any other id is answered at once, so made-up ids cannot tie up the server's threads.
        """
        with contextlib.suppress(StoreUnwritable):  # still queued here, then: found below
            self.flush()
        found = self._select_prediction(prediction_id) or self._queued_prediction(prediction_id)
        age = self.ids.issued_age_s(prediction_id)
        wait_s = 2 * self._flush_interval_s
        if found is not None or age is None or not -MAX_CLOCK_SKEW_S < age < wait_s:
            return found
        deadline = time.monotonic() + min(wait_s - age, wait_s) + 0.05
        while found is None and time.monotonic() < deadline:
            self._sleep(min(0.05, self._flush_interval_s / 2))
            found = self._select_prediction(prediction_id)
        return found

    def dropped_from_log(self, prediction_id: str) -> bool:
        """Whether the row cap dropped this id's prediction: the log is full and keeps only later ones.

        Ids begin with the time they were issued (fixed-width hex), so they sort by it. A log under its cap
        has dropped nothing this recent (the retention is at least a minute): its oldest row may be another
        worker's later prediction, written while this id's worker still queues it (a busy database).
        """
        with self.engine.connect() as connection:
            oldest, count = connection.execute(
                select(func.min(predictions_table.c.prediction_id), func.count())
            ).one()
        return oldest is not None and oldest > prediction_id and count >= self._max_logged

    def _queued_prediction(self, prediction_id: str) -> LoggedPrediction | None:
        """A prediction of this process not written yet (queued, or being written by a flush)."""
        with self._pending_lock:
            for row in itertools.chain(self._in_flight, self._pending):
                if row["prediction_id"] == prediction_id:
                    return LoggedPrediction(prediction_id, row["text"], row["label"], row["model_version"])
        return None

    def _select_prediction(self, prediction_id: str) -> LoggedPrediction | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(
                    predictions_table.c.prediction_id,
                    predictions_table.c.text,
                    predictions_table.c.label,
                    predictions_table.c.model_version,
                ).where(predictions_table.c.prediction_id == prediction_id)
            ).first()
        return None if row is None else LoggedPrediction(*row)

    def close(self) -> None:
        """Stop the writer after a last flush and release the connections."""
        self._stopping.set()
        try:
            self.flush()
        finally:
            self.engine.dispose()

    # ---- feedback -----------------------------------------------------------------------------------

    def add_feedback(self, record: FeedbackRecord) -> None:
        """Store feedback once: DuplicateFeedback when the prediction has some; StoreUnwritable if refused."""
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    insert(feedback_table).values(
                        prediction_id=record.prediction_id,
                        text=record.text,
                        predicted_label=record.predicted_label,
                        correct_label=record.correct_label,
                        correct=record.correct,
                        comment=record.comment,
                        model_version=record.model_version,
                        created_at=record.created_at,
                        provenance=record.provenance,
                    )
                )
        except IntegrityError as exc:
            raise DuplicateFeedback(record.prediction_id) from exc
        except (OperationalError, OSError) as exc:
            raise self._write_failed(exc) from exc
        self._write_worked()

    def feedback_counts_since(self, since: datetime, model_version: str) -> tuple[int, int]:
        """(all feedback, wrong predictions) on one model version's predictions received since a moment."""
        with self.engine.connect() as connection:
            total, wrong = connection.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(case((feedback_table.c.correct.is_(False), 1), else_=0)), 0),
                ).where(
                    (feedback_table.c.created_at >= since) & (feedback_table.c.model_version == model_version)
                )
            ).one()
        return int(total), int(wrong)

    def wrong_feedback_since(
        self, since: datetime, model_version: str, limit: int = 10
    ) -> tuple[list[str], dict[str, int]]:
        """One model version's latest wrong predictions' ids (newest first) and its wrong ones counted by
        provenance."""
        wrong = (
            feedback_table.c.correct.is_(False)
            & (feedback_table.c.created_at >= since)
            & (feedback_table.c.model_version == model_version)
        )
        with self.engine.connect() as connection:
            ids = connection.execute(
                select(feedback_table.c.prediction_id)
                .where(wrong)
                .order_by(feedback_table.c.id.desc())
                .limit(limit)
            ).scalars()
            counts = connection.execute(
                select(feedback_table.c.provenance, func.count())
                .where(wrong)
                .group_by(feedback_table.c.provenance)
            ).all()
            return list(ids), {provenance or "unknown": int(count) for provenance, count in counts}

    def feedback_stats(self) -> dict[str, Any]:
        """Totals and the predicted-by-correct label counts of every feedback received."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(
                    feedback_table.c.predicted_label,
                    feedback_table.c.correct_label,
                    func.count(),
                    func.max(feedback_table.c.created_at),
                ).group_by(feedback_table.c.predicted_label, feedback_table.c.correct_label)
            ).all()
        pairs = [{"predicted": p, "correct": c, "count": int(n)} for p, c, n, _ in rows]
        latest = max((_utc(last) for *_, last in rows if last is not None), default=None)
        total = sum(pair["count"] for pair in pairs)
        wrong = sum(pair["count"] for pair in pairs if pair["predicted"] != pair["correct"])
        return {
            "total": total,
            "wrong": wrong,
            "correct": total - wrong,
            "pairs": pairs,
            "last_received_at": None if latest is None else latest.isoformat().replace("+00:00", "Z"),
        }

    def iter_feedback(self) -> Iterator[FeedbackRecord]:
        """Every feedback record, oldest first, streamed from the database."""
        with self.engine.connect() as connection:
            result = connection.execution_options(stream_results=True, yield_per=500).execute(
                select(
                    feedback_table.c.prediction_id,
                    feedback_table.c.text,
                    feedback_table.c.predicted_label,
                    feedback_table.c.correct_label,
                    feedback_table.c.comment,
                    feedback_table.c.model_version,
                    feedback_table.c.created_at,
                    feedback_table.c.provenance,
                ).order_by(feedback_table.c.id)
            )
            for row in result:
                yield FeedbackRecord(*row[:6], created_at=_utc(row[6]), provenance=row[7])

    # ---- drift cooldown -----------------------------------------------------------------------------

    def claim_drift_alert(self, now: datetime, cooldown_s: float, name: str = "model") -> bool:
        """Atomically take the right to fire a drift alert; False while the cooldown runs."""
        cutoff = now - timedelta(seconds=cooldown_s)
        with self.engine.begin() as connection:
            try:
                with connection.begin_nested():
                    connection.execute(insert(drift_table).values(name=name, last_fired_at=now))
                return True
            except IntegrityError:
                pass
            result = connection.execute(
                update(drift_table)
                .where(drift_table.c.name == name)
                .where((drift_table.c.last_fired_at.is_(None)) | (drift_table.c.last_fired_at < cutoff))
                .values(last_fired_at=now)
            )
            return result.rowcount == 1

    def release_drift_alert(self, claimed_at: datetime, name: str = "model") -> None:
        """Give back a claim whose alert could not be sent, so the next check may fire it (if still ours)."""
        with self.engine.begin() as connection:
            connection.execute(
                update(drift_table)
                .where(drift_table.c.name == name)
                .where(drift_table.c.last_fired_at == claimed_at)
                .values(last_fired_at=None)
            )

    def last_drift_alert(self, name: str = "model") -> datetime | None:
        """When the last drift alert fired."""
        with self.engine.connect() as connection:
            value = connection.execute(
                select(drift_table.c.last_fired_at).where(drift_table.c.name == name)
            ).scalar_one_or_none()
        return None if value is None else _utc(value)
