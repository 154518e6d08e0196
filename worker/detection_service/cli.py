"""`buzzwatch detect` (or `python -m worker.detection_service`): the detection service's entry point.

The settings are read here, once, and everything else is built from them and passed down.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from typing import Any


def register(subparsers: Any) -> None:
    """Add the `detect` subcommand."""
    detect = subparsers.add_parser(
        "detect",
        help="run the single detection service: count, detect bad buzzes, alert",
        description=(
            "The ONE consumer of the scored topic (or of the brand partitions in DETECTION_PARTITIONS): "
            "dedupes by tweet id (DATABASE_URL), detects bad buzzes in event time, emails alerts (SMTP_* "
            "or the outbox) and records metrics (Application Insights or the local sink); serves /healthz "
            "and the app's feed on $PORT. Stops cleanly on SIGTERM, after a last checkpoint. With "
            "DETECTION_GROUPS, instances sharing one database own partition groups that move between them."
        ),
    )
    detect.add_argument(
        "--move",
        metavar="GROUPS",
        help="do not run: ask the owners of these partition groups (e.g. 3 or 0-3) to hand them over to --to",
    )
    detect.add_argument("--to", metavar="INSTANCE", help="the DETECTION_INSTANCE_ID that takes the groups")
    detect.add_argument(
        "--owners",
        action="store_true",
        help="do not run: print who owns each partition group, and since when",
    )
    detect.set_defaults(handler=run_detect_command)


def run_detect_command(args: argparse.Namespace) -> int:
    """The `detect` subcommand's handler."""
    if args.move is not None or args.to is not None:
        return request_move(os.environ, args.move, args.to)
    if args.owners:
        return show_owners(os.environ)
    return run_detection_service(os.environ)


def show_owners(env: Mapping[str, str], now: float | None = None) -> int:
    """Print each partition group's owner, epoch, lease left and pending handover (the shared database)."""
    import time

    from buzzwatch.settings import CommonSettings
    from worker.detection_service.settings import DetectionSettings
    from worker.detection_service.store import DetectionStore

    groups = DetectionSettings.from_env(env).groups
    store = DetectionStore(CommonSettings.from_env(env).database_url)
    try:
        store.ensure_groups(groups)
        owners = store.owners()
    finally:
        store.close()
    now = time.time() if now is None else now
    for group, row in owners.items():
        lease = f"lease {row.lease_until - now:.0f} s left" if row.lease_until >= now else "lease expired"
        handover = f", handover to {row.handover_to}" if row.handover_to else ""
        print(f"group {group}: owner {row.owner or '(none)'}, epoch {row.epoch}, {lease}{handover}")
    return 0


def request_move(env: Mapping[str, str], groups: str | None, instance: str | None) -> int:
    """Mark partition groups for a handover to `instance` in the shared database; a bad request is a
    CommandError."""
    from buzzwatch.partitions import parse_owned
    from buzzwatch.settings import CommandError, CommonSettings
    from worker.detection_service.settings import DetectionSettings
    from worker.detection_service.store import DetectionStore

    if not groups or not instance:
        raise CommandError("--move GROUPS --to INSTANCE: give both")
    detection = DetectionSettings.from_env(env)
    try:
        chosen = sorted(parse_owned(groups, detection.groups))
    except ValueError as exc:
        raise CommandError(f"--move: {exc} (groups 0-{detection.groups - 1})") from None
    store = DetectionStore(CommonSettings.from_env(env).database_url)
    try:
        store.ensure_groups(detection.groups)
        for group in chosen:
            store.request_handover(group, instance)
        owners = store.owners()
    finally:
        store.close()
    for group in chosen:
        print(f"group {group}: owner {owners[group].owner or '(none)'}, handover to {instance} requested")
    return 0


def run_detection_service(env: Mapping[str, str]) -> int:
    """Run until SIGTERM/SIGINT; 2 when the saved state is damaged (the log line says which and how)."""
    from buzzwatch.cli import stop_on_signals
    from buzzwatch.logs import configure_logging
    from buzzwatch.notify import Mailer
    from buzzwatch.pubsub import StreamTopology, check_credentials
    from buzzwatch.settings import CommonSettings
    from buzzwatch.telemetry import GuardedTelemetry, RecordingTelemetry, Telemetry
    from models.reasons import load_reason_model
    from worker.detection_service.dispatcher import AlertDispatcher
    from worker.detection_service.groups import GroupRunner
    from worker.detection_service.server import serve_health
    from worker.detection_service.service import DetectionService
    from worker.detection_service.settings import DetectionSettings
    from worker.detection_service.single import SingleRunner
    from worker.detection_service.store import DetectionStore, StateError

    settings = CommonSettings.from_env(env)
    configure_logging(settings.log_level)
    detection = DetectionSettings.from_env(env)
    detection.feed_auth.check()
    check_credentials(settings.pubsub_emulator_host)  # before the store and the health server start
    stop = stop_on_signals()
    # The service keeps its latest figures for the app's Watch it page (served with /healthz).
    feed = RecordingTelemetry(GuardedTelemetry(Telemetry.from_settings(settings, role="detection")))
    try:
        reasons = load_reason_model()
        mailer = Mailer.from_settings(settings)
        zones, names = detection.brands.zones(), detection.brands.names()
        dispatcher = AlertDispatcher(feed, mailer, zones, names, detection.app_url)

        def make_service(store: DetectionStore, owned: frozenset[int] | None) -> DetectionService:
            return DetectionService(
                store,
                dispatcher,
                feed,
                detection.detector,
                None,
                reasons,
                reset_state=detection.reset_state,
                owned_partitions=owned,
                partitions=detection.partitions,
            )

        topology = StreamTopology.from_settings(settings)
        try:
            store = DetectionStore(settings.database_url, reset_corrupt=detection.reset_state)
            runner = (
                SingleRunner(store, detection, lambda view: make_service(view, detection.owned_partitions))
                if detection.wanted_groups is None
                else GroupRunner(store, detection, topology, make_service)
            )
        except StateError as exc:  # refuse to start on damaged state, saying which and how to reset
            mailer.close()
            return _cannot_start(exc)
        mailer.start()  # delivers, on its own thread, what a previous run left in the spool
        health = serve_health(detection.health_port, runner, feed, detection.health_host, detection.feed_auth)
        try:
            if isinstance(runner, GroupRunner):
                runner.run(stop)  # a group taken with a damaged saved state stops it: StateError
            else:
                runner.run(topology, stop)  # its state loaded once the database is its: StateError
        except StateError as exc:
            return _cannot_start(exc)
        finally:
            health.shutdown()
            mailer.close()
            store.close()
    finally:
        feed.close()
    return 0


def _cannot_start(error: Exception) -> int:
    """Say why the saved state stops the service (and how to reset it); the exit status for that."""
    logging.getLogger("buzzwatch.detection").critical(f"the detection service cannot start: {error}")
    return 2
