"""The `buzzwatch` command: one entry point whose subcommands live with the component they drive.

Each component exposes `register(subparsers)` in its own `cli` module, adding its subcommands with
`set_defaults(handler=...)`; a handler takes the parsed arguments and returns the exit code. Component
CLI modules import their heavy dependencies inside the handlers, so `buzzwatch --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from buzzwatch import __version__
from buzzwatch.settings import SettingsError

COMPONENT_CLIS: tuple[str, ...] = ("api.cli", "ingest.cli", "worker.cli_replay", "models.cli", "worker.cli")


def port_number(value: str) -> int:
    """An argparse type for --port options whose default is $PORT: a clear error names both."""
    port = int(value) if value.strip().isdigit() else 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number 1-65535 (from --port or $PORT)")
    return port


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every component's subcommands."""
    parser = argparse.ArgumentParser(
        prog="buzzwatch",
        description="BuzzWatch: tweet-sentiment monitoring, bad-buzz alerts and on-demand scoring.",
    )
    parser.add_argument("--version", action="version", version=f"buzzwatch {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMPONENT_CLIS:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and run the chosen subcommand."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except SettingsError as exc:  # a malformed variable: one line that names it, not a traceback
        print(f"buzzwatch {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
