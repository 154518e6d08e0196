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
"""

from __future__ import annotations

import os
import signal
import sys

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # what granian's server and its workers stop on


def main() -> None:
    """Run granian's command line with this process's arguments; its forked workers stop on signal at once."""
    masks: list[set[signal.Signals]] = []  # the mask before a fork, to restore on both sides of it
    os.register_at_fork(
        before=lambda: masks.append(signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)),
        after_in_parent=lambda: signal.pthread_sigmask(signal.SIG_SETMASK, masks.pop()),
        after_in_child=lambda: _stop_at_once_until_served(masks.pop()),
    )
    from granian.cli import entrypoint

    entrypoint()


def _stop_at_once_until_served(mask: set[signal.Signals]) -> None:
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, _exit_before_serving)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a signal that came during the fork is handled now


def _exit_before_serving(signum: int, frame: object) -> None:
    for stop_signal in STOP_SIGNALS:  # a second signal must not cut the exit finalizers short
        signal.signal(stop_signal, signal.SIG_IGN)
    sys.exit(0)


if __name__ == "__main__":
    main()
