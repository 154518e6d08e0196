"""What a test's stream left on an emulator subscription: pull until enough came, then maybe once more."""

from __future__ import annotations

import time

from google.api_core import exceptions as api_exceptions

from buzzwatch.pubsub import ReceivedMessage, pull_messages


def pull_until(
    project: str, subscription: str, count: int, timeout_s: float = 20.0, then_after_s: float | None = None
) -> list[ReceivedMessage]:
    """Pull (and ack) until `count` messages came or `timeout_s` passed; waits for a subscription to exist.

    With `then_after_s`, wait that long and pull once more, so that a duplicate or an extra delivery shows in
    what is returned instead of passing unseen.
    """
    received: list[ReceivedMessage] = []
    deadline = time.monotonic() + timeout_s
    while len(received) < count and time.monotonic() < deadline:
        try:
            received += pull_messages(project, subscription, max_messages=1000, timeout_s=2.0)
        except api_exceptions.NotFound:  # created by a process or thread that has not got there yet
            time.sleep(0.1)
    if then_after_s is not None:
        time.sleep(then_after_s)
        received += pull_messages(project, subscription, max_messages=1000, timeout_s=1.0)
    return received
