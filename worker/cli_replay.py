"""`buzzwatch replay`: run a file of tweets (CSV or JSON lines) through the bad-buzz detector."""

from __future__ import annotations

import argparse
import functools
import math
import os
import signal
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from buzzwatch.cli import positive_count, stopped_by_signals, terminated_as_interrupted


def _speed(value: str) -> float:
    if value == "max":
        return math.inf
    try:
        speed = float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"--speed must be 'max' or a positive number, got {value!r}"
        ) from exc
    if not speed > 0:
        raise argparse.ArgumentTypeError(f"--speed must be 'max' or a positive number, got {value!r}")
    return speed


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `replay` subcommand."""
    parser = subparsers.add_parser(
        "replay",
        help="replay a file of tweets through the bad-buzz detector (event time) and write the alerts",
        description=(
            "Reads a CSV with id, created_at (ISO 8601; UTC unless it names an offset), text and brand "
            "columns (the brand's may be called airline or brands; an author column, author_id, author or "
            "name, is optional), or JSON lines of tweet objects with those fields (a file named .jsonl, "
            ".ndjson or .json), scores the tweets with the shared model (or takes the 'label' column "
            "with --oracle), runs the worker's detector in event time and writes one JSON object per "
            "alert. Every brand in the file is tracked under its brand id, as the ingester names it (the "
            "brands file: 'United' and ' united ' are united), with the default settings "
            "(BUZZWATCH_DETECTOR_* variables change them). Bad rows are reported and skipped. Ctrl-C or "
            "SIGTERM stops it: the alerts up to then are written, the summary printed (exit status 130)."
        ),
    )
    parser.add_argument(
        "--input", required=True, type=Path, help="CSV or JSON lines of tweets: id, created_at, text, brand"
    )
    parser.add_argument(
        "--alerts-out", required=True, type=Path, help="where to write the alerts (JSON lines)"
    )
    parser.add_argument(
        "--speed",
        type=_speed,
        default=math.inf,
        help="'max' (default) replays as fast as possible; a number N replays at N x real time",
    )
    parser.add_argument(
        "--oracle",
        action="store_true",
        help="skip the model and use the file's 'label' column (and its negativereason column, if any)",
    )
    parser.add_argument(
        "--model-uri", default=None, help="model to score with (default: BUZZWATCH_MODEL_URI)"
    )
    parser.add_argument(
        "--no-reasons",
        action="store_true",
        help="do not load the negative-reason classifier for explanations",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_count,
        default=2048,
        help="tweets scored per model call (default 2048)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not print each alert as it fires")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Replay the file; 0 when it ran (even with skipped rows), 2 when the input cannot be used."""
    from buzzwatch.files import same_file
    from buzzwatch.settings import CommandError, CommonSettings
    from buzzwatch.zones import BrandsFile, brands_file
    from worker.detection import BuzzDetector, DetectorConfig
    from worker.replay import ReplayError, ReplaySummary, fewer_collections, replay_rows, run_replay

    if same_file(args.input, args.alerts_out):  # opened for writing, it emptied the tweets it replays
        raise CommandError(f"--alerts-out is the input file {args.input}: write the alerts to another file")
    summary = ReplaySummary()
    brands = BrandsFile.read(brands_file(os.environ))  # once: the detector's zones, the rows' brand ids
    config = DetectorConfig.from_env(os.environ, brands)

    def show(alert: Any) -> None:
        if not args.quiet:
            print(
                f"ALERT [{alert.kind}] {alert.brand} at {alert.fired_at.isoformat()}: negative share "
                f"{alert.negative_share:.0%} (baseline {alert.baseline_share:.0%}), {alert.volume} tweets, "
                f"score {alert.score:.1f}; terms: {', '.join(alert.top_terms[:5]) or '-'}",
                flush=True,
            )

    with ExitStack() as held:
        held.enter_context(fewer_collections())  # reading and replaying allocate by the million
        model = None
        if not args.oracle:  # in a process of its own (the detector's Python keeps this one busy),
            from models.predictor_process import PredictorProcess  # loading while the file is read

            model_uri = args.model_uri or CommonSettings.from_env().model_uri
            model = held.enter_context(PredictorProcess(model_uri))
        held.enter_context(terminated_as_interrupted())  # while the file is read: SIGTERM as Ctrl-C
        try:  # read once, in event-time order, holding a bounded part of the file in memory
            rows = held.enter_context(replay_rows(args.input, args.oracle, summary, brand_ids=brands.ids()))
        except ReplayError as exc:
            raise CommandError(str(exc)) from None
        summary.skipped.print(sys.stderr)
        if model is not None:
            from models.predictor import ModelLoadError

            try:
                model.wait_ready()
            except ModelLoadError as exc:
                raise CommandError(
                    f"cannot load the model ({exc}); --oracle replays with the file's labels"
                ) from None
        from models.reasons import load_reason_model

        detector = BuzzDetector(config, reason_model=None if args.no_reasons else load_reason_model())

        # Ctrl-C or SIGTERM stops the replay cleanly (the alerts so far written, the summary printed); a
        # second one at once
        stop = held.enter_context(stopped_by_signals(second_signal_interrupts=True))
        try:
            args.alerts_out.parent.mkdir(parents=True, exist_ok=True)
            with args.alerts_out.open("w", encoding="utf-8") as out:
                run_replay(
                    rows,
                    detector,
                    out,
                    summary,
                    model=model,
                    speed=args.speed,
                    batch_size=args.batch_size,
                    on_alert=show,
                    wait=functools.partial(_wait_saying_so, stop.wait),
                    stop=stop,
                )
        except OSError as exc:
            raise CommandError(f"cannot write {args.alerts_out}: {exc}") from None
    for line in summary.lines():
        print(line)
    print(f"alerts written to {args.alerts_out}")
    return 128 + signal.SIGINT if summary.stopped else 0


LONG_WAIT_S = 60.0  # a `--speed N` wait this long is announced


def _wait_saying_so(wait: Callable[[float], bool], seconds: float) -> bool:
    """`wait`, saying so on stderr first when it is long: one far-future tweet at `--speed N` made the
    replay wait for days without a word."""
    if seconds >= LONG_WAIT_S:
        hours = seconds / 3600
        span = f"{hours:,.1f} h" if hours >= 1 else f"{seconds / 60:.0f} min"
        print(f"waiting {span} for the next tweet at this --speed (Ctrl-C stops)", file=sys.stderr)
    return wait(seconds)
