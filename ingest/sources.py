"""Local sources: replay of a data file in event-time order, and JSON lines on stdin.

CSV files are read by `buzzwatch.replay` (shared with `buzzwatch replay`), which also paces a replay.

Each source yields `TweetEvent`s and reports unreadable input to an `InputReport` (logged with where it
came from and why), then goes on: one bad line never stops the ingester.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from buzzwatch.replay import (
    SORT_RUN_ITEMS,
    EventTimeOrder,
    ReplayCsv,
    json_lines,
    names_json_lines,
    open_replay_csv,
    open_replay_text,
)
from buzzwatch.schema import (
    MAX_MESSAGE_BYTES,
    SchemaError,
    TweetEvent,
    check_not_ahead,
    names_its_offset,
)
from ingest.brands import BrandBook
from ingest.events import event_from_record

log = logging.getLogger("buzzwatch.ingest")


@dataclass
class InputReport:
    """Counts of what a source read, and a log line for each input it could not use."""

    read: int = 0
    bad: int = 0
    without_offset: int = 0  # tweets whose created_at named no UTC offset (Z, +01:00): read as UTC
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC), repr=False)

    def tweet(self, record: Mapping[str, Any], brands: BrandBook, source: str) -> TweetEvent:
        """The record's tweet (SchemaError if it has none, if it is dated over MAX_AHEAD ahead of the clock,
        `buzzwatch.schema.check_not_ahead`, or is larger than a stream message may be), its created_at counted
        when it names no offset."""
        if not isinstance(record, dict):
            raise SchemaError("a tweet must be a JSON object")
        event = check_not_ahead(event_from_record(record, brands, source=source), self.clock())
        if _may_outgrow_a_message(event) and len(event.to_json()) > MAX_MESSAGE_BYTES:
            # the scoring worker refuses it: dead-lettered there, after the ingester counted it published
            raise SchemaError(
                f"the tweet is larger than a stream message may be ({MAX_MESSAGE_BYTES:,} bytes as JSON): "
                "a language tag of thousands of characters, or hundreds of brands?"
            )
        created_at = record["data"].get("created_at") if isinstance(record.get("data"), dict) else None
        self.without_offset += not names_its_offset(
            created_at or record.get("created_at") or event.created_at
        )
        return event

    def bad_input(self, where: str, reason: str) -> None:
        """Count and log one unusable input."""
        self.bad += 1
        log.warning("skipped bad input", extra={"where": where, "reason": reason[:300]})


def _may_outgrow_a_message(event: TweetEvent) -> bool:
    """Whether the tweet's JSON could be over MAX_MESSAGE_BYTES, without encoding it (2 us against 20 us a
    tweet here, at load 8; the replay path costs about 90 us): a character is at most 6 bytes of JSON."""
    fields = (event.id, event.text, event.author_id or "", event.retweet_of or "", event.lang, event.source)
    characters = sum(map(len, fields)) + sum(map(len, event.brands))
    return 6 * characters + 1024 > MAX_MESSAGE_BYTES


def _records_from_jsonl(
    lines: Iterator[str | bytes], name: str, report: InputReport
) -> Iterator[tuple[str, Any]]:
    """Each line's JSON document; a line that is not UTF-8 or not JSON is reported, and the next one read.

    A line that is a whole X API v2 response page (recent search saved as it came: `{"data": [tweets],
    "includes": ..., "meta": ...}`) gives each of its tweets, with the page's `includes`.
    """
    for number, document, problem in json_lines(lines):
        where = f"{name}:{number}"
        if problem is not None:
            report.read += 1
            report.bad_input(where, problem)
            continue
        page = _x_page_tweets(document)
        if page is None:
            report.read += 1
            yield where, document
            continue
        for index, tweet in enumerate(page):
            report.read += 1
            record = (
                {"data": tweet, "includes": document.get("includes")} if isinstance(tweet, dict) else tweet
            )
            yield f"{where}[{index}]", record


def _x_page_tweets(document: Any) -> list[Any] | None:
    """The tweets of an X API v2 response page (none when it found none), or None for any other document."""
    if not isinstance(document, dict):
        return None
    data = document.get("data")
    if isinstance(data, list):
        return data
    if data is None and isinstance(document.get("meta"), dict) and "text" not in document:
        return []  # a search that found nothing: {"meta": {"result_count": 0}}
    return None


def detect_format(path: Path) -> str:
    """csv or jsonl, from the file name."""
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if ".csv" in suffixes:
        return "csv"
    if names_json_lines(path):
        return "jsonl"
    raise SchemaError(f"{path}: cannot tell the format from the name; pass --format csv or --format jsonl")


@contextmanager
def replay_file_events(
    path: Path,
    brands: BrandBook,
    report: InputReport,
    file_format: str | None = None,
    run_items: int | None = SORT_RUN_ITEMS,
    stop: threading.Event | None = None,
) -> Iterator[EventTimeOrder[TweetEvent]]:
    """Every valid tweet of a CSV or JSON-lines file by event time (ties keep file order), any file size.

    The whole file is read (and `report` complete) on entry, holding at most `run_items` tweets in memory;
    once `stop` is set the reading ends there (a Ctrl-C waited for the whole file to be read and sorted).
    """
    file_format = file_format or detect_format(path)
    with ExitStack() as files:
        if file_format == "csv":
            records = _records_from_csv(files.enter_context(open_replay_csv(path)), path.name, report)
        else:
            handle = files.enter_context(open_replay_text(path))  # a BOM made the first line "not JSON"
            records = _records_from_jsonl(iter(handle), path.name, report)
        events = EventTimeOrder(_tweets(records, brands, report, stop), _event_time, run_items)
    with events:
        yield events


def _tweets(
    records: Iterable[tuple[str, Any]], brands: BrandBook, report: InputReport, stop: threading.Event | None
) -> Iterator[TweetEvent]:
    for where, record in records:
        if stop is not None and stop.is_set():
            return
        try:
            yield report.tweet(record, brands, "replay")
        except SchemaError as exc:
            report.bad_input(where, str(exc))


def _event_time(event: TweetEvent) -> datetime:
    return event.created_at


def _records_from_csv(rows: ReplayCsv, name: str, report: InputReport) -> Iterator[tuple[str, Any]]:
    """Each readable row's cells; an unreadable row is reported, and the next one read."""
    missing = rows.header_problem(("id", "created_at", "text"))
    if missing:
        raise SchemaError(f"{name}: a replay CSV needs a header with id, created_at and text: {missing}")
    for row in rows:
        report.read += 1
        if row.problem is not None:
            report.bad_input(f"{name}:{row.line}", row.problem)
        else:
            yield f"{name}:{row.line}", row.values


def fd_lines(fd: int, stop: threading.Event, wait_s: float = 0.2) -> Iterator[bytes]:
    """The lines read from a file descriptor (the last one may lack its newline), until EOF or `stop`.

    Read with `os.read` once `select` says there is something, never waiting more than `wait_s`: a thread
    blocked in stdin's buffered read held the buffer's lock, and at a stop with the input still open the
    interpreter's shutdown aborted on it ("Fatal Python error: _enter_buffered_busy", exit 134).
    """
    pending = b""
    while not stop.is_set():
        if not select.select([fd], [], [], wait_s)[0]:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        *complete, pending = (pending + chunk).split(b"\n")
        for line in complete:
            yield line + b"\n"
    if pending and not stop.is_set():
        yield pending


def stdin_events(
    brands: BrandBook,
    report: InputReport,
    stop: threading.Event,
    stream: TextIO | None = None,
) -> Iterator[TweetEvent]:
    """JSON lines from stdin (flat tweet objects or X API v2 `{"data": ...}` objects), until EOF or stop.

    A reader thread does the blocking reads, so a shutdown signal ends the loop without waiting for input.
    It reads bytes where it can (the real stdin) and each line is decoded on its own: a line that is not
    UTF-8 is one bad input, not the end of the stream.
    """
    stream = stream or sys.stdin
    try:
        source: Iterable[str | bytes] = fd_lines(stream.fileno(), stop)
    except (OSError, ValueError, AttributeError):  # in memory: its bytes' lines where it has bytes
        source = getattr(stream, "buffer", stream)
    lines: queue.Queue[str | bytes | None] = queue.Queue(maxsize=10_000)

    def read_lines() -> None:
        try:
            for line in source:
                lines.put(line)
        except (OSError, ValueError) as exc:
            log.error("stdin became unreadable", extra={"error": str(exc)})
        finally:
            lines.put(None)

    threading.Thread(target=read_lines, name="stdin-reader", daemon=True).start()

    def next_lines() -> Iterator[str | bytes]:
        while not stop.is_set():
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                return
            yield line

    for where, record in _records_from_jsonl(next_lines(), "stdin", report):
        try:
            event = report.tweet(record, brands, "stdin")
        except SchemaError as exc:
            report.bad_input(where, str(exc))
            continue
        yield event
