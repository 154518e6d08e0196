"""Waiting for something a thread or another process does: poll with a deadline, never a fixed sleep."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def wait_for(
    predicate: Callable[[], bool],
    timeout_s: float,
    what: str,
    process: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
) -> None:
    """Poll until true (every 10 ms at first, 100 ms later); fail naming `what`, with `process`'s log."""
    deadline = time.monotonic() + timeout_s
    interval_s = 0.01
    while time.monotonic() < deadline:
        if predicate():
            return
        if process is not None and process.poll() is not None:
            break
        time.sleep(interval_s)
        interval_s = min(2 * interval_s, 0.1)
    tail = log_path.read_text(errors="replace")[-3000:] if log_path and log_path.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")
