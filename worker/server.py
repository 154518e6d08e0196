"""The push route's server: granian's own command line, in a process whose workers stop on SIGTERM from birth.

    python -m worker.server --interface wsgi ... --factory worker.app:production_app   (`worker.cli`)

granian's server forks its worker processes, and each keeps the server's signal handlers until it has built
the app and installed its own. A SIGTERM in between ran the server's handler in the child, which marks that
process's copy of the server as stopping and nothing else: lost. The server then waited
`--workers-kill-timeout` for the child and killed it, without its exit finalizers (README, "Stopping the
push worker"). Here each child stops at once on SIGINT or SIGTERM until granian's handler replaces this
one: a process still loading has accepted no request, and its exit runs multiprocessing's exit finalizers,
which close telemetry. The signals are blocked across the fork itself, so one that comes before the child's
handler is in place waits for it instead of reaching the server's.

A worker process can also lose the SIGTERM that comes as it starts serving, with granian's handler in place
(README): once this server is told to stop, it sends its worker processes SIGTERM again every second.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # what granian's server and its workers stop on
RESEND_INTERVAL_S = 1.0


def main() -> None:
    """Run granian's command line with this process's arguments; its workers do not lose a stop signal."""
    masks: list[set[signal.Signals]] = []  # the mask before a fork, to restore on both sides of it
    wakeup_read, wakeup_write = os.pipe()  # each signal this process handles writes its number here
    os.set_blocking(wakeup_write, False)
    os.register_at_fork(
        before=lambda: masks.append(signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)),
        after_in_parent=lambda: signal.pthread_sigmask(signal.SIG_SETMASK, masks.pop()),
        after_in_child=lambda: _stop_at_once_until_served(masks.pop(), (wakeup_read, wakeup_write)),
    )
    signal.set_wakeup_fd(wakeup_write, warn_on_full_buffer=False)
    threading.Thread(target=_repeat_the_stop, args=(wakeup_read,), name="repeat-stop", daemon=True).start()
    from granian.cli import entrypoint

    entrypoint()


def _stop_at_once_until_served(mask: set[signal.Signals], wakeup_fds: tuple[int, int]) -> None:
    signal.set_wakeup_fd(-1)  # a worker's own signals are not its server's
    for fd in wakeup_fds:
        os.close(fd)
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, _exit_before_serving)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a signal that came during the fork is handled now


def _exit_before_serving(signum: int, frame: object) -> None:
    for stop_signal in STOP_SIGNALS:  # a second signal must not cut the exit finalizers short
        signal.signal(stop_signal, signal.SIG_IGN)
    sys.exit(0)


def _repeat_the_stop(wakeup_read: int) -> None:
    while os.read(wakeup_read, 1)[0] not in STOP_SIGNALS:
        pass  # SIGHUP: granian reloads its workers
    while True:  # until granian's server, done stopping (at most its kill timeout), exits
        time.sleep(RESEND_INTERVAL_S)
        for pid in children_of(os.getpid()):  # granian's worker processes (its server starts no other)
            with contextlib.suppress(ProcessLookupError):  # gone meanwhile
                os.kill(pid, signal.SIGTERM)


def children_of(pid: int) -> list[int]:
    """The pids of a process's children (Linux: read from /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):  # exited meanwhile
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(stat.parent.name))
    return children


if __name__ == "__main__":
    main()
