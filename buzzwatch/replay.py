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
import gzip
import heapq
import io
import math
import pickle
import re
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from pathlib import Path
from typing import IO, Any, Generic, TextIO, TypeVar

from buzzwatch.schema import SchemaError, load_json
from buzzwatch.settings import CommandError

# Tweets are short, but a row may hold a quoted newline-rich text; far beyond this it is no tweet, and
# schema validation refuses it cleanly instead of the csv module raising mid-file.
CSV_FIELD_LIMIT = 1_000_000

# Tweets a replay holds in memory while it puts a file in event-time order (about 1 KB each).
SORT_RUN_ITEMS = 50_000
# Items pickled together in a spilled run: a quarter of the CPU of one pickle per item (measured on replay
# rows); a merge holds one such block per run.
SPILL_BLOCK_ITEMS = 256
# Skipped rows reported one by one; the others are counted.
MAX_REPORTED_ERRORS = 20
# File names that say JSON lines (one tweet object per line) rather than CSV.
JSON_LINES_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})
GZIP_MAGIC = b"\x1f\x8b"

Item = TypeVar("Item")


@dataclass(frozen=True)
class CsvRow:
    """One CSV record: the line it ends on, its non-empty cells, or why it cannot be read."""

    line: int
    values: dict[str, str]
    problem: str | None = None


class CsvError(CommandError):
    """A CSV that cannot be read at all (UTF-16, no usable header); the message names the file."""


# What `errors="surrogateescape"` decodes a byte that is not UTF-8 to (U+DC80 + the byte); valid UTF-8 never
# decodes to these, so a cell holding one came from such a byte.
UNDECODABLE_BYTE = re.compile("[\udc80-\udcff]")


def undecodable(text: str) -> str | None:
    """Why `text` (read by `replay_text`) is unreadable: it holds a byte that is not UTF-8; else None."""
    found = UNDECODABLE_BYTE.search(text)
    if found is None:
        return None
    return f"not UTF-8 text (byte {ord(found.group()) - 0xDC00:#04x}); save the file as UTF-8"


class ReplayCsv:
    """The rows of a CSV opened by `open_replay_csv`; `header` is its column names in order.

    A header line without a comma but with semicolons (or tabs) is read with those: Excel's "CSV" where the
    decimal mark is a comma (French) separates with ';'. An unnamed column (Excel's trailing empty ones) is
    called `Unnamed: N` (N its 0-based position), the name pandas gives it, so its cells are kept.
    """

    def __init__(self, handle: TextIO) -> None:
        csv.field_size_limit(CSV_FIELD_LIMIT)
        leading: list[str] = []
        for line in handle:  # blank lines before the header are skipped, as the csv module skips them
            leading.append(line)
            if line.strip():
                break
        first = leading[-1] if leading else ""
        separator = next((mark for mark in (";", "\t") if "," not in first and mark in first), ",")
        self._lines = _RecordLines(chain(leading, handle))
        self._records = csv.reader(self._lines, delimiter=separator)
        self._unreadable: str | None = None
        names: list[str] = []
        try:
            for cells in self._records:
                if not _blank(cells):
                    names = cells
                    break
                self._lines.start_record()
        except csv.Error as exc:
            self._unreadable = str(exc)
        if self._lines.exhausted and len(self._lines.taken) > 1:
            self._unreadable, names = f"{UNCLOSED_QUOTE} (the rest of the file would be its names)", []
        self.header = tuple(name or f"Unnamed: {position}" for position, name in enumerate(names))
        self.columns: frozenset[str] = frozenset(self.header)

    def padded(self, names: Iterable[str]) -> list[str]:
        """The header's names that are one of `names` but for spaces around them or capitals (`id, text`:
        ' text'; `ID,Text`)."""
        wanted = set(names)
        return sorted(name for name in self.columns if name not in wanted and name.strip().lower() in wanted)

    def header_problem(self, required: Sequence[str] = ()) -> str | None:
        """None when the header is readable, names each column once and has every `required` one, else why."""
        if self._unreadable is not None:
            return f"the header line cannot be read as CSV: {self._unreadable}"
        if not self.header:
            needed = ", ".join(required) or "its column names"
            return f"the file is empty: it needs a header line with {needed}"
        twice = sorted(name for name, count in Counter(self.header).items() if count > 1)
        if twice:  # only one of the two would be read: the other's cells lost without a word
            return f"the header names {', '.join(twice)} more than once; rename the copies"
        absent = [name for name in required if name not in self.columns]
        if not absent:
            return None
        problem = f"missing column(s) {', '.join(absent)}; found {', '.join(sorted(self.columns))}"
        padded = self.padded(absent)
        if padded:  # "id, created_at, text": a space after each comma is part of the next name
            problem += (
                f" (names with spaces around them or capitals: {', '.join(map(repr, padded))}; write them "
                "as the names above, lower-case)"
            )
        return problem

    def __iter__(self) -> Iterator[CsvRow]:
        """Every record in file order; an unreadable one is a row with its `problem`, and reading goes on.

        A blank line is skipped; a row holding a byte that is not UTF-8 is unreadable, not read altered. A
        quote that opens a cell and is never closed makes its row unreadable (at the line it starts on) and
        the lines after it rows again: the csv module had read them all into that cell. So does one that a
        later row's quoted text closes (`_joins_rows`): the csv module read the rows between into that cell.
        """
        width = len(self.header)
        widths = {width}  # a row's: the header's, or one a row had (rows that leave out trailing cells)
        lines = self._lines
        while True:
            first_line = lines.start_record()
            try:
                cells = next(self._records)
            except StopIteration:
                return
            except csv.Error as exc:  # a cell over the field limit
                unclosed = f" ({UNCLOSED_QUOTE}?); {READ_ON}" if len(lines.taken) > 1 else ""
                yield CsvRow(first_line, {}, f"unreadable CSV row: {exc}{unclosed}")
                lines.read_again_after_first(first_line)
                continue
            if lines.exhausted and len(lines.taken) > 1:  # the csv module ends such a cell at the file's end
                yield CsvRow(
                    first_line, {}, f"{UNCLOSED_QUOTE}, so the rest of the file was one cell; {READ_ON}"
                )
                lines.read_again_after_first(first_line)
                continue
            line = lines.number
            if len(lines.taken) > 1 and _joins_rows(lines.taken, self._records.dialect.delimiter, widths):
                joined = f"only line {line}'s quoted text closes, so lines {first_line}-{line} were one row"
                yield CsvRow(first_line, {}, f'a quote (") opens a cell here that {joined}; {READ_ON}')
                lines.read_again_after_first(first_line)
                continue
            if _blank(cells):
                continue
            if len(cells) > width:
                yield CsvRow(line, {}, "more fields than the header")
                continue
            problem = next(filter(None, map(undecodable, cells)), None)
            if problem is not None:
                yield CsvRow(line, {}, problem)
                continue
            named = zip(self.header, cells, strict=False)  # a short row: its missing cells are empty
            widths.add(len(cells))
            yield CsvRow(line, {name: value for name, value in named if value})


UNCLOSED_QUOTE = 'a quote (") opens a cell here that is never closed'
READ_ON = 'the lines after this one are read on their own (quote the text, "" for a quote inside it)'


class _RecordLines:
    """The lines a csv reader takes, those of the record being read kept, so that a record which swallowed
    the lines after it (a quote that opens a cell and is never closed) is read again from its second line.

    `exhausted` says the reader asked past the end of the file while reading the record: the csv module does
    that only inside a quoted cell, which it then ends at the end of the file without an error.
    """

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self._again: list[str] = []  # lines to give again, last first
        self.taken: list[str] = []  # the lines of the record being read
        self.number = 0  # the number of the last line taken
        self.exhausted = False

    def __iter__(self) -> _RecordLines:
        return self

    def __next__(self) -> str:
        if self._again:
            line = self._again.pop()
        else:
            try:
                line = next(self._lines)
            except StopIteration:
                self.exhausted = True
                raise
        self.taken.append(line)
        self.number += 1
        return line

    def start_record(self) -> int:
        """Forget the lines of the record read last; the number of the line the next one starts on."""
        self.taken = []
        return self.number + 1

    def read_again_after_first(self, first_line: int) -> None:
        """Give the lines of the record being read, but its first (on `first_line`), to the reader again."""
        self._again.extend(reversed(self.taken[1:]))
        self.taken = []
        self.number = first_line
        self.exhausted = False


def _joins_rows(record: list[str], delimiter: str, widths: set[int]) -> bool:
    """Whether a record over several lines is rows that a stray quote joined: each of its lines after the
    first reads on its own as a whole row, as many cells as one of `widths` (or a blank line), and the quote
    that ends its cell is followed by more text, which the csv module takes unless strict (the opening quote
    of a later row's quoted text, `5,...,"late again",united`). A text on several lines, quoted, passes the
    strict reading; its last line holds the end of its text and the cells after it, not a row. So does a
    stray quote that a later row's text closes before a comma (`6,...,oops",united`): that file is valid
    CSV, a text over those lines (so Python's strict reader and pandas read it), and is read so."""
    for line in record[1:]:
        cells = next(csv.reader([line], delimiter=delimiter), [])
        if len(cells) not in widths and not _blank(cells):
            return False
    try:
        for _ in csv.reader(record, delimiter=delimiter, strict=True):
            pass
    except csv.Error:
        return True
    return False


def _blank(cells: list[str]) -> bool:
    """Whether a record is a blank line: nothing, or nothing but spaces or tabs (pandas skips those too).

    A quoted empty cell alone on its line (`""`) is a row, with that one empty cell.
    """
    return not cells or (len(cells) == 1 and cells[0] != "" and not cells[0].strip(" \t"))


@dataclass
class SkippedRows:
    """Rows a reader skipped: how many, and why for the first `MAX_REPORTED_ERRORS` of them."""

    count: int = 0
    reported: list[str] = field(default_factory=list)

    def add(self, line: int, reason: str) -> None:
        """Count one skipped row (the record ending on `line`)."""
        self.count += 1
        if len(self.reported) < MAX_REPORTED_ERRORS:
            self.reported.append(f"line {line}: {reason}")

    def print(self, stream: TextIO) -> None:
        """Report them on `stream`: the first few in full, then how many more."""
        for message in self.reported:
            print(f"skipped {message}", file=stream)
        if self.count > len(self.reported):
            print(f"... and {self.count - len(self.reported)} more skipped rows", file=stream)


UTF16_MARKS = (b"\xff\xfe", b"\xfe\xff")  # what Excel's "Unicode text" and PowerShell's redirection write


def replay_text(raw: io.BufferedReader | gzip.GzipFile, name: object) -> TextIO:
    """The text of the bytes `raw` (`name` in messages): UTF-8 with or without a byte-order mark.

    A byte that is not UTF-8 is kept apart (U+DC80 + the byte, `errors="surrogateescape"`), so the row or line
    holding it is reported (`undecodable`), never read altered: U+FFFD in its place changed the text scored
    without a word. A UTF-16 file is a CsvError saying so: read as UTF-8, every line of it was noise (a CSV
    header "missing column(s) ...", every JSON line "not valid JSON").
    """
    if raw.peek(2)[:2] in UTF16_MARKS:  # peeked, not read: a pipe cannot seek back
        raw.close()
        raise CsvError(f"{name} is UTF-16 text; save it as UTF-8")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")


def names_json_lines(path: Path) -> bool:
    """Whether the file's name says JSON lines (.jsonl, .ndjson or .json, in any case, also before .gz)."""
    return bool(JSON_LINES_SUFFIXES & {suffix.lower() for suffix in path.suffixes})


def json_lines(lines: Iterable[str | bytes]) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, its JSON document, None) for each line that is not blank, or (number, None, why) for one
    that is not UTF-8 (a file's line read by `replay_text`) or not JSON: the reader reports it and goes on."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        problem = undecodable(line) if isinstance(line, str) else None
        if problem is not None:
            yield number, None, problem
            continue
        try:
            yield number, load_json(line), None
        except SchemaError as exc:
            yield number, None, str(exc)


def open_replay_text(path: Path) -> TextIO:
    """`replay_text` of the file at `path`, gzip-compressed or not (its first bytes say), a regular file or
    a stream (a pipe, `<(zcat tweets.csv.gz)`, /dev/stdin). A path that cannot be read is a CsvError
    naming it and why (missing, a folder, no permission)."""
    try:
        raw = path.open("rb")
    except FileNotFoundError:
        raise CsvError(f"input file not found: {path}") from None
    except IsADirectoryError:
        raise CsvError(f"{path} is a folder; give a file") from None
    except OSError as exc:
        raise CsvError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        if raw.peek(2)[:2] == GZIP_MAGIC:
            return replay_text(_Gunzipped(raw), path)
        return replay_text(raw, path)
    except BaseException:
        raw.close()
        raise


class _Gunzipped(gzip.GzipFile):
    """A gzip stream read from an open file, which it closes when closed (GzipFile leaves it open). Data cut
    short (an interrupted download) or damaged is a CsvError naming the file, not a traceback."""

    def __init__(self, source: io.BufferedReader) -> None:
        super().__init__(fileobj=source, mode="rb")
        self._source = source

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """A CsvError naming the file where the gzip data ends early or is damaged."""
        try:
            yield
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            why = "cut short" if isinstance(exc, EOFError) else f"damaged ({exc})"
            raise CsvError(
                f"{self._source.name}: its gzip data is {why}; zcat reads what is left of it"
            ) from None

    def read(self, size: int | None = -1) -> bytes:
        """GzipFile.read, through `_reading`."""
        with self._reading():
            return super().read(-1 if size is None else size)

    def read1(self, size: int = -1) -> bytes:
        """GzipFile.read1, through `_reading`."""
        with self._reading():
            return super().read1(size)

    def peek(self, n: int) -> bytes:
        """GzipFile.peek, through `_reading`."""
        with self._reading():
            return super().peek(n)

    def close(self) -> None:
        """Close the stream, then the file under it."""
        try:
            super().close()
        finally:
            self._source.close()


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


MAX_WAIT_S = 86_400.0  # `paced` waits a day at a time at most


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
        due = started + (moment - first).total_seconds() / speed
        while (delay := due - clock()) > MAX_WAIT_S:  # a wait of years overflowed `Event.wait` (tiny speeds)
            if wait(MAX_WAIT_S):
                return
        if delay > 0 and wait(delay):
            return
        yield item
