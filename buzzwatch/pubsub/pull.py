"""Synchronous pull: one pull/ack/nack implementation, the consumers' pull loop and a pull-and-ack helper.

Synchronous pull survives an emulator restart, which streaming pull does not: the loop recreates a missing
subscription through its `recover` hook (NOT_FOUND) and retries an unreachable service with backoff. The
scoring workers (pull mode) and the detection consumer run `pull_loop` on one subscription, a detection
instance holding partition groups runs `pull_targets` on its groups' subscriptions; tests, benchmarks and
dead-letter inspection use `pull_messages`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as api_exceptions
from google.cloud import pubsub_v1

from buzzwatch.pubsub.clients import subscriber_client
from buzzwatch.pubsub.topology import subscription_path, until_answered

log = logging.getLogger("buzzwatch.pubsub")

# Errors a pull or an ack can meet while Pub/Sub restarts or is unreachable: wait and try again.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    api_exceptions.ServiceUnavailable,
    api_exceptions.DeadlineExceeded,
    api_exceptions.InternalServerError,
    api_exceptions.Unknown,
    api_exceptions.Aborted,
    api_exceptions.RetryError,
)
ACK_CHUNK = 1000  # ack ids per acknowledge / modify_ack_deadline request

# What `pull_loop` hands to its step: the client, the subscription path, the received messages.
Step = Callable[[pubsub_v1.SubscriberClient, str, list[Any]], None]


def pull_batch(
    client: pubsub_v1.SubscriberClient,
    path: str,
    max_messages: int,
    timeout_s: float = 10.0,
    return_immediately: bool = True,
) -> list[Any]:
    """One synchronous pull: the received messages (with their ack ids), unacknowledged.

    `return_immediately`: an empty pull comes back at once, so a consumer can checkpoint on a quiet stream.
    An unreachable Pub/Sub raises after `timeout_s` (the library's own retry would hold the caller 60 s,
    past a partition group's lease, and past a SIGTERM's grace).
    """
    response = client.pull(
        request={
            "subscription": path,
            "max_messages": max_messages,
            "return_immediately": return_immediately,
        },
        **until_answered(timeout_s),
    )
    return list(response.received_messages)


def ack(
    client: pubsub_v1.SubscriberClient, path: str, ack_ids: Sequence[str], timeout_s: float = 10.0
) -> None:
    """Acknowledge `ack_ids` (in requests of at most ACK_CHUNK).

    An unreachable Pub/Sub raises after `timeout_s` a request, not the library's 60 s: the message is then
    delivered again, which every consumer tolerates (at-least-once), while a held-up ack would hold its
    pull loop past a group's lease or a SIGTERM's grace.
    """
    for start in range(0, len(ack_ids), ACK_CHUNK):
        client.acknowledge(
            request={"subscription": path, "ack_ids": list(ack_ids[start : start + ACK_CHUNK])},
            **until_answered(timeout_s),
        )


def nack(
    client: pubsub_v1.SubscriberClient, path: str, ack_ids: Sequence[str], timeout_s: float = 10.0
) -> None:
    """Ask for `ack_ids` to be delivered again now (ack deadline 0); bounded as `ack` is."""
    for start in range(0, len(ack_ids), ACK_CHUNK):
        client.modify_ack_deadline(
            request={
                "subscription": path,
                "ack_ids": list(ack_ids[start : start + ACK_CHUNK]),
                "ack_deadline_seconds": 0,
            },
            **until_answered(timeout_s),
        )


def attempt(action: Callable[[], object], what: str) -> bool:
    """Run a recovery or clean-up step that may fail while Pub/Sub is away: log the failure, go on."""
    try:
        action()
    except Exception as exc:
        log.warning("%s failed; will try again", what, extra={"error": str(exc)[:200]})
        return False
    return True


@dataclass(frozen=True)
class PullTarget:
    """One subscription a pull loop reads: its path, what handles (and acks) a batch, what recreates it.

    `idle` runs after an empty pull of it (a consumer's chance to checkpoint); while `ready` says no, it is
    not pulled (a consumer whose commits fail: a delivery it cannot commit counts towards dead-lettering).
    """

    path: str
    step: Step
    recover: Callable[[], object]
    idle: Callable[[], None] | None = None
    ready: Callable[[], bool] | None = None


def pull_targets(
    client: pubsub_v1.SubscriberClient,
    targets: Callable[[], Sequence[PullTarget]],
    stop: threading.Event,
    max_messages: int = 100,
    every_round: Callable[[], None] | None = None,
    longest_wait_s: float = 10.0,
) -> None:
    """Until `stop`, pull each of `targets()` in turn; the set is asked again each round (it may change).

    A missing subscription (NOT_FOUND: the emulator restarted) is recreated by its `recover`; an unreachable
    Pub/Sub ends the round. After such a round the loop waits, doubling from 0.5 s up to `longest_wait_s`;
    after a round that brought nothing it waits 0.05 s, or `longest_wait_s` with nothing to pull. A step or
    idle hook whose ack fails because Pub/Sub is away is logged, not raised: the messages come again.
    `every_round` runs before each round (a caller's lease keeping: no wait is longer than `longest_wait_s`).
    """
    backoff = 0.5
    while not stop.is_set():
        if every_round is not None:
            every_round()
        current = targets()
        busy = troubled = False
        for target in current:
            if target.ready is not None and not target.ready():
                continue
            try:
                received = pull_batch(client, target.path, max_messages)
            except api_exceptions.NotFound:
                log.warning(
                    "subscription missing (emulator restarted?); recreating",
                    extra={"subscription": target.path},
                )
                attempt(target.recover, "recovery")
                troubled = True
                continue
            except UNAVAILABLE as exc:
                log.warning(
                    "Pub/Sub unavailable; retrying", extra={"error": str(exc)[:200], "backoff_s": backoff}
                )
                troubled = True
                break
            busy = busy or bool(received)
            try:
                if received:
                    target.step(client, target.path, received)
                elif target.idle is not None:
                    target.idle()
            except (*UNAVAILABLE, api_exceptions.NotFound, api_exceptions.InvalidArgument) as exc:
                log.warning("ack failed; the messages will come again", extra={"error": str(exc)[:200]})
        if troubled:
            stop.wait(backoff)
            backoff = min(backoff * 2, longest_wait_s)
        else:
            backoff = 0.5
            if not busy:
                stop.wait(0.05 if current else longest_wait_s)


def pull_loop(
    project: str,
    subscription: str,
    step: Step,
    recover: Callable[[], object],
    stop: threading.Event,
    max_messages: int = 100,
    idle: Callable[[], None] | None = None,
    emulator_host: str | None = None,
    ready: Callable[[], bool] | None = None,
    every_round: Callable[[], None] | None = None,
) -> None:
    """`pull_targets` on one subscription, with a client of its own (at `emulator_host` if given)."""
    client = subscriber_client(emulator_host)
    target = PullTarget(subscription_path(project, subscription), step, recover, idle, ready)
    try:
        pull_targets(client, lambda: (target,), stop, max_messages, every_round)
    finally:
        client.close()


@dataclass(frozen=True)
class ReceivedMessage:
    """A pulled message, already acknowledged."""

    data: bytes
    attributes: dict[str, str]
    message_id: str
    delivery_attempt: int


def pull_messages(
    project: str,
    subscription: str,
    max_messages: int = 100,
    timeout_s: float = 5.0,
    client: pubsub_v1.SubscriberClient | None = None,
) -> list[ReceivedMessage]:
    """One synchronous pull that acknowledges what it got (tests, benchmarks, dead-letter inspection)."""
    own_client = client is None
    client = client or subscriber_client()
    path = subscription_path(project, subscription)
    try:
        received = pull_batch(client, path, max_messages, timeout_s, return_immediately=False)
        ack(client, path, [r.ack_id for r in received])
        return [
            ReceivedMessage(
                data=bytes(r.message.data),
                attributes=dict(r.message.attributes),
                message_id=r.message.message_id,
                delivery_attempt=r.delivery_attempt,
            )
            for r in received
        ]
    finally:
        if own_client:
            client.close()
