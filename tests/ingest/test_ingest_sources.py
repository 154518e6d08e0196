"""File replay in event-time order and at a speed factor; JSON lines on stdin; bad input skipped."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from buzzwatch.schema import SchemaError, TweetEvent
from buzzwatch.settings import CommandError
from ingest.brands import BrandBook
from ingest.events import event_from_record
from ingest.sources import InputReport, detect_format, replay_file_events, stdin_events


def read_replay_file(path: Path, brands: BrandBook, report: InputReport, **options: Any) -> list[TweetEvent]:
    """The replay's tweets in the order the ingester publishes them."""
    with replay_file_events(path, brands, report, **options) as events:
        return list(events)


@pytest.fixture(scope="module")
def brands() -> BrandBook:
    return BrandBook.load()


REPLAY_CSV = """id,created_at,text,airline,label
3,2015-02-24 11:35:52 -0800,@united third in the file,United,negative
1,2015-02-24 11:30:00 -0800,"@SouthwestAir first, with a
newline",Southwest,positive
2,2015-02-24T19:32:00Z,no handle but the column says Delta,Delta,neutral
4,not a date,@united bad date,United,negative
5,2015-02-24 11:40:00 -0800,,United,negative
6,2015-02-24 11:41:00 -0800,too,many,fields,here,x
7,2015-02-24 11:31:00 -0800,@VirginAmerica no airline column value,,neutral
"""


def test_csv_replay_sorts_by_event_time_and_skips_bad_rows(tmp_path, brands):
    path = tmp_path / "replay.csv"
    path.write_text(REPLAY_CSV)
    report = InputReport()
    events = read_replay_file(path, brands, report)
    assert [event.id for event in events] == ["1", "7", "2", "3"]
    assert [event.brands for event in events] == [
        ("southwestair",),
        ("virginamerica",),
        ("jetblue",),
        ("united",),
    ]
    assert events[0].text.endswith("with a\nnewline")
    assert events[0].created_at == datetime(2015, 2, 24, 19, 30, tzinfo=UTC)
    assert all(event.source == "replay" for event in events)
    assert report.read == 7 and report.bad == 3


@pytest.mark.parametrize("run_items", [1, 2, 3])
def test_a_replay_larger_than_its_memory_run_gives_the_same_tweets_in_the_same_order(
    tmp_path: Path, brands: BrandBook, run_items: int
) -> None:
    """Sorted runs spilled to disk and merged: the whole-file sort's order (ties in file order)."""
    tie = "2015-02-24 11:30:00 -0800"
    extra = "".join(f"t{i},{tie},@united tie {i},United,neutral\n" for i in range(5))
    path = tmp_path / "replay.csv"
    path.write_text(REPLAY_CSV + extra + "bad,not a time,@united,United,neutral\n")
    in_memory, spilled = InputReport(), InputReport()
    expected = [(e.id, e.created_at) for e in read_replay_file(path, brands, in_memory, run_items=None)]
    assert [
        (e.id, e.created_at) for e in read_replay_file(path, brands, spilled, run_items=run_items)
    ] == expected
    assert [event_id for event_id, _ in expected] == ["1", "t0", "t1", "t2", "t3", "t4", "7", "2", "3"]
    assert (spilled.read, spilled.bad) == (in_memory.read, in_memory.bad)


def test_jsonl_replay_accepts_flat_and_x_shaped_lines(tmp_path, brands):
    path = tmp_path / "replay.jsonl"
    lines = [
        json.dumps({"id": 2, "created_at": "2026-11-25T21:00:02Z", "text": "@jetblue hi", "lang": "en"}),
        "{broken",
        json.dumps(["not", "an", "object"]),
        json.dumps({"data": {"id": "1", "text": "@united hi", "created_at": "2026-11-25T21:00:01Z"}}),
        "",
        json.dumps(
            {"id": "3", "created_at": "2026-11-25T21:00:03Z", "text": "x", "brands": ["united", "x y"]}
        ),
    ]
    path.write_text("\n".join(lines) + "\n")
    report = InputReport()
    events = read_replay_file(path, brands, report)
    assert [(event.id, event.brands) for event in events] == [
        ("1", ("united",)),
        ("2", ("jetblue",)),
        ("3", ("united", "xy")),
    ]
    assert report.bad == 2 and report.read == 5


def test_the_format_comes_from_the_name_or_is_asked_for(tmp_path):
    assert detect_format(tmp_path / "a.csv") == "csv"
    assert detect_format(tmp_path / "a.jsonl.gz") == "jsonl"
    with pytest.raises(SchemaError, match="--format"):
        detect_format(tmp_path / "a.txt")
    headless = tmp_path / "x.csv"
    headless.write_text("a,b\n1,2\n")
    with pytest.raises(SchemaError, match="header"):
        read_replay_file(headless, BrandBook.load(), InputReport())


def test_stdin_reads_json_lines_and_skips_bad_ones(brands):
    stream = io.StringIO(
        '{"id": "1", "created_at": "2026-11-25T21:00:01Z", "text": "@united late", "lang": "en"}\n'
        "garbage\n"
        '{"id": "2", "created_at": "2026-11-25T21:00:02Z"}\n'
        '{"data": {"id": "3", "text": "Air Paradis rocks", "created_at": "2026-11-25T21:00:03Z"}}\n'
    )
    report = InputReport()
    events = list(stdin_events(brands, report, threading.Event(), stream))
    assert [(event.id, event.brands, event.source) for event in events] == [
        ("1", ("united",), "stdin"),
        ("3", ("airparadis",), "stdin"),
    ]
    assert report.bad == 2 and report.read == 4


def test_an_x_api_tweet_without_its_time_is_a_bad_line_not_one_dated_now(brands):
    """A file's or stdin's X API tweet without `created_at` was dated the moment it was read (2026 among
    2015 tweets: a paced replay then waited years for it); only the live stream has a receipt to stand in."""
    stream = io.StringIO(
        '{"data": {"id": "103", "text": "no created at @united"}}\n'
        '{"data": {"id": "104", "text": "@united late", "created_at": "2015-02-24T11:35:52Z"}}\n'
    )
    report = InputReport()
    events = list(stdin_events(brands, report, threading.Event(), stream))
    assert [event.id for event in events] == ["104"] and report.bad == 1


def test_stdin_skips_undecodable_and_unencodable_lines_and_reads_on(brands):
    """A lone surrogate, bytes that are not UTF-8, a document too deep or a number too long is one bad line,
    not the end (the number's ValueError stopped the ingester)."""
    good = '{{"id": "{}", "created_at": "2026-11-25T21:00:01Z", "text": "@united late"}}\n'
    stream = io.TextIOWrapper(
        io.BytesIO(
            good.format(1).encode()
            + b'{"id": "2", "created_at": "2026-11-25T21:00:01Z", "text": "@united \\ud800"}\n'
            + b'{"id": "3", "text": "\xff\xfe"}\n'
            + b"[" * 5000
            + b"]" * 5000
            + b"\n"
            + b'{"id": '
            + b"9" * 5000
            + b', "text": "@united"}\n'
            + good.format(6).encode()
        )
    )
    report = InputReport()
    events = list(stdin_events(brands, report, threading.Event(), stream))
    assert [event.id for event in events] == ["1", "6"]
    assert (report.read, report.bad) == (6, 4)


def test_a_replayed_json_line_that_is_not_utf8_is_one_bad_line_as_on_stdin(brands, tmp_path, caplog):
    """The file replay read a byte that is not UTF-8 as U+FFFD and published the altered text; stdin refuses
    the same line."""
    path = tmp_path / "tweets.jsonl"
    line = '{{"id": "{}", "created_at": "2026-11-25T21:00:0{}Z", "text": "@united {}"}}\n'
    path.write_bytes(
        line.format(1, 1, "late").encode()
        + line.format(2, 2, "caf\xe9").encode("latin-1")
        + line.format(3, 3, "café").encode()
    )
    report = InputReport()
    events = read_replay_file(path, brands, report)
    assert [event.text for event in events] == ["@united late", "@united café"]
    assert (report.read, report.bad) == (3, 1)
    reasons = {record.where: record.reason for record in caplog.records if hasattr(record, "reason")}
    assert reasons == {"tweets.jsonl:2": "not UTF-8 text (byte 0xe9); save the file as UTF-8"}


def test_an_empty_csv_cell_is_reported_as_empty(brands, tmp_path, caplog):
    """An empty `text` or `id` cell was "field 'text' must be a string": it is a string, an empty one."""
    path = tmp_path / "tweets.csv"
    path.write_text(
        "id,created_at,text,airline\n1,2015-02-23T10:00:00Z,,United\n,2015-02-23T10:00:00Z,hi,United\n"
    )
    read_replay_file(path, brands, InputReport())
    reasons = {record.where: record.reason for record in caplog.records if hasattr(record, "reason")}
    assert reasons == {
        "tweets.csv:2": "field 'text' is missing or empty",
        "tweets.csv:3": "field 'id' is missing or empty",
    }


def test_x_api_response_pages_give_each_tweet_and_x_errors_say_what_they_are(brands, caplog):
    """A recent-search page saved as it came was one bad line ("field 'text' must be a string"): every tweet
    of it lost; an X error object was refused with that same misleading reason."""
    page = {
        "data": [
            {"id": "11", "text": "@united late", "created_at": "2026-11-25T21:00:01Z", "author_id": "5"},
            {"id": "12", "text": "so late", "created_at": "2026-11-25T21:00:02Z", "author_id": "6"},
            "not a tweet",
        ],
        "includes": {"users": [{"id": "6", "username": "SouthwestAir"}]},
        "meta": {"result_count": 3, "newest_id": "12"},
    }
    lines = [page, {"meta": {"result_count": 0}}, {"errors": [{"title": "Not Found Error"}]}]
    stream = io.StringIO("".join(json.dumps(line) + "\n" for line in lines))
    report = InputReport()
    events = list(stdin_events(brands, report, threading.Event(), stream))
    assert [(event.id, event.brands) for event in events] == [("11", ("united",)), ("12", ("southwestair",))]
    assert (report.read, report.bad) == (4, 2)
    reasons = {record.where: record.reason for record in caplog.records if hasattr(record, "reason")}
    assert reasons == {
        "stdin:1[2]": "a tweet must be a JSON object",
        "stdin:3": "an X API error message, not a tweet: [{'title': 'Not Found Error'}]",
    }


def test_stdin_stops_on_request_even_while_no_input_comes(brands):
    read_end, write_end = os.pipe()
    stop = threading.Event()
    with os.fdopen(read_end) as never_ending, os.fdopen(write_end, "w") as writer:
        writer.write('{"id": "1", "created_at": "2026-11-25T21:00:01Z", "text": "@united"}\n')
        writer.flush()
        threading.Timer(0.3, stop.set).start()
        started = time.monotonic()
        events = list(stdin_events(brands, InputReport(), stop, never_ending))
        assert [event.id for event in events] == ["1"]
        assert time.monotonic() - started < 2.0


def test_the_failed_publish_spool_replays_through_stdin_unchanged(brands):
    original = event_from_record(
        {"id": "9", "created_at": "2026-11-25T21:00:00Z", "text": "hi", "brands": ["united", "acmeair"]},
        brands,
        "x-stream",
    )
    spooled = io.StringIO(original.to_json().decode() + "\n")  # what Publisher writes to failed.jsonl
    (replayed,) = stdin_events(brands, InputReport(), threading.Event(), spooled)
    assert (replayed.id, replayed.brands, replayed.created_at) == (
        original.id,
        original.brands,
        original.created_at,
    )


def test_a_jsonl_replay_reads_its_first_line_after_a_byte_order_mark_and_refuses_utf16(tmp_path, brands):
    """Notepad's UTF-8 starts with a BOM: the first tweet was "not valid JSON"; UTF-16 made every line so."""
    lines = [
        {"id": "1", "created_at": "2026-11-25T21:00:01Z", "text": "@united late"},
        {"id": "2", "created_at": "2026-11-25T21:00:02Z", "text": "@united later"},
    ]
    text = "".join(json.dumps(line) + "\r\n" for line in lines)
    path = tmp_path / "notepad.jsonl"
    path.write_bytes(text.encode("utf-8-sig"))
    report = InputReport()
    assert [event.id for event in read_replay_file(path, brands, report)] == ["1", "2"]
    assert (report.read, report.bad) == (2, 0)
    path.write_bytes(text.encode("utf-16"))
    with pytest.raises(CommandError, match=r"notepad\.jsonl is UTF-16 text; save it as UTF-8"):
        read_replay_file(path, brands, InputReport())


def test_created_at_without_a_utc_offset_is_counted_as_read_in_utc(tmp_path, brands):
    """A local-time export (a French spreadsheet's 2026-11-25 22:00) was read as UTC without a word:
    every alert an hour off. `buzzwatch replay` said so; the ingester now counts them too."""
    stream = io.StringIO(
        '{"id": "1", "created_at": "2026-11-25 22:00:00", "text": "@united late"}\n'
        '{"id": "2", "created_at": "2026-11-25T21:00:02Z", "text": "@united late"}\n'
        '{"data": {"id": "3", "text": "@united late", "created_at": "2026-11-25T21:00:03.000Z"}}\n'
        '{"data": {"id": "4", "text": "@united late", "created_at": "2026-11-25T21:00:04"}}\n'
    )
    report = InputReport()
    assert len(list(stdin_events(brands, report, threading.Event(), stream))) == 4
    assert report.without_offset == 2
    path = tmp_path / "local.csv"
    path.write_text("id,created_at,text\n1,2026-11-25 22:00,@united\n2,2026-11-25 21:00 +0100,@united\n")
    report = InputReport()
    assert len(read_replay_file(path, brands, report)) == 2
    assert report.without_offset == 1


def test_a_tweet_dated_far_ahead_of_the_clock_is_one_bad_input_not_its_brands_end(brands):
    """A created_at in 2062 (a typo of 2026) was published: the detector's event time for the brand jumped
    there, and every real tweet of it after was dropped as late. Local time read as UTC (+14 h) still goes."""
    now = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)
    lines = [
        '{"id": "1", "created_at": "2026-11-25T21:00:00Z", "text": "@united late"}',
        '{"id": "2", "created_at": "2062-11-25T21:00:01Z", "text": "@united late"}',
        '{"id": "3", "created_at": "2026-11-26T10:59:00", "text": "@united late"}',  # UTC+14, no offset
        '{"id": "4", "created_at": "2026-11-25T21:00:02Z", "text": "@united late"}',
    ]
    report = InputReport(clock=lambda: now)
    events = list(stdin_events(brands, report, threading.Event(), io.StringIO("\n".join(lines) + "\n")))
    assert [event.id for event in events] == ["1", "3", "4"]
    assert (report.read, report.bad) == (4, 1)


def test_a_tweet_too_large_for_a_stream_message_is_one_bad_input_not_published(brands):
    """An id of 70,000 characters was published (accepted: 1) and refused by the scoring worker, dead-lettered
    there: the ingester's summary said nothing of it. An id is now refused at the schema (MAX_ID_CHARS), a
    brand too (MAX_BRAND_CHARS); a language tag of 70,000 characters still makes a tweet too large, and is
    refused here."""
    at = "2026-11-25T21:00:00Z"
    lines = [
        json.dumps({"id": "x" * 70_000, "created_at": at, "text": "@united late"}),
        json.dumps({"id": "2", "created_at": at, "text": "@united late", "author_id": "a" * 129}),
        json.dumps({"id": "3", "created_at": at, "text": "@united late", "lang": "x" * 70_000}),
        json.dumps({"id": "4", "created_at": at, "text": "@united late"}),
    ]
    report = InputReport()
    events = list(stdin_events(brands, report, threading.Event(), io.StringIO("\n".join(lines) + "\n")))
    assert [event.id for event in events] == ["4"]
    assert (report.read, report.bad) == (4, 3)


def test_a_brand_cell_naming_several_brands_is_split_as_buzzwatch_replay_splits_it(brands):
    """The ingester wrapped the cell in a list before the brand book split it: "United; Delta" was
    published as one brand, `uniteddelta`, that no baseline knew, where `buzzwatch replay` counted two."""
    base = {"id": "1", "created_at": "2026-11-25T21:00:00Z", "text": "late again"}
    for cell in ("United; Delta", "United,Delta", "united|delta", ["United", "Delta"]):
        event = event_from_record({**base, "brand": cell}, brands, "replay")
        assert event.brands == brands.attribute("late again", declared="united,delta"), cell
        assert len(event.brands) == 2 and "uniteddelta" not in event.brands


def test_a_records_author_is_read_from_any_of_the_author_fields(brands):
    """author_id (the event's own field), author (`buzzwatch replay`'s column) and name (the Twitter US
    Airline Sentiment set's handle) each name the author, the first non-empty one winning: as `buzzwatch
    replay` reads the same file."""
    base = {"id": "1", "created_at": "2026-11-25T21:00:00Z", "text": "@united late", "brand": "united"}
    authors = [
        event_from_record({**base, **fields}, brands, "replay").author_id
        for fields in (
            {"author_id": "123"},
            {"author": "ann"},
            {"name": "kbosspotter"},
            {"author_id": "", "author": "ann", "name": "bob"},
            {},
        )
    ]
    assert authors == ["123", "ann", "kbosspotter", "ann", None]
