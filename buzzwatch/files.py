"""Files a reader never sees half-written (written beside their final path, synced, then renamed over it),
and the one check-or-write mode of the scripts that generate committed files."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, TextIO


@contextmanager
def atomic_text_output(path: Path, *, newline: str | None = "") -> Iterator[TextIO]:
    """A text handle whose content replaces `path` only if the block completes (full disk: old file kept)."""
    with _atomic_output(path, "w", encoding="utf-8", newline=newline) as handle:
        yield handle


@contextmanager
def atomic_binary_output(path: Path) -> Iterator[BinaryIO]:
    """`atomic_text_output` for bytes (arrays saved by numpy, for one)."""
    with _atomic_output(path, "wb") as handle:
        yield handle


@contextmanager
def _atomic_output(path: Path, mode: str, **open_options: Any) -> Iterator[Any]:
    """The handle of a temporary file beside `path`, synced and renamed over it when the block completes.

    A path that is no regular file (a pipe, `/dev/stdout`, `/dev/null`) is written as it is: renamed over,
    a device became an ordinary file (as root, `score --output /dev/null` replaced /dev/null)."""
    if path.exists() and not path.is_file() and not path.is_dir():
        with path.open(mode, **open_options) as handle:
            yield handle
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(temporary, path.stat().st_mode & 0o777 if path.exists() else 0o644)  # mkstemp makes 0600
        with os.fdopen(descriptor, mode, **open_options) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def same_file(first: Path, second: Path) -> bool:
    """Whether two paths name one file (links and relative paths resolved; a missing one by its name)."""
    try:
        return first.samefile(second)
    except OSError:
        return first.resolve() == second.resolve()


def check_or_write(expected: Mapping[Path, str], *, check: bool, command: str) -> int:
    """A generator script's one mode switch: write the stale files, or with `check` name them and return 1.

    `expected` maps each generated file to the text it must have; `command` is what a person runs to
    regenerate them, quoted in the message. Returns the exit status (0: up to date or written).
    """
    stale = [path for path, text in expected.items() if _text(path) != text]
    names = ", ".join(_shown(path) for path in stale)
    if check:
        if stale:
            print(f"out of date: {names}; run: {command}", file=sys.stderr)
            return 1
        print(f"up to date: {', '.join(_shown(path) for path in expected)}")
        return 0
    for path in stale:
        with atomic_text_output(path) as handle:
            handle.write(expected[path])
    print(f"written: {names or 'none (all up to date)'}")
    return 0


def _shown(path: Path) -> str:
    """`path` relative to the working directory when it lies below it (shorter messages)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _text(path: Path) -> str | None:
    """The file's text exactly as stored (no newline translation), None if it is missing."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            return handle.read()
    except FileNotFoundError:
        return None
