"""The local stack's services as child processes: start them, wait until they answer, stop them all.

Each child runs a `buzzwatch` subcommand and leads a process group of its own, so Ctrl-C reaches the
supervisor only, which stops the children in order, and stopping a child reaches the processes it started
in turn (granian's, gunicorn's, Streamlit's). SIGTERM (a supervisor, `kill`) stops the stack as Ctrl-C does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

Children = list[tuple[str, subprocess.Popen[bytes]]]


def answers_ok(url: str) -> bool:
    """Whether a GET on `url` answers 200 now (a readiness or health route)."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def health_report(url: str) -> dict[str, Any] | None:
    """The JSON object a health route answers with 200, or None while it does not answer so."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            payload = json.load(response) if response.status == 200 else None
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def wait_until(
    predicate: Callable[[], bool],
    timeout_s: float,
    what: str,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Poll `predicate` until it holds; a clear error when `process` exits first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {process.returncode}")
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def start_command(name: str, args: list[str], env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    """Start `buzzwatch ARGS` in a session of its own, its output going to LOGS/NAME.log."""
    log = open(logs / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        [sys.executable, "-m", "buzzwatch.cli", *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def terminate(process: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM one process (its clean stop), then SIGKILL it if it still runs `grace_s` later."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def stop_children(children: Children, timeout_s: float = 20.0) -> None:
    """SIGTERM to each child's process group, newest first; what is left after `timeout_s` is killed."""
    for _, process in reversed(children):
        _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for _, process in reversed(children):
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        # Also once the leader is gone: a process it started may still be there, in its group.
        _signal_group(process, signal.SIGKILL)
        process.wait()


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with suppress(ProcessLookupError):  # the whole group is gone
        os.killpg(process.pid, signum)  # the child leads its group (start_new_session)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block SIGTERM raises KeyboardInterrupt, as Ctrl-C does; the previous handler after."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def deaf_to_signals() -> Iterator[None]:
    """Within the block Ctrl-C and SIGTERM are ignored (a clean stop is under way); as before after."""
    handlers = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


@contextmanager
def stopping(children: Children) -> Iterator[None]:
    """Stop the started children on the way out, deaf to a second Ctrl-C or SIGTERM meanwhile."""
    try:
        yield
    finally:
        with deaf_to_signals():
            stop_children(children)
