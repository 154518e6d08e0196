"""How long the push worker's server takes to stop when SIGTERM comes at chosen moments of its start-up.

    .venv/bin/python bench/push_stop.py [--delays 0 0.5 1 2 4] [--rounds 4] [--workers 2]

Each try starts `buzzwatch worker --mode push` with --workers processes on a free port (one emulator for all),
sends the server SIGTERM `delay` seconds after it has forked its worker processes and times its exit. Printed
for each try: how many worker processes served before the signal (granian logs "Started worker"), the stop
time, and how many granian killed after --workers-kill-timeout; then each delay's stop times. With
--at-serving, each SIGTERM goes instead as soon as granian logs that a worker process serves (the log polled
every 2 ms), --rounds times. Compare a commit with the one before it by running this on both (README,
"Stopping the push worker").
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from stack.emulator import PubSubEmulator  # noqa: E402
from stack.ports import free_port  # noqa: E402
from worker.cli import STOP_GRACE_S  # noqa: E402
from worker.server import children_of  # noqa: E402


def _moment_come(server_pid: int, workers: int, log_path: Path, at_serving: bool) -> bool:
    if at_serving:
        return "Started worker" in log_path.read_text()
    return len(children_of(server_pid)) >= workers


def one_stop(
    env: dict[str, str], workers: int, delay_s: float, log_path: Path, at_serving: bool = False
) -> dict[str, float]:
    """Start the server, SIGTERM it `delay_s` after its worker processes are forked; what its log says.

    `at_serving`: as soon as the log says a worker process serves instead (`delay_s` is then not used).
    """
    port = free_port()
    command = [sys.executable, "-m", "buzzwatch.cli", "worker", "--mode", "push", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers)]  # fmt: skip
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        try:
            while not _moment_come(server.pid, workers, log_path, at_serving):
                if server.poll() is not None:
                    raise SystemExit(f"the server exited before its workers started:\n{log_path.read_text()}")
                time.sleep(0.002 if at_serving else 0.01)
            time.sleep(0 if at_serving else delay_s)
            server.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            server.wait(timeout=120)
            stop_s = time.monotonic() - signalled
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    text = log_path.read_text()
    before_the_signal = text.split("Shutting down granian")[0]
    return {
        "served": before_the_signal.count("Started worker"),
        "stop_s": stop_s,
        # granian kills only at its kill timeout; its kill line also comes, falsely, for a worker that exited
        # at once but was reaped by granian's watcher thread first (tests/worker/test_stream_push.py)
        "killed": text.count("refused to gracefully stop") if stop_s >= STOP_GRACE_S else 0,
    }


def main() -> None:
    """Time the stops for each delay, round after round; print each try and each delay's stop times."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--delays", type=float, nargs="+", default=[0, 0.5, 1, 2, 4], help="seconds")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="the server's worker processes")
    parser.add_argument("--at-serving", action="store_true", help="SIGTERM as soon as a worker serves")
    args = parser.parse_args()
    delays = [0.0] if args.at_serving else args.delays
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"started {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC, load {load}", flush=True)
    stops: dict[float, list[float]] = {delay: [] for delay in delays}
    with PubSubEmulator() as emulator, TemporaryDirectory() as tmp:
        env = dict(
            os.environ,
            **emulator.env(),
            BUZZWATCH_VAR_DIR=tmp,
            APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true",
            LOG_LEVEL="WARNING",
        )
        for round_index in range(args.rounds):
            for delay in delays:
                log_path = Path(tmp) / f"server-{round_index}-{delay}.log"
                result = one_stop(env, args.workers, delay, log_path, args.at_serving)
                stops[delay].append(result["stop_s"])
                print(
                    f"SIGTERM {_moment(delay, args.at_serving)}: {result['served']:.0f} of {args.workers} "
                    f"served before it, stopped after {result['stop_s']:5.2f} s, "
                    f"{result['killed']:.0f} killed",
                    flush=True,
                )
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"ended {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC, load {load}")
    for delay, times in stops.items():
        stop_times = ", ".join(f"{t:.2f}" for t in times)
        print(f"SIGTERM {_moment(delay, args.at_serving)}: stops {stop_times} s")


def _moment(delay_s: float, at_serving: bool) -> str:
    return "as a worker serves" if at_serving else f"{delay_s:4.1f} s after the fork"


if __name__ == "__main__":
    main()
