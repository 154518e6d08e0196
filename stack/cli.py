"""`buzzwatch demo` (the whole local stack on a replay) and `buzzwatch emulator` (the local Pub/Sub)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from buzzwatch.cli import listen_port
from ingest.cli import replay_speed


def _tweet_count(value: str) -> int:
    """--tweets: a positive number, checked before the stack starts."""
    count = int(value) if value.strip().isdigit() else 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of tweets")
    return count


def _ingest_speed(value: str) -> str:
    """--speed as the ingester takes it, checked before the stack starts; handed on as given."""
    replay_speed(value)
    return value


def _emulator_port(value: str) -> int:
    """--port of the emulator: 0 picks a free one."""
    return listen_port(value, lowest=0, hint=" (0 picks a free one)")


def register(subparsers: Any) -> None:
    """Add the `demo` and `emulator` subcommands."""
    demo = subparsers.add_parser(
        "demo",
        help="run the whole local stack on a replay of real tweets with a bad buzz, then print a summary",
        description=(
            "Starts the Pub/Sub emulator, the topics and subscriptions (push to the local worker, "
            "dead letter), "
            "the scoring worker (granian), the detection service, an SMTP sink, and replays real airline "
            "tweets from data/ with an injected bad buzz through the ingester. Alerts are printed and mailed "
            "to the sink (saved as .eml under the demo folder). Ends by itself with a summary; Ctrl-C or "
            "SIGTERM stops everything it started, cleanly."
        ),
    )
    demo.add_argument(
        "--tweets", type=_tweet_count, default=3000, help="background tweets to replay (default 3000)"
    )
    demo.add_argument(
        "--speed",
        type=_ingest_speed,
        default="150",
        help="replay speed: a factor of event time (default 150: about 2.5 minutes) or 'max'",
    )
    demo.add_argument(
        "--outbox", action="store_true", help="write mails to the outbox instead of an SMTP sink"
    )
    demo.add_argument(
        "--with-api",
        action="store_true",
        help="also serve the scoring API (buzzwatch api, on 19080 when free); the stack then stays up after "
        "the summary until Ctrl-C",
    )
    demo.add_argument(
        "--with-ui",
        action="store_true",
        help="also start the Streamlit app (buzzwatch ui, on 8501 when free; it talks to the demo's API); "
        "the stack then stays up after the summary until Ctrl-C",
    )
    demo.add_argument("--keep-running", action="store_true", help="keep the stack up after the replay")
    demo.set_defaults(handler=run_demo_command)

    emulator = subparsers.add_parser(
        "emulator",
        help="run the Pub/Sub emulator in the foreground and create the topics and subscriptions",
        description=(
            "Start the official Pub/Sub emulator (one Java process), create the BuzzWatch topics (tweets, "
            "tweets-scored, dead letter) and subscriptions (push to --push-endpoint, else pull; dead-letter "
            "policy), print the PUBSUB_EMULATOR_HOST to export, and run until Ctrl-C or SIGTERM."
        ),
    )
    emulator.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    emulator.add_argument(
        "--port", type=_emulator_port, default=8085, help="port (default 8085; 0 picks a free one)"
    )
    emulator.add_argument(
        "--push-endpoint", help="make the tweets subscription push to this URL (the worker)"
    )
    emulator.add_argument(
        "--no-topology", action="store_true", help="start the emulator only, create nothing"
    )
    emulator.set_defaults(handler=run_emulator_command)


def run_demo_command(args: argparse.Namespace) -> int:
    """The README's main job."""
    from stack.demo import DemoOptions, run_demo

    return run_demo(
        DemoOptions(
            tweets=args.tweets,
            speed=args.speed,
            outbox=args.outbox,
            with_api=args.with_api,
            with_ui=args.with_ui,
            keep_running=args.keep_running,
        )
    )


def run_emulator_command(args: argparse.Namespace) -> int:
    """Handler of `buzzwatch emulator`: runs until Ctrl-C or SIGTERM, or until the emulator exits."""
    from buzzwatch.logs import configure_logging
    from buzzwatch.pubsub import StreamTopology
    from buzzwatch.settings import CommandError, CommonSettings
    from stack.emulator import EmulatorError, PubSubEmulator
    from stack.processes import deaf_to_signals, sigterm_interrupts

    common = CommonSettings.from_env()
    configure_logging(common.log_level)
    with sigterm_interrupts():
        try:
            emulator = PubSubEmulator(port=args.port, host=args.host, project=common.gcp_project)
            emulator.start()
        except EmulatorError as exc:
            raise CommandError(str(exc)) from None
        except KeyboardInterrupt:  # stopped while it started: start() stopped the process
            return 0
        try:
            paths: dict[str, str] = {}
            if not args.no_topology:
                topology = StreamTopology.from_settings(
                    CommonSettings.from_env({**os.environ, **emulator.env()})
                )
                paths = topology.ensure(push_endpoint=args.push_endpoint)
            print(
                json.dumps(
                    {
                        "emulator": emulator.endpoint,
                        "pid": emulator.pid,
                        "export": f"export PUBSUB_EMULATOR_HOST={emulator.endpoint} "
                        f"GOOGLE_CLOUD_PROJECT={common.gcp_project}",
                        "created": paths,
                    }
                ),
                flush=True,
            )
            while emulator.is_running():
                time.sleep(1.0)
            print("buzzwatch emulator: the emulator process exited", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 0
        finally:
            with deaf_to_signals():
                emulator.close()
