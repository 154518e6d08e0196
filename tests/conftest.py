"""Test-wide set-up: no test reaches the internet or writes into the repository."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from stack.emulator import PubSubEmulator

pytest_plugins = ["tests.support.servers"]  # the SMTP and capture-server fixtures

# Property tests draw the same examples on every run, so CI cannot turn red by the luck of a draw;
# HYPOTHESIS_PROFILE=explore draws new ones (run it when changing the code they cover).
settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

# Both Azure exporters otherwise send their own usage telemetry to a fixed Microsoft endpoint.
os.environ.setdefault("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def isolated_var_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point runtime state (databases, telemetry sink, outbox, MLflow store) at a fresh folder per test."""
    var_dir = tmp_path_factory.mktemp("var")
    monkeypatch.setenv("BUZZWATCH_VAR_DIR", str(var_dir))
    monkeypatch.delenv("APPLICATIONINSIGHTS_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("SMTP_HOST", raising=False)
    return var_dir


@pytest.fixture
def unique_name() -> str:
    """A topic/subscription name prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}"


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
