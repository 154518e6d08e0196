"""`buzzwatch worker`: scoring by push or pull (the detection service is `buzzwatch detect`)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from buzzwatch.cli import count_or_variable, port_number, stop_on_signals

SERVER_PID_VARIABLE = "BUZZWATCH_SERVER_PID"  # the push server's pid, for its worker processes (app.py)
STOP_GRACE_S = 20  # on SIGTERM, a worker process still busy after this long is killed by its server


def register(subparsers: Any) -> None:
    """Add the `worker` subcommand."""
    worker = subparsers.add_parser(
        "worker",
        help="run the stream worker: scoring, by push or by pull (detection: `buzzwatch detect`)",
        description=(
            "Score TweetEvents from the tweets subscription and publish ScoredTweets: "
            "--mode push serves the Pub/Sub push route with granian on --port/$PORT (Cloud Run), "
            "--mode pull pulls the subscription (outside Cloud Run). Scoring scales out. "
            "--role detection is the same as `buzzwatch detect` (the single detection service), kept for "
            "deployments that still start it this way."
        ),
    )
    worker.add_argument(
        "--role", choices=("scoring", "detection"), default="scoring", help="what to run (see above)"
    )
    worker.add_argument("--mode", choices=("push", "pull"), default="push", help="scoring: push or pull")
    worker.add_argument("--host", default="0.0.0.0", help="push mode: address to bind (default 0.0.0.0)")
    worker.add_argument(
        "--port",
        type=port_number,
        default=os.environ.get("PORT", "8080"),  # a string: checked only when `worker` is the command
        help="push mode: port (default $PORT or 8080)",
    )
    worker.add_argument(
        "--threads",
        type=count_or_variable("WORKER_THREADS"),
        default=os.environ.get("WORKER_THREADS", "32"),  # a string: argparse converts it, or says why not
        help="push mode: threads per process running the app (default $WORKER_THREADS or 32)",
    )
    worker.add_argument(
        "--workers",
        type=count_or_variable("WEB_CONCURRENCY"),
        default=os.environ.get("WEB_CONCURRENCY", "1"),
        help="push mode: server processes, each with its own model (default $WEB_CONCURRENCY or 1)",
    )
    worker.set_defaults(handler=run_worker_command)


def run_worker_command(args: argparse.Namespace) -> int:
    """Run one worker role until the end of time or SIGTERM."""
    if args.role == "scoring" and args.mode == "push":
        from buzzwatch.pubsub import StreamTopology
        from buzzwatch.settings import CommonSettings
        from worker.scoring import WorkerSettings, load_models

        # Refused here, not in each server process (a crash loop of tracebacks): bad push auth settings,
        # a model that cannot load, no Google credentials, a Pub/Sub that does not answer. Each process
        # makes sure of it again.
        WorkerSettings.from_env(os.environ).push_auth.check()
        settings = CommonSettings.from_env(os.environ)
        load_models(settings)
        StreamTopology.from_settings(settings).ensure_scored_path()
        # Become the server, so SIGTERM (Cloud Run, a supervisor, a test) reaches it and no child is orphaned.
        command = push_server_command(args.host, args.port, args.workers, args.threads)
        # Its worker processes compare their parent with this pid (the server's, after exec) to see it die.
        os.environ[SERVER_PID_VARIABLE] = str(os.getpid())
        os.execv(command[0], command)
    return run_in_process(args.role)


def push_server_command(
    host: str, port: int, workers: int, threads: int, app_factory: str = "worker.app:production_app"
) -> list[str]:
    """The push route's server: granian (Rust HTTP, the WSGI app on `threads` threads per process).

    Pub/Sub pushes one tweet per request, so the server's own cost per request bounds the throughput of a
    small instance (README, "Throughput": granian against gunicorn's threaded workers). Failed processes are
    respawned; on SIGTERM each finishes its requests (at most STOP_GRACE_S) and closes its telemetry, and one
    still loading the app stops at once (granian's command line run by `worker.server`).
    """
    return [
        sys.executable, "-m", "worker.server",
        "--interface", "wsgi",
        "--host", host,
        "--port", str(port),
        "--workers", str(workers),
        "--blocking-threads", str(threads),
        "--respawn-failed-workers",
        "--workers-kill-timeout", str(STOP_GRACE_S),
        "--no-access-log",
        "--factory", app_factory,
    ]  # fmt: skip


def run_in_process(role: str) -> int:
    """Pull scoring in this process (detection: `buzzwatch detect`); SIGTERM/SIGINT stop it cleanly."""
    if role == "detection":  # kept for deployments that still start detection as a worker role
        from worker.detection_service.cli import run_detection_service

        return run_detection_service(os.environ)
    from buzzwatch.logs import configure_logging
    from buzzwatch.pubsub import StreamTopology
    from buzzwatch.settings import CommonSettings
    from buzzwatch.telemetry import GuardedTelemetry, Telemetry
    from worker.pull import run_scoring_pull
    from worker.scoring import WorkerSettings, build_scoring_service

    env = os.environ
    settings = CommonSettings.from_env(env)
    configure_logging(settings.log_level)
    topology = StreamTopology.from_settings(settings)
    worker_settings = WorkerSettings.from_env(env)
    stop = stop_on_signals()
    telemetry = GuardedTelemetry(Telemetry.from_settings(settings, role="worker"))
    try:
        scoring = build_scoring_service(settings, topology, worker_settings, telemetry)
        try:
            run_scoring_pull(scoring, topology, worker_settings, stop)
        finally:
            scoring.close()
    finally:
        telemetry.close()
    return 0
