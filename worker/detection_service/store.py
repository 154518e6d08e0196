"""The detection database: the durable seen-id store, the detector state and the alert outbox.

SQLite locally (`<var_dir>/buzzwatch.db`), PostgreSQL through DATABASE_URL. A commit writes the new tweet
ids, the detector state and the alerts fired in one transaction (see the package docstring for why).

Partition groups (DETECTION_GROUPS, `worker.detection_service.groups`) share one database between
instances: each group's rows are its own (state rows named `buzz-detector/g<k>`, seen ids in
`bw_group_seen_tweets` keyed by group, outbox rows carrying `group_id`), and `bw_group_owner` holds one
ownership row a group: its owner, an epoch raised by every takeover, and a lease. A group's store
(`for_group`) checks in each commit's transaction, before writing, that its lease's epoch is still the
row's: a stale owner's commit (a zombie, after the group moved) is refused (`FencedError`) and writes
nothing; so is its claim of an outbox row to mail (`claim_dispatch`). Without groups (the default) the
tables and rows are those of a single instance, as before.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from buzzwatch.database import make_engine
from buzzwatch.schema import MAX_ID_CHARS, Alert, format_timestamp
from worker.detection_service.settings import MAX_INSTANCE_ID_CHARS

log = logging.getLogger("buzzwatch.detection")

STATE_NAME = "buzz-detector"
metadata = sa.MetaData()
seen_tweets = sa.Table(
    "bw_seen_tweets",
    metadata,
    sa.Column("tweet_id", sa.String(MAX_ID_CHARS), primary_key=True),
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
    sa.Column("group_id", sa.Integer, nullable=True),  # the partition group (NULL: no groups); added on open
    # Partition groups: the epoch of the owner that claimed the row to spool its mail (`claim_dispatch`)
    sa.Column("claimed_epoch", sa.Integer, nullable=True),  # added on open; NULL: unclaimed or no groups
)
# Partition groups only: the seen ids of each group (a tweet naming brands of two groups counts in each).
group_seen_tweets = sa.Table(
    "bw_group_seen_tweets",
    metadata,
    sa.Column("group_id", sa.Integer, primary_key=True),
    sa.Column("tweet_id", sa.String(MAX_ID_CHARS), primary_key=True),
    sa.Column("seen_at", sa.Float, nullable=False, index=True),
)
# How long a stopping service's last commit and release may wait for a locked database, in all: the busy
# timeout (15 s a statement) made a SIGTERM take 43 s, past Cloud Run's 10 s grace, with a traceback.
STOP_BUDGET_S = 4.0

# The ownership row of the single instance (no groups): the group id no partition group has.
SINGLE_INSTANCE = -1

# Who owns each partition group, and the single instance's row (SINGLE_INSTANCE). Every takeover raises the
# epoch; a commit is fenced on it.
group_owner = sa.Table(
    "bw_group_owner",
    metadata,
    sa.Column("group_id", sa.Integer, primary_key=True),
    sa.Column("owner", sa.String(MAX_INSTANCE_ID_CHARS), nullable=True),  # NULL: released
    sa.Column("epoch", sa.Integer, nullable=False),
    sa.Column("lease_until", sa.Float, nullable=False),  # wall time; after it anyone may take the group
    # an instance asked for it (or it is kept for)
    sa.Column("handover_to", sa.String(MAX_INSTANCE_ID_CHARS), nullable=True),
)


def alert_key(alert: Alert) -> str:
    """One key per alert of an episode (new or update), stable across restarts."""
    return f"{alert.episode_id}|{alert.kind}|{format_timestamp(alert.fired_at)}"


RESET_HINT = (
    "set DETECTION_RESET_STATE=true to set it aside and start afresh (docs/runbook.md, detection-state)"
)


class StateError(RuntimeError):
    """The detection database or the detector state in it cannot be used; the message names it."""


class FencedError(RuntimeError):
    """A group's commit or alert claim after it moved on (a newer epoch): refused, nothing written."""


def retryable(exc: BaseException) -> bool:
    """Whether a failed commit may go through as it is later: the database full, locked, unreachable or
    failing over (not a row it refused, nor a fenced group)."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | OSError)


@dataclass(frozen=True)
class Lease:
    """One instance's ownership of a partition group, valid while the group's row keeps this epoch."""

    group: int
    owner: str
    epoch: int


@dataclass(frozen=True)
class GroupOwner:
    """A group's ownership row as read."""

    group: int
    owner: str | None
    epoch: int
    lease_until: float
    handover_to: str | None

    def takeable_by(self, instance: str, now: float, restarted: bool = True) -> bool:
        """Whether `instance` may take the group now: its own row (an earlier life of it: only while it
        starts, `restarted`), or a group released or with its lease run out, unless it was released for
        another instance who still has time.

        Later, its own name on the row is another process's (a rollout runs two revisions with one
        DETECTION_INSTANCE_ID): taken back at every look, the group went back and forth between them.
        """
        if self.owner == instance and restarted:
            return True
        if self.owner is not None and self.lease_until >= now:
            return False
        return self.handover_to in (None, instance) or self.lease_until < now


class DetectionStore:
    """The durable seen-id store, the detector state and the alert outbox (SQLAlchemy).

    A SQLite file that is not a database or is damaged is refused (StateError, naming the file) unless
    `reset_corrupt`: then it is renamed `<name>.corrupt-<UTC time>` (kept for inspection) and a new one made.
    """

    def __init__(self, database_url: str, reset_corrupt: bool = False) -> None:
        self.path: Path | None = None
        if database_url.startswith("sqlite:///"):
            self.path = Path(database_url.removeprefix("sqlite:///"))
        # a stop bounds its last statements' lock waits (`STOP_BUDGET_S`); others wait the default
        self.engine = make_engine(database_url, lock_wait_budgets=True)
        self._positions: dict[str, int] = {}  # the saved brands' positions (`load_state`, `commit`)
        self.lease: Lease | None = None  # a group's store (`for_group`): the ownership its commits need
        self.guard: Lease | None = None  # the single instance's store (`guarded`): the same, of its row
        self.brand_in_group: Callable[[str], bool] | None = None  # a group's store: which brands are its
        self.state_name = STATE_NAME
        self._inherited: list[
            str
        ] = []  # a group's brands loaded from the single-instance rows, not copied yet
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
        """Create the tables if missing (and columns added since); a damaged SQLite file is a StateError."""
        try:
            self._create_tables()
            self._add_missing_columns()
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

    def _create_tables(self) -> None:
        """The missing tables; made by another instance starting at the same moment, they are fine ("table
        already exists" when both saw them missing: the check and the creation are not one transaction)."""
        for attempt in range(3):
            try:
                metadata.create_all(self.engine)
                return
            except (sa.exc.OperationalError, sa.exc.ProgrammingError, sa.exc.IntegrityError) as exc:
                if attempt == 2 or "exist" not in str(exc.orig).lower():
                    raise
                time.sleep(0.1)

    def _add_missing_columns(self) -> None:
        """Add the columns a newer release added to an existing table (nullable, so old rows keep working)."""
        existing = {column["name"] for column in sa.inspect(self.engine).get_columns(alert_outbox.name)}
        for column in ("group_id", "claimed_epoch"):
            if column not in existing:
                with self.engine.begin() as connection:
                    connection.exec_driver_sql(f"ALTER TABLE {alert_outbox.name} ADD COLUMN {column} INTEGER")

    def for_group(self, lease: Lease, brand_in_group: Callable[[str], bool] | None = None) -> DetectionStore:
        """One partition group's view of the same database: its rows only, its commits fenced on `lease`.

        `brand_in_group` lets a group start from the single instance's saved state (`load_state`).
        """
        view = copy.copy(self)
        view.lease = lease
        view.brand_in_group = brand_in_group
        view.state_name = f"{STATE_NAME}/g{lease.group}"
        view._positions, view._inherited = {}, []
        return view

    def guarded(self, lease: Lease) -> DetectionStore:
        """The single instance's store while it holds the database's instance row (`lease`, of group
        SINGLE_INSTANCE): the same rows, its commits and alert claims refused once another instance took
        over (`FencedError`)."""
        view = copy.copy(self)
        view.guard = lease
        return view

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
        """Which of these ids were committed before (by this group, or before groups, by the instance)."""
        ids = list(dict.fromkeys(tweet_ids))
        found: set[str] = set()
        # a group also knows what the single instance committed before the database moved to groups
        sources = [seen_tweets] if self.lease is None else [group_seen_tweets, seen_tweets]
        with self.engine.connect() as connection:
            for table in sources:
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    condition = table.c.tweet_id.in_(chunk)
                    if table is group_seen_tweets:
                        condition = sa.and_(condition, *self._in_group(table))
                    found.update(connection.execute(sa.select(table.c.tweet_id).where(condition)).scalars())
        return found

    def _seen_table(self) -> sa.Table:
        """Where this store's seen ids are: by group with groups, else the single instance's table."""
        return seen_tweets if self.lease is None else group_seen_tweets

    def _in_group(self, table: sa.Table) -> list[sa.ColumnElement[bool]]:
        """The condition that keeps this group's rows of `table` (none without groups)."""
        return [] if self.lease is None else [table.c.group_id == self.lease.group]

    def load_state(self) -> dict[str, Any] | None:
        """The last committed detector state (None: none saved): its global row with every brand's row.

        ValueError when a row is not JSON. A state saved whole by an earlier version (its brands inside
        the global row) comes back as it was saved: its brands carry no saved watermark, so the detector
        counts them changed and the next commit moves each to its own row. Brand rows left without their
        global row (deleted by hand) belong to no state: they are set aside, as `set_aside_state` does.

        A group's store with no saved state yet starts from the single instance's state, if there is one
        (switching a database to partition groups): its global row and the rows of the group's brands
        (`brand_in_group`); the group's first commit copies the rows it does not rewrite, so from then on
        the group has all its rows under its own name.
        """
        self._positions, self._inherited = {}, []
        state = self._read_state(self.state_name, None)
        if state is None and self.lease is not None and self.brand_in_group is not None:
            state = self._read_state(STATE_NAME, self.brand_in_group)
            if state is not None:
                self._inherited = list(self._positions)
                log.info(
                    "partition group starts from the single-instance state",
                    extra={"group": self.lease.group, "brands": len(state["brands"])},
                )
        return state

    def _read_state(self, name: str, keep: Callable[[str], bool] | None) -> dict[str, Any] | None:
        """The state saved under `name` (only the brands `keep` accepts); its brands' positions noted."""
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(detector_state.c.state).where(detector_state.c.name == name)
            ).first()
            brands = connection.execute(
                sa.select(brand_state.c.brand, brand_state.c.position, brand_state.c.state)
                .where(brand_state.c.name == name)
                .order_by(brand_state.c.position)
            ).all()
        if row is None:
            if brands and keep is None:
                self.set_aside_state()
            return None
        state = json.loads(row[0])
        saved = state.setdefault("brands", {})
        for brand, position, payload in brands:
            saved[brand] = json.loads(payload)
            self._positions[brand] = position
        if keep is not None:
            state["brands"] = {brand: payload for brand, payload in saved.items() if keep(brand)}
            self._positions = {brand: p for brand, p in self._positions.items() if keep(brand)}
        return state

    def set_aside_state(self) -> str:
        """Rename the saved detector state's rows (kept for inspection), so the next start begins afresh."""
        aside = f"{self.state_name}.bad-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
        with self.engine.begin() as connection:
            for table in (detector_state, brand_state):
                connection.execute(sa.update(table).where(table.c.name == self.state_name).values(name=aside))
        self._positions = {}
        return aside

    def commit(self, new_ids: Sequence[str], state: Mapping[str, Any], alerts: Sequence[Alert]) -> None:
        """One transaction: the new ids, the state, the alerts. Raises if any id was already stored.

        A group's store first checks its lease in the same transaction (`FencedError`, nothing written,
        when the group has a newer epoch); the row stays locked until the commit, so no takeover slips in.

        `state` is shaped as `BuzzDetector.state_dict()`: its global part replaces the global row and each
        brand it holds replaces that brand's row; brands it leaves out keep theirs (an incremental
        checkpoint passes only `BuzzDetector.changed_brands()`).
        """
        now = time.time()
        brands: Mapping[str, Any] = state.get("brands", {})
        positions = dict(self._positions)
        next_position = max(positions.values(), default=-1) + 1  # (a group's inherited positions have gaps)
        rows = []
        for brand, payload in brands.items():
            if brand not in positions:
                positions[brand], next_position = next_position, next_position + 1
            position = positions[brand]
            rows.append(
                {
                    "name": self.state_name,
                    "brand": brand,
                    "position": position,
                    "state": json.dumps(payload),
                    "updated_at": now,
                }
            )
        global_part = json.dumps({key: value for key, value in state.items() if key != "brands"})
        names = list(brands)
        group = {} if self.lease is None else {"group_id": self.lease.group}
        with self.engine.begin() as connection:
            if self.lease is not None or self.guard is not None:
                self._fence(connection, self.lease or self.guard)  # type: ignore[arg-type]
            if new_ids:
                connection.execute(
                    self._seen_table().insert(), [{"tweet_id": i, "seen_at": now, **group} for i in new_ids]
                )
            connection.execute(sa.delete(detector_state).where(detector_state.c.name == self.state_name))
            connection.execute(
                detector_state.insert().values(name=self.state_name, state=global_part, updated_at=now)
            )
            for start in range(0, len(names), 500):
                connection.execute(
                    sa.delete(brand_state).where(
                        brand_state.c.name == self.state_name,
                        brand_state.c.brand.in_(names[start : start + 500]),
                    )
                )
            if rows:
                connection.execute(brand_state.insert(), rows)
            inherited = [brand for brand in self._inherited if brand not in brands]
            for start in range(0, len(inherited), 500):
                copied = sa.select(
                    sa.literal(self.state_name),
                    brand_state.c.brand,
                    brand_state.c.position,
                    brand_state.c.state,
                    brand_state.c.updated_at,
                ).where(
                    brand_state.c.name == STATE_NAME, brand_state.c.brand.in_(inherited[start : start + 500])
                )
                connection.execute(
                    brand_state.insert().from_select(
                        ["name", "brand", "position", "state", "updated_at"], copied
                    )
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
                            **group,
                        )
                    )
        self._positions, self._inherited = positions, []

    def undispatched(self) -> list[tuple[str, Alert]]:
        """Committed alerts not sent yet, oldest first."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(alert_outbox.c.alert_key, alert_outbox.c.payload)
                .where(alert_outbox.c.dispatched.is_(False), *self._in_group(alert_outbox))
                .order_by(alert_outbox.c.created_at, alert_outbox.c.alert_key)
            ).all()
        return [(key, Alert.from_dict(json.loads(payload))) for key, payload in rows]

    def claim_dispatch(self, key: str) -> float | None:
        """Claim an unsent alert to spool it here: until when the claim holds; None: not ours to send.

        Without groups there is nothing to claim (one instance at a time, one spool): the single instance
        checks that the database is still its own (`FencedError` otherwise) and its claim holds until its
        lease runs out (returned; infinity for a store without a lease, as tests make). A group's store
        claims the row in one transaction with the epoch check (`FencedError`, nothing written, when the
        group has a newer epoch): the row gets this lease's epoch unless it is sent or claimed by a newer
        epoch (None). The claim holds until the group's lease runs out (returned): before then no other
        instance can take the group, so none can claim the row.
        """
        if self.lease is None:
            if self.guard is None:
                return math.inf
            with self.engine.begin() as connection:
                return self._claim_until(connection, self.guard)
        lease = self.lease
        with self.engine.begin() as connection:
            lease_until = self._claim_until(connection, lease)
            result = connection.execute(
                sa.update(alert_outbox)
                .where(
                    alert_outbox.c.alert_key == key,
                    alert_outbox.c.dispatched.is_(False),
                    *self._in_group(alert_outbox),
                    sa.or_(
                        alert_outbox.c.claimed_epoch.is_(None), alert_outbox.c.claimed_epoch <= lease.epoch
                    ),
                )
                .values(claimed_epoch=lease.epoch)
            )
        return lease_until if result.rowcount == 1 else None

    def _claim_until(self, connection: sa.Connection, lease: Lease) -> float:
        """Until when an alert claimed under `lease` holds: its lease's end, checked still its own
        (`FencedError`, the row locked until the transaction ends)."""
        self._fence(connection, lease, "alert dispatch")
        return float(
            connection.execute(
                sa.select(group_owner.c.lease_until).where(group_owner.c.group_id == lease.group)
            ).scalar_one()
        )

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
        """How many tweet ids and alerts are stored (of this store's group, with groups)."""
        seen = self._seen_table()
        with self.engine.connect() as connection:
            tweets = connection.execute(
                sa.select(sa.func.count()).select_from(seen).where(*self._in_group(seen))
            ).scalar_one()
            alerts = connection.execute(
                sa.select(sa.func.count()).select_from(alert_outbox).where(*self._in_group(alert_outbox))
            ).scalar_one()
        return {"tweets": int(tweets), "alerts": int(alerts)}

    def prune(self, older_than_s: float) -> int:
        """Forget ids seen before `now - older_than_s` (redeliveries never come that late): a group's store
        its group's, the instance's store the single instance's (which groups' `known` reads after a switch
        to groups: `GroupRunner` prunes them once, not each group)."""
        cutoff = time.time() - older_than_s
        seen = self._seen_table()
        with self.engine.begin() as connection:
            result = connection.execute(sa.delete(seen).where(seen.c.seen_at < cutoff, *self._in_group(seen)))
        return int(result.rowcount or 0)

    def ensure_groups(self, groups: int) -> None:
        """An ownership row (released, epoch 0) for each of `groups` groups that has none yet."""
        self._ensure_owner_rows(range(groups))

    def _ensure_owner_rows(self, group_ids: Iterable[int]) -> None:
        """An ownership row (released, epoch 0) for each of these group ids that has none yet."""
        try:
            with self.engine.begin() as connection:
                present = set(connection.execute(sa.select(group_owner.c.group_id)).scalars())
                missing = [
                    {"group_id": group, "owner": None, "epoch": 0, "lease_until": 0.0, "handover_to": None}
                    for group in group_ids
                    if group not in present
                ]
                if missing:
                    connection.execute(group_owner.insert(), missing)
        except sa.exc.IntegrityError:  # another instance made them at the same moment
            pass

    def owners(self) -> dict[int, GroupOwner]:
        """Every partition group's ownership row (not the single instance's)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(group_owner).where(group_owner.c.group_id >= 0).order_by(group_owner.c.group_id)
            ).all()
        return {row.group_id: GroupOwner(*row) for row in rows}

    def single_owner(self) -> GroupOwner:
        """The single instance's ownership row (made, released, if missing)."""
        self._ensure_owner_rows([SINGLE_INSTANCE])
        with self.engine.connect() as connection:
            row = connection.execute(
                sa.select(group_owner).where(group_owner.c.group_id == SINGLE_INSTANCE)
            ).one()
        return GroupOwner(*row)

    def acquire(self, row: GroupOwner, owner: str, lease_s: float, now: float) -> Lease | None:
        """Take the group whose row was read as `row`: the next epoch, a fresh lease, no handover pending.

        None when the row changed since it was read (renewed, taken or released by someone else): a
        compare-and-set on the epoch and the lease, so two takers cannot both win.
        """
        with self.engine.begin() as connection:
            result = connection.execute(
                sa.update(group_owner)
                .where(
                    group_owner.c.group_id == row.group,
                    group_owner.c.epoch == row.epoch,
                    group_owner.c.lease_until == row.lease_until,
                )
                .values(owner=owner, epoch=row.epoch + 1, lease_until=now + lease_s, handover_to=None)
            )
        return Lease(row.group, owner, row.epoch + 1) if result.rowcount == 1 else None

    def renew(self, lease: Lease, lease_s: float, now: float) -> bool:
        """Extend the lease; False when the group has moved on (a newer epoch): it is no longer ours."""
        with self.engine.begin() as connection:
            result = connection.execute(
                sa.update(group_owner).where(*self._owned_by(lease)).values(lease_until=now + lease_s)
            )
        return result.rowcount == 1

    def release(self, lease: Lease, now: float, keep_s: float) -> bool:
        """Give the group up after a last commit; kept `keep_s` for the instance that asked for it, if any."""
        kept = sa.case((group_owner.c.handover_to.is_(None), 0.0), else_=now + keep_s)
        with self.engine.begin() as connection:
            result = connection.execute(
                sa.update(group_owner).where(*self._owned_by(lease)).values(owner=None, lease_until=kept)
            )
        return result.rowcount == 1

    def request_handover(self, group: int, instance: str) -> bool:
        """Ask the group's owner to hand it over to `instance` (False: no such group)."""
        with self.engine.begin() as connection:
            result = connection.execute(
                sa.update(group_owner).where(group_owner.c.group_id == group).values(handover_to=instance)
            )
        return result.rowcount == 1

    @staticmethod
    def _owned_by(lease: Lease) -> list[sa.ColumnElement[bool]]:
        """The condition that the group's row is still this lease's."""
        return [
            group_owner.c.group_id == lease.group,
            group_owner.c.owner == lease.owner,
            group_owner.c.epoch == lease.epoch,
        ]

    def _fence(self, connection: sa.Connection, lease: Lease, refused: str = "commit") -> None:
        """Refuse (FencedError) unless the lease still holds; the update locks the row until the commit."""
        result = connection.execute(
            sa.update(group_owner).where(*self._owned_by(lease)).values(epoch=lease.epoch)
        )
        if result.rowcount != 1:
            what = "the database" if lease.group == SINGLE_INSTANCE else f"partition group {lease.group}"
            raise FencedError(
                f"{what} has moved on from {lease.owner} (epoch {lease.epoch}): {refused} refused"
            )

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()


def read_rows(database_url: str, statement: sa.Select) -> list[Any]:
    """Rows of a detection database as another process sees it ([] before its file or its tables exist).

    For watching a running service from outside (tests, benchmarks): unlike `DetectionStore`, it makes
    neither the SQLite file nor the tables.
    """
    if database_url.startswith("sqlite:///") and not Path(database_url.removeprefix("sqlite:///")).exists():
        return []
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(statement))
    except sa.exc.DatabaseError:  # its tables are not made yet
        return []
    finally:
        engine.dispose()
