"""Test-wide set-up: no test reaches the internet or writes into the repository."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest
from hypothesis import settings

# The integration-mark rule; every fixture that starts a server (emulator, SMTP, capture server); pytester.
pytest_plugins = ["tests.support.integration", "tests.support.servers", "pytester"]

# Property tests draw the same examples on every run, so CI cannot turn red by the luck of a draw;
# HYPOTHESIS_PROFILE=explore draws new ones (run it when changing the code they cover).
settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

# Both Azure exporters otherwise send their own usage telemetry to a fixed Microsoft endpoint.
os.environ.setdefault("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Ctrl-C as a terminal gives it. A runner that starts the tests as a background job of a shell without job
# control starts them with SIGINT ignored, and an ignored signal stays ignored in every child: then the
# Ctrl-C tests (the CLI's one line and exit 130, the demo staying up until Ctrl-C) test nothing a person
# meets and fail. A handler, unlike SIG_IGN, is reset to the default on exec, so children get it too.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


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
