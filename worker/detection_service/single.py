"""One counting detection service per database without partition groups: a second one stands by.

Two `detect` processes on one database and one subscription (a rollout's new revision started beside the
old one, a second copy started by mistake) each counted the messages Pub/Sub gave it with a detector of its
own and wrote the same state rows: each brand's baseline was the last writer's, and a bad buzz was alerted
by both. Now the single instance holds the database's instance row (`bw_group_owner`, group
`SINGLE_INSTANCE`) as an instance holds a partition group: taken (epoch + 1) when released or when its lease
ran out, renewed every third of `DETECTION_LEASE_S`, checked in the transaction of each commit and alert
claim (`FencedError`: nothing written), released after the last commit at a stop. Another instance stands
by meanwhile (`/healthz` 200, `"standby_for"`: the holder) and takes over within a third of a lease of the
holder's release (a rollout), or a lease after the holder died; it then loads what the holder committed and
pulls the same subscription, where what the holder had not acknowledged waits. A holder that lost the row
(stalled past its lease) stops counting and stands by.

The row is its holder's again at once after a restart with the same `DETECTION_INSTANCE_ID`, and when the
holder was a process of this machine that is gone (the default id is host and process id).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from buzzwatch.database import lock_wait_budget
from buzzwatch.pubsub import StreamTopology
from worker.detection_service.consumer import DetectionConsumer
from worker.detection_service.service import DetectionService
from worker.detection_service.settings import DetectionSettings
from worker.detection_service.store import (
    STOP_BUDGET_S,
    DetectionStore,
    FencedError,
    GroupOwner,
    Lease,
    retryable,
)

log = logging.getLogger("buzzwatch.detection")


def gone_from_this_machine(owner: str) -> bool:
    """Whether `owner` is a default instance id (host-pid) of this machine whose process no longer runs."""
    host, _, pid = owner.rpartition("-")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it runs, as another user
        return False
    return False


class SingleRunner:
    """The single instance's turn at the database (see the module docstring); /healthz's `HealthSource`."""

    def __init__(
        self,
        store: DetectionStore,
        settings: DetectionSettings,
        make_service: Callable[[DetectionStore], DetectionService],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings
        self.make_service = make_service
        self.clock = clock
        self.me = settings.instance_id
        self.service: DetectionService | None = None  # while it holds the database
        self.holder: str | None = None  # who holds it while this instance stands by
        self._renew_at = 0.0
        self._row_failing = False  # the ownership row cannot be read or written (said once a run)

    @property
    def totals(self) -> Mapping[str, Any]:
        """The service's counters; while standing by, who holds the database."""
        if self.service is None:
            return {"standby_for": self.holder}
        return self.service.totals

    @property
    def brand_states(self) -> Mapping[str, Any]:
        """Each brand's phase as of the last commit (none while standing by)."""
        return {} if self.service is None else self.service.brand_states

    @property
    def failing(self) -> Mapping[str, Any] | None:
        """While the service's commits fail: what `DetectionService.failing` says."""
        return None if self.service is None else self.service.failing

    def run(self, topology: StreamTopology, stop: threading.Event) -> None:
        """Until `stop`: wait for the database, count the stream while it is ours, stand by if it is lost;
        at the end commit and release it."""
        restarted = True  # at start-up, the row of an earlier life of this instance is taken at once
        while not stop.is_set():
            lease = self._take(stop, restarted)
            if lease is None:
                return
            restarted = False
            try:
                self.service = self.make_service(self.store.guarded(lease))
            except BaseException:  # a saved state that does not load (StateError): free for the next one
                self._release(lease)
                raise
            consumer = DetectionConsumer(self.service, self.settings)
            try:
                consumer.run(topology, stop, every_round=lambda held=lease: self._renew(held))
            except FencedError as exc:
                log.warning(f"another detection service took over; standing by ({exc})")
                self.service = None
                continue
            self._release(lease)
            return

    def _release(self, lease: Lease) -> None:
        """Free the database for the next instance, waiting at most half the stop's budget for a lock; a
        database that cannot take it now is said (its lease runs out by itself)."""
        try:
            with lock_wait_budget(STOP_BUDGET_S / 2):
                self.store.release(lease, self.clock(), keep_s=0.0)
        except Exception as exc:
            log.warning(
                "could not release the database; another instance takes it when its lease runs out",
                extra={"error": str(exc)[:300]},
            )

    def _take(self, stop: threading.Event, restarted: bool) -> Lease | None:
        """The database's instance row once it may be taken (None: stopped while standing by)."""
        said: str | None = None
        while not stop.is_set():
            try:
                row = self.store.single_owner()
                now = self.clock()
                takeable = self._takeable(row, now, restarted)
                lease = self.store.acquire(row, self.me, self.settings.lease_s, now) if takeable else None
            except Exception as exc:  # the database cannot answer now (full, locked, away): look again later
                if not retryable(exc):
                    raise
                self._database_failing(exc)
                stop.wait(self.settings.lease_s / 3)
                continue
            self._row_failing = False
            if lease is not None:
                self.holder = None
                self._renew_at = now + self.settings.lease_s / 3
                log.info("holds the detection database", extra={"database": self.store.location})
                if row.owner == self.me and row.lease_until >= now:
                    log.warning(  # an earlier life, or another live process given the same id
                        f"took the detection database over from a holder named {self.me} like this one, "
                        "its lease still running: a restart, or two processes with one "
                        "DETECTION_INSTANCE_ID (give each its own: the other one stands by now)",
                        extra={"database": self.store.location, "holder": row.owner},
                    )
                return lease
            if takeable:
                continue  # taken or renewed since read: look again
            self.holder = row.owner
            if said != row.owner:
                said = row.owner
                log.warning(
                    f"standing by: another detection service ({row.owner}) counts the stream of "
                    f"{self.store.location}; this one takes over when it stops",
                    extra={"database": self.store.location, "holder": row.owner},
                )
            stop.wait(min(self.settings.lease_s / 3, max(0.1, row.lease_until - now)))
        return None

    def _takeable(self, row: GroupOwner, now: float, restarted: bool) -> bool:
        """As a group (`GroupOwner.takeable_by`), or, at the start, its holder's process here is gone."""
        if row.takeable_by(self.me, now, restarted):
            return True
        return restarted and row.owner is not None and gone_from_this_machine(row.owner)

    def _renew(self, lease: Lease) -> None:
        """Every third of a lease, renew it; FencedError once another instance took the row. A database
        that cannot take the renewal now is tried again a second later (the commits say it fails): past
        the lease another instance may take over, and this one's commits are then refused."""
        now = self.clock()
        if now < self._renew_at:
            return
        try:
            renewed = self.store.renew(lease, self.settings.lease_s, now)
        except Exception as exc:
            if not retryable(exc):
                raise
            self._database_failing(exc)
            self._renew_at = now + 1.0
            return
        self._row_failing = False
        if not renewed:
            raise FencedError(f"the database has moved on from {lease.owner} (epoch {lease.epoch})")
        self._renew_at = now + self.settings.lease_s / 3

    def _database_failing(self, exc: Exception) -> None:
        """Say once per run of failures that the database's ownership row cannot be read or written."""
        if not self._row_failing:
            self._row_failing = True
            log.warning(
                "the detection database cannot be reached for its ownership row; trying again",
                extra={"database": self.store.location, "error": str(exc)[:300]},
            )
