"""Fixtures for the ingest tests: the real Pub/Sub emulator, shared per session or private per test.

`pubsub_emulator` can move to the root conftest as is; the worker tests use the same two fixtures.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from buzzwatch.emulator import PubSubEmulator


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[PubSubEmulator]:
    """One emulator for the whole session; tests isolate themselves with unique topic names."""
    with PubSubEmulator() as emulator:
        yield emulator


@pytest.fixture
def emulator_env(pubsub_emulator: PubSubEmulator, monkeypatch: pytest.MonkeyPatch) -> PubSubEmulator:
    """Point google-cloud-pubsub at the shared emulator for this test."""
    for name, value in pubsub_emulator.env().items():
        monkeypatch.setenv(name, value)
    return pubsub_emulator


@pytest.fixture
def private_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[PubSubEmulator]:
    """An emulator of this test's own, for tests that restart or stop it."""
    with PubSubEmulator() as emulator:
        for name, value in emulator.env().items():
            monkeypatch.setenv(name, value)
        yield emulator


@pytest.fixture
def unique_name() -> str:
    """A topic/subscription name prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}"
