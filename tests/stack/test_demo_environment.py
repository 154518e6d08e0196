"""`buzzwatch demo` run in-process leaves its caller's environment as it found it: the emulator's address
goes to the processes it starts and, through the settings, to its own Pub/Sub clients, not to os.environ."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from stack import demo
from stack.demo import DemoOptions, run_demo

pytestmark = pytest.mark.integration


def test_the_demo_reaches_its_emulator_without_touching_os_environ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BUZZWATCH_VAR_DIR", str(tmp_path))
    monkeypatch.delenv("PUBSUB_EMULATOR_HOST", raising=False)
    # Were Google Cloud tried instead of the emulator, it would fail at once here, with no network call.
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "no-such-key.json"))
    started: list[tuple[str, dict[str, str]]] = []

    def sigterm_as_the_first_service_starts(name: str, args: Any, env: dict[str, str], logs: Path) -> None:
        started.append((name, dict(env)))
        signal.raise_signal(signal.SIGTERM)  # as a supervisor would, once the topology is made
        raise AssertionError("the demo did not stop on SIGTERM")

    monkeypatch.setattr(demo, "start_command", sigterm_as_the_first_service_starts)
    before = dict(os.environ)
    assert run_demo(DemoOptions(tweets=300, outbox=True)) == 130
    assert dict(os.environ) == before
    out = capsys.readouterr().out
    endpoint = re.search(r"Pub/Sub emulator on (\S+); push subscription -> ", out)
    assert endpoint, out  # the topics and the push subscription were made on the emulator
    assert [name for name, _ in started] == ["worker"]
    assert started[0][1]["PUBSUB_EMULATOR_HOST"] == endpoint.group(1)
