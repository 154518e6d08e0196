"""`buzzwatch ingest`: publish tweets from a source to Pub/Sub."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

SOURCE_HELP = (
    "x-stream: the X API v2 filtered stream (rules synced from the brands file; X_BEARER_TOKEN); "
    "x-search: recent search polled per brand from since_id (X_BEARER_TOKEN); "
    "replay: a CSV or JSON-lines file in event-time order; stdin: JSON lines on standard input"
)


def replay_speed(value: str) -> float | None:
    """An argparse type for --speed: a positive factor of event time, or 'max' (or 0): None."""
    if value.lower() in {"max", "0"}:
        return None
    try:
        speed = float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("--speed is a positive number or 'max'") from exc
    if not speed > 0:  # NaN too: it replayed at full speed as if it were 'max'
        raise argparse.ArgumentTypeError("--speed is a positive number or 'max'")
    return speed


def tweet_limit(value: str) -> int:
    """An argparse type for --limit: a positive count (a negative one sliced the replay from its end)."""
    count = int(value) if value.strip().isdigit() else 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"--limit is a positive number of tweets, got {value!r}")
    return count


def progress_seconds(value: str) -> float:
    """An argparse type for --progress-every: seconds, 0 for never (-5 and nan meant never without a word)."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:
        raise argparse.ArgumentTypeError(
            f"--progress-every is a number of seconds, 0 for never; got {value!r}"
        )
    return seconds


def register(subparsers: Any) -> None:
    """Add the `ingest` subcommand."""
    ingest = subparsers.add_parser(
        "ingest",
        help="read tweets from the X API, a file or stdin and publish them to Pub/Sub",
        description=(
            "Read tweets from one source, attribute each to its brand(s) (config/brands.toml) and publish "
            "it as a TweetEvent (JSON, attributes brand/lang/source) to the tweets topic. Pub/Sub is the "
            "emulator when PUBSUB_EMULATOR_HOST is set. Bad input lines are reported and skipped. Stops at "
            "the end of the input or on SIGINT/SIGTERM, after every publish is confirmed; prints a JSON "
            "summary and exits 1 if any message could not be published (those are in "
            "$BUZZWATCH_VAR_DIR/ingest/failed.jsonl, re-publishable with --source stdin)."
        ),
    )
    ingest.add_argument(
        "--source", required=True, choices=("x-stream", "x-search", "replay", "stdin"), help=SOURCE_HELP
    )
    ingest.add_argument(
        "--input",
        type=Path,
        help="the file to replay (CSV with id,created_at,text[,brand|airline] or JSON lines)",
    )
    ingest.add_argument(
        "--format", choices=("csv", "jsonl"), help="file format when the extension does not say"
    )
    ingest.add_argument(
        "--speed",
        type=replay_speed,
        default=None,
        help="replay speed: 'max' (default) as fast as possible, or a factor of event time (60 = 1 min/s)",
    )
    ingest.add_argument("--limit", type=tweet_limit, help="publish at most this many tweets (replay, stdin)")
    ingest.add_argument(
        "--progress-every",
        type=progress_seconds,
        default=30.0,
        metavar="SECONDS",
        help="log a progress line this often: tweets published, event time reached (default 30; 0: never)",
    )
    ingest.add_argument(
        "--brands", type=Path, help="brands file (default: $BUZZWATCH_BRANDS_FILE or config/brands.toml)"
    )
    ingest.set_defaults(handler=run_ingest_command)


def run_ingest_command(args: argparse.Namespace) -> int:
    """Handler of `buzzwatch ingest`."""
    from buzzwatch.cli import stop_on_signals
    from buzzwatch.logs import configure_logging
    from buzzwatch.pubsub import StreamTopology
    from buzzwatch.schema import SchemaError
    from buzzwatch.settings import CommandError, CommonSettings, SettingsError
    from ingest.brands import BrandConfigError
    from ingest.service import IngestSettings, SourceOptions, run_ingest
    from ingest.xapi import StreamFatalError, tweepy

    env = dict(os.environ)
    try:
        common = CommonSettings.from_env(env)
        configure_logging(common.log_level)
        settings = IngestSettings.from_env(env, common)
        if args.brands is not None:
            settings = IngestSettings(**{**vars(settings), "brands_path": args.brands})
        if args.source == "replay" and args.input is None:
            raise SettingsError("--input is required with --source replay")
        given = [option for option in ("input", "format", "speed") if getattr(args, option) is not None]
        if args.source != "replay" and given:  # `--source stdin --input F` waited on stdin, F unread
            named = ", ".join(f"--{option}" for option in given)
            raise SettingsError(
                f"{named}: only with --source replay (--source {args.source} does not read it)"
            )
        if args.input is not None and (not args.input.exists() or args.input.is_dir()):
            missing = "is a folder" if args.input.is_dir() else "does not exist"
            raise SettingsError(f"--input {args.input} {missing}; give a file (a pipe or /dev/stdin will do)")
        options = SourceOptions(
            source=args.source,
            input_path=args.input,
            file_format=args.format,
            speed=args.speed,
            limit=args.limit,
            progress_every_s=args.progress_every,
        )
        summary = run_ingest(
            options,
            StreamTopology.from_settings(common),
            settings,
            stop_on_signals(second_signal_interrupts=True),
        )
    except (BrandConfigError, SchemaError, StreamFatalError, tweepy.TweepyException) as exc:
        raise CommandError(str(exc)) from None
    print(json.dumps({"summary": summary}), flush=True)
    if summary["failed"]:
        return 1
    if args.source == "replay" and summary["stopped"]:  # as `buzzwatch replay`: 130, the file not all sent
        print("buzzwatch ingest: interrupted before the end of the file", file=sys.stderr)
        return 130
    return 0
