"""The detection service's side of Pub/Sub: pull, process, hold the acks, commit on a rhythm, then ack.

Exactly-once hinges on one order: a message is acknowledged only after the checkpoint that stored its tweet
id (with the detector state and the alerts) has committed. A failed commit nacks the held messages, so they
come again, and the service has reloaded its last committed state. A crash in between loses the held acks
and nothing else: Pub/Sub redelivers, and the ids already committed are recognised.

While the database cannot take a commit (a full disk, a database failing over: `CommitPending`) the
consumer keeps the processed work and its held messages and pulls nothing: it tries the same commit again
after 1 s, then twice as long each time up to a minute, and acks and pulls on once it went through. Each
delivery counts against the subscription's dead-letter limit (5): nacking and pulling on at once
dead-lettered every scored tweet within seconds. Held past their ack deadline, the messages come again
later, as copies of committed tweets (acked, not counted). After any other failed commit, nothing is kept:
the held messages are nacked and the consumer waits as long before pulling again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from google.cloud import pubsub_v1

from buzzwatch.database import lock_wait_budget
from buzzwatch.partitions import PARTITIONS_ATTRIBUTE, in_partitions
from buzzwatch.pubsub import StreamTopology, ack, attempt, nack, pull_loop, subscriber_client
from worker.detection_service.service import CommitPending, DetectionService
from worker.detection_service.settings import DetectionSettings
from worker.detection_service.store import STOP_BUDGET_S, FencedError

log = logging.getLogger("buzzwatch.detection")

PRUNE_EVERY_S = 3600.0  # how often the seen-id store forgets ids older than the retention
RETRY_FIRST_S, RETRY_LONGEST_S = 1.0, 60.0  # after a failed commit, the store is tried again this much later


class DetectionConsumer:
    """Owns the held acks and the commit rhythm of one detection service (one pull subscriber).

    A commit is due every `checkpoint_interval_s`, counted from the END of the previous commit (a commit
    slower than the interval, with a large state, must not make every pull commit), or once
    `checkpoint_max_messages` messages wait. `clock` is monotonic seconds.

    `owned` (a partition group's partitions): a message whose markers name none of them is acknowledged
    with the others, unread, as Pub/Sub's subscription filter would have dropped it (the emulator does not
    filter); a message without markers (from a worker older than the partitions) is read.
    """

    def __init__(
        self,
        service: DetectionService,
        settings: DetectionSettings,
        clock: Callable[[], float] = time.monotonic,
        owned: frozenset[int] | None = None,
    ) -> None:
        self.service = service
        self.owned = owned
        self.interval_s = settings.checkpoint_interval_s
        self.max_messages = settings.checkpoint_max_messages
        self.retention_s = settings.seen_retention_days * 86400
        self.clock = clock
        self.last_commit = clock()
        self._last_prune: float | None = None
        self._held: list[str] = []  # ack ids of processed messages not yet committed
        self._client: pubsub_v1.SubscriberClient | None = None
        self._path: str | None = None  # the subscription the held ack ids belong to
        self._retry_at: float | None = None  # while commits fail: when to try the store again
        self._retry_delay = 0.0

    def due(self) -> bool:
        """Whether it is time to commit."""
        return (
            self.service.pending.messages >= self.max_messages
            or self.clock() - self.last_commit >= self.interval_s
        )

    def on_batch(self, client: pubsub_v1.SubscriberClient, path: str, received: list[Any]) -> None:
        """Process a pulled batch, hold its acks, and commit when due."""
        self._client, self._path = client, path
        kept = received if self.owned is None else [r for r in received if self._reads(r.message.attributes)]
        self.service.totals["not_owned"] += len(received) - len(kept)
        self.service.process([bytes(r.message.data) for r in kept])
        self._held.extend(r.ack_id for r in received)
        if self.due():
            self.commit()

    def _reads(self, attributes: Any) -> bool:
        """Whether a message is one of the owned partitions' (or carries no partition markers)."""
        assert self.owned is not None
        return PARTITIONS_ATTRIBUTE not in attributes or in_partitions(attributes, self.owned)

    def ready(self) -> bool:
        """Whether to pull: not until the retry time after a failed commit, nor while kept work is not
        committed (tried again at each retry time)."""
        if self._retry_at is None:
            return True
        if self.clock() < self._retry_at:
            return False
        if self.service.kept:
            return self.commit()
        self._retry_at = None
        return True

    def _failed(self) -> None:
        """A commit failed: pull nothing until the next retry time (1 s, doubling up to RETRY_LONGEST_S)."""
        self._retry_delay = min(max(RETRY_FIRST_S, 2 * self._retry_delay), RETRY_LONGEST_S)
        self._retry_at = self.clock() + self._retry_delay

    def on_idle(self) -> None:
        """A pull found nothing: commit what waits, else let the idle watermark close quiet minutes."""
        if self._held or self.service.pending.messages:
            self.commit()
            return
        try:
            ticked = self.service.tick()
        except FencedError:
            raise
        except Exception:
            self._failed()
            return
        if ticked:
            self._retry_delay = 0.0
            self.last_commit = self.clock()
        elif self.due():  # retry alerts a failed dispatch left in the outbox
            self.service.dispatch_outbox()
            self.last_commit = self.clock()

    def commit(self) -> bool:
        """Checkpoint, then ack what was held; whether it committed. A commit to try again later
        (`CommitPending`) keeps what was held; any other failure nacks it (it comes again).

        A checkpoint refused because the partition group moved on raises FencedError, after the nack: the
        group's new owner gets the messages.
        """
        held, self._held = self._held, []  # a failed ack (emulator restarted) must not poison the next ones
        try:
            self.service.checkpoint()
        except CommitPending:
            self._held = held + self._held
            self._failed()
            return False
        except Exception as exc:
            self.abandon(held)
            if isinstance(exc, FencedError):
                raise
            self._failed()
            return False
        finally:
            self.last_commit = self.clock()
        self._retry_at, self._retry_delay = None, 0.0
        if held and self._client is not None and self._path is not None:
            ack(self._client, self._path, held)
        if self._last_prune is None or self.clock() - self._last_prune > PRUNE_EVERY_S:
            self._last_prune = self.clock()
            self.service.store.prune(self.retention_s)
        return True

    def abandon(self, held: list[str] | None = None) -> None:
        """Nack these held messages (default: all held), so they come again, here or to another owner."""
        if held is None:
            held, self._held = self._held, []
        if held and self._client is not None and self._path is not None:
            client, path = self._client, self._path
            attempt(lambda: nack(client, path, held), "nack")

    def run(
        self, topology: StreamTopology, stop: threading.Event, every_round: Callable[[], None] | None = None
    ) -> None:
        """Consume the scored subscription until `stop`, then commit and ack what is held.

        A Pub/Sub that does not answer at the start is `PubSubUnreachableError` after the topology's
        `start_timeout_s` (the command's one line), not a pull retried for ever. `every_round` runs before
        each pull (the single instance's lease keeping: what it raises ends the run, after the last commit).
        """
        topology.ensure_before_pulling([topology.scored_spec(), topology.dead_letter_spec()])
        self.service.dispatch_outbox()  # what a crash left committed but unsent
        try:
            pull_loop(
                topology.project,
                topology.scored_subscription,
                self.on_batch,
                topology.ensure_scored_path,  # a lost subscription (emulator restarted) is recreated
                stop,
                max_messages=100,
                idle=self.on_idle,
                ready=self.ready,
                every_round=every_round,
                emulator_host=topology.emulator_host,
            )
        finally:
            self._final_commit(topology.emulator_host)

    def _final_commit(self, emulator_host: str | None) -> None:
        """The last checkpoint at shutdown; the pull loop's client is closed, so a fresh one (at the
        topology's `emulator_host`, if any) acks, or nacks what a failed checkpoint did not store: the
        instance that takes over gets it at once (it waited out the 60 s ack deadline)."""
        if not (self._held or self.service.pending.messages) or self._path is None:
            return
        held, self._held = self._held, []
        path = self._path
        fresh = subscriber_client(emulator_host)
        try:
            try:
                with lock_wait_budget(STOP_BUDGET_S / 2):  # the other half for the release (`SingleRunner`)
                    self.service.checkpoint()
            except Exception as exc:  # fenced (another instance took over), the database locked, ...
                log.warning("final checkpoint failed; its messages handed back", extra={"error": str(exc)})
                attempt(lambda: nack(fresh, path, held), "nack")
                return
            attempt(lambda: ack(fresh, path, held), "ack")
        finally:
            fresh.close()
