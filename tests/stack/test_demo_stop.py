"""SIGTERM to a running `buzzwatch demo` stops every process it started, and the processes those started."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.support.stack import start_demo

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process now running (zombies left out)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children, their children, ...)."""
    parents = _parents()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    return pids & set(_parents())


def test_sigterm_stops_the_demos_whole_process_tree(tmp_path: Path) -> None:
    """Mid-replay, as a supervisor or `kill` would (Ctrl-C after the summary: test_demo_frontends)."""
    env = {**os.environ, "BUZZWATCH_VAR_DIR": str(tmp_path)}
    demo, lines = start_demo(env, "--tweets", "300", "--speed", "20", "--with-api")
    started: set[int] = set()
    try:
        deadline = time.monotonic() + 240
        while not any("replaying" in line for line in lines):  # everything is up, the replay running
            assert demo.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.2)
        started = descendants(demo.pid)
        commands = [Path(f"/proc/{pid}/cmdline").read_bytes() for pid in started]
        for part in (b"pubsub-emulator", b"worker.server", b"buzzwatch.cli\0detect", b"ingest"):
            assert any(part in command for command in commands), (part, commands)
        # `buzzwatch api` is gunicorn's master itself since 2026-12-06 (no exec): it and its workers
        assert sum(b"buzzwatch.cli\0api\0" in command for command in commands) >= 2, commands
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=60) == 130, "".join(lines)
        assert alive(started) == set(), [Path(f"/proc/{p}/cmdline").read_bytes() for p in alive(started)]
        assert "stopping" in "".join(lines)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        for pid in alive(started):  # only what this test's demo started, should the test fail
            os.kill(pid, signal.SIGKILL)
