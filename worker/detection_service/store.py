"""The detection database: the durable seen-id store, the detector state and the alert outbox.

SQLite locally (`<var_dir>/buzzwatch.db`), PostgreSQL through DATABASE_URL. A commit writes the new tweet
ids, the detector state and the alerts fired in one transaction (see the package docstring for why).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from buzzwatch.database import make_engine
from buzzwatch.schema import Alert, format_timestamp

log = logging.getLogger("buzzwatch.detection")

STATE_NAME = "buzz-detector"
metadata = sa.MetaData()
seen_tweets = sa.Table(
    "bw_seen_tweets",
    metadata,
    sa.Column("tweet_id", sa.String(64), primary_key=True),
    sa.Column("seen_at", sa.Float, nullable=False, index=True),
)
# The detector's global part (config, watermark, stats: `BuzzDetector.global_state_dict`), one row a
# state; a state saved whole by an earlier version holds its brands here too.
detector_state = sa.Table(
    "bw_detector_state",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
# One row a brand (`BuzzDetector.brand_state_dict`), rewritten only when the brand changed.
brand_state = sa.Table(
    "bw_brand_state",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),  # the state's name in bw_detector_state
    sa.Column("brand", sa.Text, primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),  # the brand's order of first appearance
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
        self._positions: dict[str, int] = {}  # the saved brands' positions (`load_state`, `commit`)
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
        """The last committed detector state (None: none saved): its global row with every brand's row.

        ValueError when a row is not JSON. A state saved whole by an earlier version (its brands inside
        the global row) comes back as it was saved: its brands carry no saved watermark, so the detector
        counts them changed and the next commit moves each to its own row. Brand rows left without their
        global row (deleted by hand) belong to no state: they are set aside, as `set_aside_state` does.
        """
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(detector_state.c.state).where(detector_state.c.name == STATE_NAME)
            ).first()
            brands = connection.execute(
                sa.select(brand_state.c.brand, brand_state.c.position, brand_state.c.state)
                .where(brand_state.c.name == STATE_NAME)
                .order_by(brand_state.c.position)
            ).all()
        self._positions = {}
        if row is None:
            if brands:
                self.set_aside_state()
            return None
        state = json.loads(row[0])
        saved = state.setdefault("brands", {})
        for brand, position, payload in brands:
            saved[brand] = json.loads(payload)
            self._positions[brand] = position
        return state

    def set_aside_state(self) -> str:
        """Rename the saved detector state's rows (kept for inspection), so the next start begins afresh."""
        aside = f"{STATE_NAME}.bad-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
        with self.engine.begin() as connection:
            for table in (detector_state, brand_state):
                connection.execute(sa.update(table).where(table.c.name == STATE_NAME).values(name=aside))
        self._positions = {}
        return aside

    def commit(self, new_ids: Sequence[str], state: Mapping[str, Any], alerts: Sequence[Alert]) -> None:
        """One transaction: the new ids, the state, the alerts. Raises if any id was already stored.

        `state` is shaped as `BuzzDetector.state_dict()`: its global part replaces the global row and each
        brand it holds replaces that brand's row; brands it leaves out keep theirs (an incremental
        checkpoint passes only `BuzzDetector.changed_brands()`).
        """
        now = time.time()
        brands: Mapping[str, Any] = state.get("brands", {})
        positions = dict(self._positions)
        rows = []
        for brand, payload in brands.items():
            position = positions.setdefault(brand, len(positions))
            rows.append(
                {
                    "name": STATE_NAME,
                    "brand": brand,
                    "position": position,
                    "state": json.dumps(payload),
                    "updated_at": now,
                }
            )
        global_part = json.dumps({key: value for key, value in state.items() if key != "brands"})
        names = list(brands)
        with self.engine.begin() as connection:
            if new_ids:
                connection.execute(seen_tweets.insert(), [{"tweet_id": i, "seen_at": now} for i in new_ids])
            connection.execute(sa.delete(detector_state).where(detector_state.c.name == STATE_NAME))
            connection.execute(
                detector_state.insert().values(name=STATE_NAME, state=global_part, updated_at=now)
            )
            for start in range(0, len(names), 500):
                connection.execute(
                    sa.delete(brand_state).where(
                        brand_state.c.name == STATE_NAME, brand_state.c.brand.in_(names[start : start + 500])
                    )
                )
            if rows:
                connection.execute(brand_state.insert(), rows)
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
        self._positions = positions

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
