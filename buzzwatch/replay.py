"""Replay files: the one CSV reader, the one event-time sort and the one event-time pacing loop.

The ingester's file replay (`buzzwatch ingest --source replay`) and the in-process replay through the
detector (`buzzwatch replay`, the detection benchmark) read the same files the same way and pace them the
same way, so a file replayed either way gives the detector the same tweets. What a row means (brand
attribution, oracle labels) is each caller's; a tweet's text rule is `TweetEvent.from_dict`'s, the one
every source goes through.

A replay file need not be in event-time order, and it may be larger than memory: `EventTimeOrder` sorts
it holding at most `SORT_RUN_ITEMS` tweets at a time (sorted runs spilled to unnamed temporary files,
then merged), so a replay's memory does not grow with its file.
"""

from __future__ import annotations

import csv
import heapq
import math
import pickle
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Generic, TextIO, TypeVar

from buzzwatch.settings import CommandError

# Tweets are short, but a row may hold a quoted newline-rich text; far beyond this it is no tweet, and
# schema validation refuses it cleanly instead of the csv module raising mid-file.
CSV_FIELD_LIMIT = 1_000_000

# Tweets a replay holds in memory while it puts a file in event-time order (about 1 KB each).
SORT_RUN_ITEMS = 50_000
# Items pickled together in a spilled run: a quarter of the CPU of one pickle per item (measured on replay
# rows); a merge holds one such block per run.
SPILL_BLOCK_ITEMS = 256

Item = TypeVar("Item")


@dataclass(frozen=True)
class CsvRow:
    """One CSV record: the line it ends on, its non-empty cells, or why it cannot be read."""

    line: int
    values: dict[str, str]
    problem: str | None = None


class ReplayCsv:
    """The rows of a replay CSV opened by `open_replay_csv`; `columns` is the header."""

    def __init__(self, handle: TextIO) -> None:
        csv.field_size_limit(CSV_FIELD_LIMIT)
        self._reader = csv.DictReader(handle)
        self.columns: frozenset[str] = frozenset(self._reader.fieldnames or ())

    def missing(self, required: Iterable[str]) -> str | None:
        """None when the header has every `required` column, else which are missing and what it has."""
        absent = [name for name in required if name not in self.columns]
        if not absent:
            return None
        if not self.columns:
            return f"the file is empty: it needs a header line with {', '.join(required)}"
        found = ", ".join(sorted(self.columns)) or "none"
        return f"missing column(s) {', '.join(absent)}; found {found}"

    def __iter__(self) -> Iterator[CsvRow]:
        """Every record in file order; an unreadable one is a row with its `problem`, and reading goes on."""
        while True:
            try:
                row = next(self._reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield CsvRow(self._reader.line_num, {}, f"unreadable CSV row: {exc}")
                continue
            if None in row:
                yield CsvRow(self._reader.line_num, {}, "more fields than the header")
                continue
            yield CsvRow(self._reader.line_num, {key: value for key, value in row.items() if value})


UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")  # what Excel's "Unicode text" and PowerShell's redirection write


def open_replay_text(path: Path) -> TextIO:
    """A replay file's text: UTF-8 with or without a byte-order mark; a byte that is not UTF-8 becomes U+FFFD.

    A UTF-16 file is a CommandError saying so: read as UTF-8, every line of it was noise (a CSV header
    "missing column(s) ...", every JSON line "not valid JSON").
    """
    with path.open("rb") as raw:
        if raw.read(2) in UTF16_MARKS:
            raise CommandError(f"{path} is UTF-16 text; save it as UTF-8")
    return path.open(encoding="utf-8-sig", errors="replace", newline="")


@contextmanager
def open_replay_csv(path: Path) -> Iterator[ReplayCsv]:
    """Open a replay CSV (as `open_replay_text` reads it)."""
    with open_replay_text(path) as handle:
        yield ReplayCsv(handle)


class EventTimeOrder(Generic[Item]):
    """`items` in `key` order, ties in input order (a stable sort), holding at most `run_items` in memory.

    Reading happens here, all of it, so a caller's bad-row counts are final and `len()` is known before the
    first item is used; each full run of `run_items` is sorted and spilled to an unnamed temporary file
    (None: nothing is, for a caller who wants a list anyway), and iterating (once) merges the runs. Close
    it, or use it as a context manager, to free the files.
    """

    def __init__(
        self, items: Iterable[Item], key: Callable[[Item], Any], run_items: int | None = SORT_RUN_ITEMS
    ) -> None:
        self._key = key
        self._files = ExitStack()
        self._runs: list[IO[bytes]] = []
        self._held: list[Item] = []
        self._count = 0
        try:
            for item in items:
                self._held.append(item)
                self._count += 1
                if run_items is not None and len(self._held) >= run_items:
                    self._spill()
        except BaseException:
            self.close()
            raise
        self._held.sort(key=key)

    def _spill(self) -> None:
        self._held.sort(key=self._key)
        try:
            temporary = tempfile.TemporaryFile(prefix="buzzwatch-replay-")  # noqa: SIM115 - the stack closes it
            run = self._files.enter_context(temporary)
            self._runs.append(run)
            for start in range(0, len(self._held), SPILL_BLOCK_ITEMS):
                block = self._held[start : start + SPILL_BLOCK_ITEMS]
                pickle.dump(block, run, protocol=pickle.HIGHEST_PROTOCOL)
            run.seek(0)
        except OSError as exc:
            raise CommandError(
                f"cannot sort the replay by event time: no room for a temporary file in "
                f"{tempfile.gettempdir()} ({exc}); set TMPDIR to a folder with room"
            ) from None
        self._held = []

    @staticmethod
    def _read(run: IO[bytes]) -> Iterator[Item]:
        while True:
            try:
                yield from pickle.load(run)  # a block this process wrote a moment ago
            except EOFError:
                return

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Item]:
        if not self._runs:
            yield from self._held
            return
        # heapq.merge breaks ties by argument order: the runs in file order, the held (last) run last.
        yield from heapq.merge(*(self._read(run) for run in self._runs), self._held, key=self._key)

    def close(self) -> None:
        """Delete the spilled runs."""
        self._files.close()
        self._runs = []

    def __enter__(self) -> EventTimeOrder[Item]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_by_sleeping(seconds: float) -> bool:
    """`paced`'s default wait: sleep, never stop."""
    time.sleep(seconds)
    return False


def paced(
    items: Iterable[Item],
    event_time: Callable[[Item], datetime],
    speed: float | None,
    wait: Callable[[float], bool] = wait_by_sleeping,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Item]:
    """Yield items at `speed` times event time (60: an event minute a second; None or inf: at once).

    Each item is due at the start plus its event-time offset from the first item divided by `speed`, so a
    slow consumer catches up instead of drifting. `wait(seconds)` waits and says whether to stop
    (`threading.Event.wait` ends a replay mid-wait); an item already due is yielded without waiting.
    """
    if speed is None or math.isinf(speed):
        yield from items
        return
    started = clock()
    first: datetime | None = None
    for item in items:
        moment = event_time(item)
        if first is None:
            first = moment
        delay = started + (moment - first).total_seconds() / speed - clock()
        if delay > 0 and wait(delay):
            return
        yield item
