"""Partition groups that move between running detection instances sharing one database (DETECTION_GROUPS).

The partitions are gathered into `BUZZWATCH_PARTITION_GROUPS` groups (`split_partitions`). Each group has
its own subscription to the scored topic (`<PUBSUB_SCORED_SUBSCRIPTION>-g<k>`, filtered on its partitions'
markers), its own rows in the shared database (state, seen ids, outbox: `store.for_group`) and an ownership
row with an epoch and a lease (`bw_group_owner`). An instance (`GroupRunner`) owns a set of groups: it pulls
their subscriptions in turn, each group with its own `DetectionService` and `DetectionConsumer` (held acks,
a checkpoint every 2 s), and every third of a lease it renews its leases and looks at the others.

Moving a group from A to B: B asks for it (`DETECTION_GROUPS` naming it, or `buzzwatch detect --move G
--to B`), which sets the row's `handover_to`. A, at its next look, stops pulling the group, commits what it
processed, acks it and releases the row (kept a lease's length for B). B takes the row (epoch + 1), loads
the group's rows and pulls the same subscription, where what A had not acknowledged waits; a tweet already
committed by A that comes again is recognised by the group's seen ids. If A dies instead, its lease runs
out and any instance wanting the group takes it; what A held comes again after the ack deadline. If A only
stalled (a zombie) and wakes up after the move, its next commit is refused in the same transaction by the
epoch check (`FencedError`, nothing written), it nacks what it held and drops the group; so is its claim
of a committed alert to mail (`worker.detection_service.dispatcher`: it spools nothing).

`DETECTION_GROUPS=all` takes every group that is free and asks for none: started alone it owns everything;
started beside others it is a standby that takes the groups of an instance that stops or dies.

A row in an instance's own name is taken at once only at its start (a restart: its earlier life's). A
rollout runs the new revision beside the old one with the same DETECTION_INSTANCE_ID: the new one takes the
groups at its start, and the old one, fenced, does not take them back (it did at every look, a third of a
lease, until it stopped).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from google.cloud import pubsub_v1

from buzzwatch.database import lock_wait_budget
from buzzwatch.partitions import group_subscription_name, owned_filter, partition_of, split_partitions
from buzzwatch.pubsub import (
    PullTarget,
    StreamTopology,
    SubscriptionSpec,
    ensure_subscription,
    pull_targets,
    subscriber_client,
    subscription_path,
)
from worker.detection_service.consumer import PRUNE_EVERY_S, DetectionConsumer
from worker.detection_service.service import DetectionService
from worker.detection_service.settings import DetectionSettings
from worker.detection_service.store import STOP_BUDGET_S, DetectionStore, FencedError, Lease, retryable

log = logging.getLogger("buzzwatch.detection")

# Builds a group's service from its store and its partitions (the entry point's wiring).
ServiceFactory = Callable[[DetectionStore, frozenset[int]], DetectionService]


def group_subscription(topology: StreamTopology, group: int) -> str:
    """The name of a partition group's subscription to the scored topic."""
    return group_subscription_name(topology.scored_subscription, group)


def group_spec(
    topology: StreamTopology, group: int, members: frozenset[int], partitions: int
) -> SubscriptionSpec:
    """A group's subscription: the detection subscription's settings, filtered on the group's partitions."""
    return replace(
        topology.scored_spec(),
        name=group_subscription(topology, group),
        filter=owned_filter(members, partitions),
    )


@dataclass
class OwnedGroup:
    """A group this instance holds: its lease, its service and consumer, its subscription's path."""

    lease: Lease
    service: DetectionService
    consumer: DetectionConsumer
    path: str


class GroupRunner:
    """One detection instance's share of the partition groups: takes, pulls, commits, renews, hands over.

    Everything runs on the calling thread (`run`), so a group is never committed and released at once.
    `clock` is wall time (leases are compared across machines); `monotonic` paces the lease checks.
    """

    def __init__(
        self,
        store: DetectionStore,
        settings: DetectionSettings,
        topology: StreamTopology,
        make_service: ServiceFactory,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        assert settings.wanted_groups is not None, "GroupRunner needs DETECTION_GROUPS"
        self.store = store
        self.settings = settings
        self.topology = topology
        self.make_service = make_service
        self.clock = clock
        self.monotonic = monotonic
        self.me = settings.instance_id
        self.members = split_partitions(settings.groups, settings.partitions)
        self.owned: dict[int, OwnedGroup] = {}
        self.given_up: Counter[str] = Counter()  # the totals of groups no longer held here
        self.moves: Counter[str] = Counter()  # taken, released, lost
        self._next_look = 0.0
        self._first_look = True  # a row in this instance's name is an earlier life's only at the start
        self._last_prune: float | None = None

    @property
    def totals(self) -> dict[str, Any]:
        """The services' totals summed (groups given up included), and the groups held now (/healthz)."""
        summed = Counter(self.given_up)
        for owned in self.owned.values():
            summed.update(owned.service.totals)
        return {
            **summed,
            **{f"groups_{kind}": n for kind, n in self.moves.items()},
            "groups": sorted(self.owned),
        }

    @property
    def brand_states(self) -> dict[str, dict[str, Any]]:
        """Each held brand's phase as of its group's last commit (/healthz)."""
        return {
            brand: phase
            for owned in self.owned.values()
            for brand, phase in owned.service.brand_states.items()
        }

    @property
    def failing(self) -> dict[str, Any] | None:
        """The first held group whose commits fail, with its number (/healthz); None while all commit."""
        for group, owned in sorted(self.owned.items()):
            if owned.service.failing is not None:
                return {"group": group, **owned.service.failing}
        return None

    def prepare(self) -> None:
        """The topics, every group's subscription and ownership row (what is missing only); an instance that
        may only pull is told in a WARNING (`StreamTopology.ensure_before_pulling`)."""
        partitions = self.settings.partitions
        self.topology.ensure_before_pulling(
            [
                group_spec(self.topology, group, members, partitions)
                for group, members in enumerate(self.members)
            ]
        )
        self.store.ensure_groups(self.settings.groups)

    def look(self) -> None:
        """Renew what is held, hand over what another instance asked for, take what is wanted and free; prune
        the single instance's old seen ids when due."""
        self._prune_when_due()
        now = self.clock()
        rows = self.store.owners()
        for group, owned in list(self.owned.items()):
            row = rows.get(group)
            if row is None or (row.owner, row.epoch) != (self.me, owned.lease.epoch):
                self._lose(group)
            elif row.handover_to not in (None, self.me):
                self._give_up(group, keep_s=self.settings.lease_s)
            elif not self.store.renew(owned.lease, self.settings.lease_s, now):
                self._lose(group)
        assert self.settings.wanted_groups is not None
        for group, row in rows.items():
            if group in self.owned:
                continue
            wanted = group in self.settings.wanted_groups or row.handover_to == self.me
            if not wanted:
                continue
            if row.takeable_by(self.me, now, restarted=self._first_look):
                lease = self.store.acquire(row, self.me, self.settings.lease_s, now)
                if lease is not None:
                    self._take(lease)
            elif (
                self.settings.claims_groups
                and row.handover_to is None
                and group in self.settings.wanted_groups
            ):
                self.store.request_handover(group, self.me)
                log.info("asked for a partition group", extra={"group": group, "owner": row.owner})
        self._first_look = False

    def _take(self, lease: Lease) -> None:
        """Load the group's rows and start pulling its subscription."""
        members = self.members[lease.group]
        partitions = self.settings.partitions
        store = self.store.for_group(lease, lambda brand: partition_of(brand, partitions) in members)
        service = self.make_service(store, members)
        consumer = DetectionConsumer(service, self.settings, owned=members)
        path = subscription_path(self.topology.project, group_subscription(self.topology, lease.group))
        self.owned[lease.group] = OwnedGroup(lease, service, consumer, path)
        self.moves["taken"] += 1
        log.info("took a partition group", extra={"group": lease.group, "epoch": lease.epoch})
        try:
            service.dispatch_outbox()  # what its previous owner committed and did not send
        except FencedError:  # taken again by another instance already
            self._lose(lease.group)

    def _give_up(self, group: int, keep_s: float) -> None:
        """Stop pulling the group, commit and ack what it processed, release its row."""
        owned = self.owned[group]
        try:
            owned.consumer.commit()
        except FencedError:
            self._lose(group)
            return
        del self.owned[group]
        self.given_up.update(owned.service.totals)
        released = self.store.release(owned.lease, self.clock(), keep_s)
        self.moves["released" if released else "lost"] += 1
        log.info("released a partition group", extra={"group": group, "epoch": owned.lease.epoch})

    def _lose(self, group: int) -> None:
        """The group moved on without us (a newer epoch): nack what is held, keep nothing of it."""
        owned = self.owned.pop(group)
        owned.consumer.abandon()
        self.given_up.update(owned.service.totals)
        self.moves["lost"] += 1
        log.warning(
            "lost a partition group to a newer owner", extra={"group": group, "epoch": owned.lease.epoch}
        )

    def _target(self, group: int, owned: OwnedGroup) -> PullTarget:
        """What the pull loop reads of a held group: its subscription, its consumer, its recreation."""

        def recover() -> None:
            spec = group_spec(self.topology, group, self.members[group], self.settings.partitions)
            ensure_subscription(self.topology.project, spec, update=False)

        def step(client: pubsub_v1.SubscriberClient, path: str, received: list[Any]) -> None:
            self._unless_fenced(group, lambda: owned.consumer.on_batch(client, path, received))

        def ready() -> bool:
            try:
                return owned.consumer.ready()
            except FencedError:
                self._lose(group)
                return False

        return PullTarget(
            path=owned.path,
            step=step,
            recover=recover,
            idle=lambda: self._unless_fenced(group, owned.consumer.on_idle),
            ready=ready,
        )

    def _unless_fenced(self, group: int, action: Callable[[], None]) -> None:
        """Run a group's batch or idle step; a commit refused because the group moved on drops the group."""
        try:
            action()
        except FencedError:
            self._lose(group)

    def _look_when_due(self) -> None:
        """`look` every third of a lease (a database that cannot answer now: logged, looked at again then;
        the groups' commits say it fails, and a lease that runs out meanwhile fences them)."""
        if self.monotonic() >= self._next_look:
            try:
                self.look()
            except Exception as exc:
                if not retryable(exc):
                    raise
                log.warning(
                    "could not look at the partition groups; trying again", extra={"error": str(exc)[:300]}
                )
            self._next_look = self.monotonic() + self.settings.lease_s / 3

    def _prune_when_due(self) -> None:
        """Forget the single instance's old seen ids, once an hour for every group (each group's consumer
        prunes its own group's)."""
        if self._last_prune is None or self.monotonic() - self._last_prune > PRUNE_EVERY_S:
            self._last_prune = self.monotonic()
            self.store.prune(self.settings.seen_retention_days * 86400)

    def run(self, stop: threading.Event) -> None:
        """Until `stop`: look at the leases every third of a lease, pull the held groups in turn (one
        `pull_targets` loop over their subscriptions, no wait longer than a third of a lease); at the end
        commit and release every held group (free at once for the others)."""
        self.prepare()
        client = subscriber_client(self.topology.emulator_host)
        try:
            pull_targets(
                client,
                lambda: [self._target(group, owned) for group, owned in self.owned.items()],
                stop,
                every_round=self._look_when_due,
                longest_wait_s=min(1.0, self.settings.lease_s / 3),
            )
        finally:
            held = list(self.owned)
            for group in held:
                try:
                    with lock_wait_budget(STOP_BUDGET_S / len(held)):  # a locked database: bounded in all
                        self._give_up(group, keep_s=0.0)
                except Exception as exc:
                    log.warning(
                        "final checkpoint of a group failed", extra={"group": group, "error": str(exc)}
                    )
            client.close()
