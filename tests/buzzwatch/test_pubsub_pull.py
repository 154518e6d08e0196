"""The one pull loop over a set of subscriptions (`pull_targets`), against the real Pub/Sub emulator."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from google.cloud import pubsub_v1

from buzzwatch.pubsub import (
    UNAVAILABLE,
    Publisher,
    PullTarget,
    SubscriptionSpec,
    ack,
    ensure_subscription,
    nack,
    pull_batch,
    pull_targets,
    subscriber_client,
    subscription_path,
)
from stack.emulator import PubSubEmulator
from stack.ports import free_port
from tests.support.polling import wait_for

pytestmark = pytest.mark.integration


class Recorder:
    """What the loop handed to each subscription's step, idle and recover hooks (acked as it came)."""

    def __init__(self) -> None:
        self.data: dict[str, list[bytes]] = {}
        self.calls: Counter[str] = Counter()

    def step(self, client: pubsub_v1.SubscriberClient, path: str, received: list[Any]) -> None:
        self.data.setdefault(path, []).extend(bytes(r.message.data) for r in received)
        ack(client, path, [r.ack_id for r in received])

    def hook(self, name: str, action: Callable[[], object] = lambda: None) -> Callable[[], None]:
        def counted() -> None:
            self.calls[name] += 1
            action()

        return counted


def run_loop(targets: Callable[[], list[PullTarget]], stop: threading.Event) -> threading.Thread:
    """`pull_targets` on a thread of its own, with a client it closes at the end."""

    def loop() -> None:
        client = subscriber_client()
        try:
            pull_targets(client, targets, stop, longest_wait_s=1.0)
        finally:
            client.close()

    thread = threading.Thread(target=loop)
    thread.start()
    return thread


def test_a_pull_from_an_unreachable_pubsub_gives_up_within_its_timeout() -> None:
    """So the loop's backoff, its `every_round` (a group's lease) and a stop come in time: was 60 s."""
    client = subscriber_client(f"127.0.0.1:{free_port()}")  # nothing listens there
    started = time.monotonic()
    try:
        with pytest.raises(UNAVAILABLE):
            pull_batch(client, "projects/p/subscriptions/s", 10, timeout_s=2.0)
    finally:
        client.close()
    assert time.monotonic() - started < 6


def test_one_loop_pulls_each_subscription_and_recreates_a_lost_one(
    emulator_env: PubSubEmulator, unique_name: str
) -> None:
    project = emulator_env.project
    topic = f"{unique_name}-topic"
    Publisher(project, topic).close()
    specs = {name: SubscriptionSpec(name=f"{unique_name}-{name}", topic=topic) for name in ("a", "b")}
    for spec in specs.values():
        ensure_subscription(project, spec)
    paths = {name: subscription_path(project, spec.name) for name, spec in specs.items()}
    seen = Recorder()

    def target(name: str) -> PullTarget:
        spec = specs[name]
        return PullTarget(
            path=paths[name],
            step=seen.step,
            recover=seen.hook(f"recover {name}", lambda: ensure_subscription(project, spec)),
            idle=seen.hook(f"idle {name}"),
        )

    pulled = ["a"]  # the set is asked for each round: "b" joins later
    stop = threading.Event()
    thread = run_loop(lambda: [target(name) for name in pulled], stop)
    try:
        publisher = Publisher(project, topic)
        for index in range(5):
            publisher.publish(f"first {index}".encode())
        publisher.flush()
        wait_for(lambda: len(seen.data.get(paths["a"], [])) == 5, 20, "subscription a pulled")
        assert paths["b"] not in seen.data and seen.calls["idle b"] == 0
        pulled.append("b")
        wait_for(lambda: len(seen.data.get(paths["b"], [])) == 5, 20, "subscription b pulled")
        assert seen.calls["idle a"] > 0  # each empty pull lets its consumer checkpoint

        client = subscriber_client()
        client.delete_subscription(request={"subscription": paths["b"]})
        client.close()
        wait_for(lambda: seen.calls["recover b"] > 0, 20, "subscription b recreated")
        for index in range(3):
            publisher.publish(f"second {index}".encode())
        assert publisher.close().failed == 0
        wait_for(lambda: all(len(seen.data.get(p, [])) == 8 for p in paths.values()), 20, "both pulled")
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert seen.calls["recover a"] == 0
    for path in paths.values():
        assert sorted(seen.data[path]) == sorted(
            [f"first {i}".encode() for i in range(5)] + [f"second {i}".encode() for i in range(3)]
        )


def test_a_subscription_that_stays_missing_is_retried_with_backoff_not_in_a_tight_loop(
    emulator_env: PubSubEmulator, unique_name: str
) -> None:
    """A recovery that cannot make it (not allowed, say) is tried again after 0.5, 1, 1... s."""
    seen = Recorder()
    missing = PullTarget(
        path=subscription_path(emulator_env.project, f"{unique_name}-never"),
        step=seen.step,
        recover=seen.hook("recover"),
    )
    stop = threading.Event()
    started = time.monotonic()
    thread = run_loop(lambda: [missing], stop)
    time.sleep(3.2)
    stop.set()
    thread.join(30)
    elapsed = time.monotonic() - started
    # pulls at 0, 0.5, 1.5, 2.5 s (and 3.5 s if the stop came late): a tight loop would try dozens of times
    assert 3 <= seen.calls["recover"] <= 2 + elapsed, (seen.calls, elapsed)


@pytest.mark.parametrize("settle", [ack, nack])
def test_an_ack_or_nack_to_an_unreachable_pubsub_gives_up_within_its_bound(
    settle: Callable[..., None],
) -> None:
    """The library's own retry would hold the caller 60 s; a consumer's commit must not wait that long."""
    client = subscriber_client(f"127.0.0.1:{free_port()}")  # nothing listens there
    began = time.monotonic()
    try:
        with pytest.raises(UNAVAILABLE):
            settle(client, subscription_path("p", "s"), ["an-ack-id"], timeout_s=1.0)
    finally:
        client.close()
    assert time.monotonic() - began < 10
