"""A named pipe's writing end, opened once a child process reads it (a test's never-ending input)."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path
from typing import TextIO


def pipe_writer(fifo: Path, reader: subprocess.Popen, timeout_s: float = 30.0) -> TextIO:
    """The pipe's writing end, once `reader` has opened it for reading; AssertionError if it exits first
    or does not open it within `timeout_s` (a plain open would wait for a reader for ever)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            descriptor = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
            assert reader.poll() is None, f"the reader exited ({reader.returncode}) before opening {fifo}"
            assert time.monotonic() < deadline, f"no reader opened {fifo} in {timeout_s} s"
            time.sleep(0.02)
            continue
        os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "w", encoding="utf-8")
