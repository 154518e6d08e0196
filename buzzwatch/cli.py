"""The `buzzwatch` command: one entry point whose subcommands live with the component they drive.

Components register their subcommands as entry points of the group `buzzwatch.commands`
(`[project.entry-points."buzzwatch.commands"]` in pyproject.toml): one entry point per subcommand, named
after it, whose object is the component's `register(subparsers)`. Several subcommands of one component
name the same function; it is called once and adds them all, each with `set_defaults(handler=...)`; a
handler takes the parsed arguments and returns the exit code. Component CLI modules import their heavy
dependencies inside the handlers, so `buzzwatch --help` stays fast. The shared core thus imports no
component: a component that is absent or broken here (a slim image ships only its own) is listed as
unavailable with the reason, and running one of its subcommands prints that reason.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

from buzzwatch import __version__
from buzzwatch.settings import CommandError

COMMANDS_GROUP = "buzzwatch.commands"


def listen_port(value: str, lowest: int = 1, hint: str = "") -> int:
    """An argparse type for --port: `lowest`-65535, else a clear error (with `hint`), never a traceback."""
    port = int(value) if value.strip().isdigit() else -1
    if not lowest <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number {lowest}-65535{hint}")
    return port


def port_number(value: str) -> int:
    """An argparse type for --port options whose default is $PORT: a clear error names both."""
    return listen_port(value, hint=" (from --port or $PORT)")


MAX_COUNT = 1_000_000_000  # a count past this is a typo (`--batch-size 99999999999999999999` overflowed)


def positive_count(value: str, hint: str = "") -> int:
    """An argparse type for counts (--workers, --threads): a whole number from 1 to MAX_COUNT, else a clear
    error."""
    count = int(value) if value.strip().isdigit() else 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive whole number{hint}")
    if count > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{value!r} is more than {MAX_COUNT:,}{hint}")
    return count


def count_or_variable(variable: str) -> Callable[[str], int]:
    """`positive_count` for an option whose default is $`variable`: a clear error names both."""
    return lambda value: positive_count(value, f" (from the option or ${variable})")


def stop_on_signals(second_signal_interrupts: bool = False) -> threading.Event:
    """SIGINT/SIGTERM set the returned event (a clean stop); optionally a second one stops at once.

    The second-signal rule raises KeyboardInterrupt in the main thread: for a command a person runs and
    may want to cut short while it drains (the ingester), not for a service whose stop must checkpoint.
    """
    stop = threading.Event()

    def handle(signum: int, frame: object) -> None:
        if second_signal_interrupts and stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    return stop


@contextmanager
def stopped_by_signals(second_signal_interrupts: bool = False) -> Iterator[threading.Event]:
    """`stop_on_signals` for the block only: the handlers before it are put back after it (a command that
    ends, run where the process goes on: the tests, a notebook)."""
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop_on_signals(second_signal_interrupts)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextmanager
def terminated_as_interrupted() -> Iterator[None]:
    """SIGTERM as Ctrl-C for the block: KeyboardInterrupt, so `main` says "interrupted" (exit status 130)
    and the command's cleanup runs, where SIGTERM's default ended the process at once (143, nothing said).
    The previous handler is put back after."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def installed_commands() -> tuple[EntryPoint, ...]:
    """The subcommand entry points of the installed project (its package metadata)."""
    return tuple(entry_points(group=COMMANDS_GROUP))


@dataclass
class CommandLine:
    """The parser with every subcommand that could be registered, and why the others could not."""

    parser: argparse.ArgumentParser
    unavailable: dict[str, str] = field(default_factory=dict)  # subcommand -> reason


def build_command_line(commands: Iterable[EntryPoint] | None = None) -> CommandLine:
    """Register each component's subcommands; a component that fails to load is reported, not raised."""
    parser = argparse.ArgumentParser(
        prog="buzzwatch",
        description="BuzzWatch: tweet-sentiment monitoring, bad-buzz alerts and on-demand scoring.",
    )
    parser.add_argument("--version", action="version", version=f"buzzwatch {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    by_target: dict[str, list[EntryPoint]] = {}
    for entry in installed_commands() if commands is None else commands:
        by_target.setdefault(entry.value, []).append(entry)
    line = CommandLine(parser)
    for target, entries in by_target.items():
        try:
            entries[0].load()(subparsers)
        except Exception as exc:  # any failure of a plugin's import or registration: name it, go on
            reason = f"{target}: {type(exc).__name__}: {exc}"
            line.unavailable.update(dict.fromkeys((entry.name for entry in entries), reason))
    names_by_reason: dict[str, list[str]] = {}
    for name, reason in sorted(line.unavailable.items()):
        names_by_reason.setdefault(reason, []).append(name)
    if names_by_reason:
        parser.epilog = "unavailable here: " + "; ".join(
            f"{', '.join(names)} ({reason})" for reason, names in names_by_reason.items()
        )
    if not by_target:
        parser.epilog = (
            f"no subcommand is registered ({COMMANDS_GROUP}): install the project, pip install -e ."
        )
    return line


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every available component's subcommands."""
    return build_command_line().parser


def main(argv: Sequence[str] | None = None, commands: Iterable[EntryPoint] | None = None) -> int:
    """Parse the arguments and run the chosen subcommand (`commands`: other than the installed ones)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    line = build_command_line(commands)
    if arguments and arguments[0] in line.unavailable:
        print(
            f"buzzwatch {arguments[0]}: unavailable here: {line.unavailable[arguments[0]]}", file=sys.stderr
        )
        return 2
    args = line.parser.parse_args(arguments)
    handler = getattr(args, "handler", None)
    if handler is None:
        line.parser.print_help()
        return 2
    try:
        code = int(handler(args) or 0)
        sys.stdout.flush()  # a reader gone away is found here, not in the interpreter's exit
        return code
    except BrokenPipeError:  # `buzzwatch ... | head`: the reader has what it wanted; stop as `cat` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 128 + signal.SIGPIPE
    except CommandError as exc:  # a malformed variable, a missing file: one line, not a traceback
        print(f"buzzwatch {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C in a command that does not stop by itself (score, evaluate, train)
        print(f"buzzwatch {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
