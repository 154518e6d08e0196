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
            "and the app's feed on $PORT. Stops cleanly on SIGTERM, after a last checkpoint."
        ),
    )
    detect.set_defaults(handler=run_detect_command)


def run_detect_command(args: argparse.Namespace) -> int:
    """The `detect` subcommand's handler."""
    return run_detection_service(os.environ)


def run_detection_service(env: Mapping[str, str]) -> int:
    """Run until SIGTERM/SIGINT; 2 when the saved state is damaged (the log line says which and how)."""
    from buzzwatch.cli import stop_on_signals
    from buzzwatch.logs import configure_logging
    from buzzwatch.notify import Mailer
    from buzzwatch.pubsub import StreamTopology, check_credentials
    from buzzwatch.settings import CommonSettings
    from buzzwatch.telemetry import RecordingTelemetry, Telemetry
    from buzzwatch.zones import brand_names, brand_zones
    from models.reasons import load_reason_model
    from worker.detection_service.consumer import DetectionConsumer
    from worker.detection_service.dispatcher import AlertDispatcher
    from worker.detection_service.server import serve_health
    from worker.detection_service.service import DetectionService
    from worker.detection_service.settings import DetectionSettings
    from worker.detection_service.store import DetectionStore, StateError

    settings = CommonSettings.from_env(env)
    configure_logging(settings.log_level)
    detection = DetectionSettings.from_env(env)
    detection.feed_auth.check()
    check_credentials(settings.pubsub_emulator_host)  # before the store and the health server start
    stop = stop_on_signals()
    # The service keeps its latest figures for the app's Watch it page (served with /healthz).
    feed = RecordingTelemetry(Telemetry.from_settings(settings, role="detection"))
    try:
        reasons = load_reason_model()
        mailer = Mailer.from_settings(settings)
        try:
            store = DetectionStore(settings.database_url, reset_corrupt=detection.reset_state)
            service = DetectionService(
                store,
                AlertDispatcher(
                    feed, mailer, brand_zones(detection.brands_file), brand_names(detection.brands_file)
                ),
                feed,
                detection.detector,
                None,
                reasons,
                reset_state=detection.reset_state,
                owned_partitions=detection.owned_partitions,
                partitions=detection.partitions,
            )
        except StateError as exc:  # refuse to start on damaged state, saying which and how to reset
            mailer.close()
            logging.getLogger("buzzwatch.detection").critical(f"the detection service cannot start: {exc}")
            return 2
        mailer.start()  # delivers, on its own thread, what a previous run left in the spool
        health = serve_health(
            detection.health_port, service, feed, detection.health_host, detection.feed_auth
        )
        try:
            DetectionConsumer(service, detection).run(StreamTopology.from_settings(settings), stop)
        finally:
            health.shutdown()
            mailer.close()
            store.close()
    finally:
        feed.close()
    return 0
