"""The one replay reader and pacing loop: both replays read a file alike and pace it in event time."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from buzzwatch.replay import MAX_WAIT_S, SPILL_BLOCK_ITEMS, EventTimeOrder, open_replay_csv, paced
from buzzwatch.schema import SchemaError
from ingest.brands import BrandBook
from ingest.sources import InputReport, replay_file_events
from worker.replay import ReplayError, ReplaySummary, read_rows

START = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)

# A byte-order mark (as spreadsheet exports write it), padded texts, a quoted newline, a row with too many
# fields, a cell larger than the csv module takes (refused mid-file) and an empty cell.
HUGE = "x" * 1_000_001
REPLAY = (
    "\ufeffid,created_at,text,brand,label\n"
    '1,2026-11-25T21:00:00Z,"  @united padded text  ",united,negative\n'
    '2,2026-11-25T21:00:01Z,"@united two\nlines\n",united,neutral\n'
    "3,2026-11-25T21:00:02Z,@united too,many,fields,x\n"
    f"4,2026-11-25T21:00:03Z,@united {HUGE},united,neutral\n"
    "5,2026-11-25T21:00:04Z,@united no label,united,\n"
)


def test_the_reader_strips_the_mark_keeps_line_numbers_and_reports_unreadable_rows(tmp_path: Path) -> None:
    path = tmp_path / "replay.csv"
    path.write_text(REPLAY, encoding="utf-8")
    with open_replay_csv(path) as rows:
        assert rows.columns == {"id", "created_at", "text", "brand", "label"}
        read = list(rows)
    assert [row.values.get("id") for row in read if row.problem is None] == ["1", "2", "5"]
    assert read[0].values["text"] == "  @united padded text  "  # as written: the schema strips
    assert read[1].line == 5  # the line a record ends on (its text holds two newlines)
    assert "label" not in read[-1].values  # an empty cell is absent
    problems = [row.problem for row in read if row.problem]
    assert problems[0] == "more fields than the header"
    assert problems[1].startswith("unreadable CSV row: field larger than field limit")


def test_the_ingester_and_the_detector_replay_read_the_same_tweets(tmp_path: Path) -> None:
    path = tmp_path / "replay.csv"
    path.write_text(REPLAY.replace(HUGE, "fine"), encoding="utf-8")
    report, summary = InputReport(), ReplaySummary()
    with replay_file_events(path, BrandBook.load(), report) as events:
        published = list(events)
    replayed = read_rows(path, False, summary)
    assert [(e.id, e.created_at, e.text) for e in published] == [
        (r.tweet.id, r.tweet.created_at, r.tweet.text) for r in replayed
    ]
    assert [r.tweet.text for r in replayed] == [
        "@united padded text",
        "@united two\nlines",
        "@united fine",
        "@united no label",
    ]
    assert (report.read, report.bad) == (summary.rows_read, summary.skipped.count) == (5, 1)


class FakeClock:
    """A clock that moves only when waited on (or told to), so pacing is checked without real time."""

    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return False


def _at(*seconds: float) -> list[datetime]:
    return [START + timedelta(seconds=s) for s in seconds]


def test_pacing_follows_event_time_at_the_speed_factor() -> None:
    clock = FakeClock()
    moments = []
    for _ in paced(_at(0, 30, 60, 60, 90), lambda moment: moment, 300.0, clock.wait, clock):
        moments.append(clock.now - 100.0)
    assert moments == pytest.approx([0.0, 0.1, 0.2, 0.2, 0.3])  # 90 s in 0.3 s; ties: no wait


def test_a_slow_consumer_catches_up_instead_of_drifting() -> None:
    clock = FakeClock()
    waits_before = []
    for index, _ in enumerate(paced(_at(0, 1, 2, 3), lambda moment: moment, 1.0, clock.wait, clock)):
        waits_before.append(len(clock.waits))
        if index == 0:
            clock.now += 2.5  # the consumer took 2.5 s over the first item
    assert waits_before == [0, 0, 0, 1] and clock.waits == [0.5]


def test_a_wait_of_years_is_waited_a_day_at_a_time() -> None:
    """`--speed 1e-10` made a minute's wait 19,000 years: OverflowError from `threading.Event.wait`."""
    clock = FakeClock()
    assert len(list(paced(_at(0, 60), lambda moment: moment, 1e-8, clock.wait, clock))) == 2
    assert max(clock.waits) == MAX_WAIT_S and sum(clock.waits) == pytest.approx(60 / 1e-8)
    stop = threading.Event()
    stop.set()
    assert list(paced(_at(0, 60), lambda moment: moment, 1e-10, stop.wait)) == _at(0)


def test_max_speed_never_waits_and_a_stop_ends_the_replay_mid_wait() -> None:
    def never(seconds: float) -> bool:
        raise AssertionError("waited at max speed")

    assert len(list(paced(_at(0, 3600, 7200), lambda moment: moment, None, never))) == 3
    assert len(list(paced(_at(0, 3600, 7200), lambda moment: moment, float("inf"), never))) == 3
    stop = threading.Event()
    stop.set()
    assert list(paced(_at(0, 3600), lambda moment: moment, 1.0, stop.wait)) == _at(0)


class Tracked:
    """An item that counts how many of its kind are alive (made by the test or by unpickling)."""

    alive = 0
    most_alive = 0

    def __new__(cls, *args: object) -> Tracked:
        Tracked.alive += 1
        Tracked.most_alive = max(Tracked.most_alive, Tracked.alive)
        return super().__new__(cls)

    def __init__(self, moment: int, order: int) -> None:
        self.moment = moment
        self.order = order

    def __del__(self) -> None:
        Tracked.alive -= 1


def test_event_time_order_is_the_stable_sort_and_holds_a_bounded_number_of_items() -> None:
    """A file far larger than a run: memory holds about a run plus one item per run, never the file."""
    count, run_items = 20_000, 1000
    moments = [(index * 7919) % 1000 for index in range(count)]  # out of order, 20 ties per moment
    Tracked.alive = Tracked.most_alive = 0
    items = (Tracked(moment, order) for order, moment in enumerate(moments))
    seen = []
    with EventTimeOrder(items, lambda item: item.moment, run_items) as ordered:
        assert len(ordered) == count and Tracked.most_alive <= run_items + 1
        for item in ordered:
            seen.append((item.moment, item.order))
    expected = sorted((moment, order) for order, moment in enumerate(moments))  # ties in input order
    assert seen == expected
    runs = count // run_items  # the merge holds a pickled block of each run
    assert Tracked.most_alive <= run_items + runs * SPILL_BLOCK_ITEMS + 2, Tracked.most_alive  # not 20,000


def test_event_time_order_keeps_small_inputs_in_memory_and_reads_everything_first() -> None:
    read = []

    def items() -> Iterator[int]:
        for value in (3, 1, 2):
            read.append(value)
            yield value

    ordered = EventTimeOrder(items(), lambda value: value, None)
    assert read == [3, 1, 2] and len(ordered) == 3 and list(ordered) == [1, 2, 3]


def test_a_header_naming_a_column_twice_is_refused_by_both_replays(tmp_path: Path) -> None:
    """The csv module kept the last of two `text` columns: the first one's tweets were dropped unsaid."""
    path = tmp_path / "replay.csv"
    path.write_text("id,created_at,text,brand,text\n1,2026-11-25T21:00:00Z,@united late,united,hi\n")
    with pytest.raises(ReplayError, match="the header names text more than once"):
        read_rows(path, False, ReplaySummary())
    with (
        pytest.raises(SchemaError, match="the header names text more than once"),
        replay_file_events(path, BrandBook.load(), InputReport()) as events,
    ):
        list(events)


def test_a_semicolon_separated_replay_is_read_by_its_header(tmp_path: Path) -> None:
    path = tmp_path / "replay.csv"
    path.write_text('id;created_at;text;brand\n1;2026-11-25T21:00:00Z;"@united late, again; sigh";united\n')
    rows = read_rows(path, False, ReplaySummary())
    assert [row.tweet.text for row in rows] == ["@united late, again; sigh"]


def _rows_with_a_quote_never_closed(count: int, padding: str = "") -> str:
    """A replay whose fourth tweet's text starts with a quote that no later quote closes (a text written
    unquoted by hand, or by an export that does not quote)."""
    texts = [f"@united late {number}{padding}" for number in range(count)]
    texts[3] = '"Worst airline ever'
    rows = [
        f"{number},2026-11-25T21:{number // 60:02d}:{number % 60:02d}Z,{text},united"
        for number, text in enumerate(texts)
    ]
    return "id,created_at,text,brand\n" + "\n".join(rows) + "\n"


def test_a_quote_never_closed_skips_its_row_alone_in_both_replays(tmp_path: Path) -> None:
    """The csv module read every line after such a quote into one cell and ended it at the end of the file:
    996 of 1,000 tweets lost, reported as one row with an "empty 'brand'" on the last line."""
    path = tmp_path / "replay.csv"
    path.write_text(_rows_with_a_quote_never_closed(1000))
    summary, report = ReplaySummary(), InputReport()
    replayed = read_rows(path, False, summary)
    with replay_file_events(path, BrandBook.load(), report) as events:
        published = list(events)
    expected = [str(number) for number in range(1000) if number != 3]
    assert [row.tweet.id for row in replayed] == [event.id for event in published] == expected
    assert (summary.rows_read, summary.skipped.count) == (report.read, report.bad) == (1000, 1)
    assert summary.skipped.reported == [
        'line 5: a quote (") opens a cell here that is never closed, so the rest of the file was one cell; '
        'the lines after this one are read on their own (quote the text, "" for a quote inside it)'
    ]
    assert [row.line for row in replayed[3:5]] == [6, 7]


def test_a_quote_never_closed_in_a_large_file_loses_no_line_to_the_field_limit(tmp_path: Path) -> None:
    """Past the csv module's field limit (1,000,000 characters) the lines read into the cell were lost: the
    reader went on from the line where the limit was reached."""
    path = tmp_path / "replay.csv"
    path.write_text(_rows_with_a_quote_never_closed(20_000, padding=" " + "x" * 60))
    with open_replay_csv(path) as rows:
        read = list(rows)
    assert [row.values["id"] for row in read if row.problem is None] == [
        str(number) for number in range(20_000) if number != 3
    ]
    (problem,) = [(row.line, row.problem) for row in read if row.problem]
    assert problem[0] == 5 and problem[1].startswith("unreadable CSV row: field larger than field limit")
    assert 'a quote (") opens a cell here that is never closed?' in problem[1]


@pytest.mark.parametrize("closing", ['"late again"', '"late, again"'])
@pytest.mark.parametrize("header", ["id,created_at,text,brand", "id,created_at,text,brand,lang"])
def test_a_quote_that_a_later_rows_quoted_text_closes_skips_its_row_alone(
    tmp_path: Path, closing: str, header: str
) -> None:
    """Such a quote joined the rows up to that text into its cell: 2 tweets lost in the text of a third (a
    row of the header's width) or with it (a row of more fields than the header, named by its last line).
    Where the rows leave out a cell the header names (`lang`), no line read as a row of the header's width,
    and they still joined, nothing said: a row's width is now the header's or one the file's rows had."""
    rows = [
        "1,2026-11-25T21:00:01Z,@united fine,united",
        '2,2026-11-25T21:00:02Z,"Worst airline ever,united',
        "3,2026-11-25T21:00:03Z,@united lost my bag,united",
        "4,2026-11-25T21:00:04Z,@united no crew,united",
        f"5,2026-11-25T21:00:05Z,{closing},united",
        "6,2026-11-25T21:00:06Z,@united ok,united",
    ]
    path = tmp_path / "replay.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    summary, report = ReplaySummary(), InputReport()
    replayed = read_rows(path, False, summary)
    with replay_file_events(path, BrandBook.load(), report) as events:
        published = list(events)
    assert (
        [row.tweet.id for row in replayed] == [event.id for event in published] == ["1", "3", "4", "5", "6"]
    )
    assert replayed[3].tweet.text == closing.strip('"')
    assert (summary.rows_read, summary.skipped.count) == (report.read, report.bad) == (6, 1)
    assert summary.skipped.reported == [
        "line 3: a quote (\") opens a cell here that only line 6's quoted text closes, so lines 3-6 were one "
        'row; the lines after this one are read on their own (quote the text, "" for a quote inside it)'
    ]


def test_a_quoted_text_on_lines_that_read_as_rows_stays_one_text(tmp_path: Path) -> None:
    """A text on several lines whose last one, read alone, has the header's width is no stray quote."""
    text = "@united three things:\nlate, rude, lost"
    path = tmp_path / "replay.csv"
    path.write_text(f'id,created_at,text,brand\n1,2026-11-25T21:00:01Z,"{text}",united\n')
    summary = ReplaySummary()
    assert [row.tweet.text for row in read_rows(path, False, summary)] == [text]
    assert summary.skipped.count == 0


def test_a_header_with_a_quote_never_closed_is_refused_saying_so(tmp_path: Path) -> None:
    path = tmp_path / "replay.csv"
    path.write_text('id,"created_at,text,brand\n1,2026-11-25T21:00:00Z,@united late,united\n')
    with pytest.raises(
        ReplayError, match=r"the header line cannot be read as CSV: a quote \(\"\) opens a cell"
    ):
        read_rows(path, False, ReplaySummary())


def test_a_row_that_is_not_utf8_is_skipped_by_both_replays_not_read_altered(tmp_path: Path) -> None:
    """Both replays read such a byte as U+FFFD: "café" (Latin-1) was scored and counted as "caf\ufffd"
    without a word, where `score`, `evaluate` and stdin report it."""
    path = tmp_path / "replay.csv"
    path.write_bytes(
        b"id,created_at,text,brand\n"
        b"1,2026-11-25T21:00:00Z,@united late,united\n"
        b"2,2026-11-25T21:00:01Z,@united caf\xe9 cold,united\n"
        b"3,2026-11-25T21:00:02Z,@united caf\xc3\xa9 fine,united\n"
    )
    summary, report = ReplaySummary(), InputReport()
    replayed = read_rows(path, False, summary)
    with replay_file_events(path, BrandBook.load(), report) as events:
        published = list(events)
    assert [row.tweet.text for row in replayed] == [event.text for event in published]
    assert [event.text for event in published] == ["@united late", "@united café fine"]
    assert summary.skipped.reported == ["line 3: not UTF-8 text (byte 0xe9); save the file as UTF-8"]
    assert (report.read, report.bad) == (3, 1)


def test_a_header_with_spaces_after_its_commas_says_so(tmp_path: Path) -> None:
    """ "missing column(s) created_at, text, brand; found  brand,  created_at,  text, id": the spaces were
    there to see only as doubled ones."""
    path = tmp_path / "replay.csv"
    path.write_text("id, created_at, text, brand\n1, 2026-11-25T21:00:00Z, @united late, united\n")
    with pytest.raises(
        ReplayError, match=r"\(names with spaces around them or capitals: ' brand', ' created_at', ' text'; "
    ):
        read_rows(path, False, ReplaySummary())


def test_oracle_names_a_padded_label_column_not_a_missing_one(tmp_path: Path) -> None:
    """With ' label' the message ended "(--oracle reads the labels from a 'label' column)": it had one."""
    path = tmp_path / "replay.csv"
    row = "1,2026-11-25T21:00:00Z,@united late,united,negative\n"
    path.write_text("id,created_at,text,brand, label\n" + row)
    with pytest.raises(ReplayError) as padded:
        read_rows(path, True, ReplaySummary())
    assert str(padded.value).endswith(
        "(names with spaces around them or capitals: ' label'; write them as the names above, lower-case)"
    )
    path.write_text("ID,Created_At,Text,Brand,Label\n" + row)  # it said --oracle wants a 'label' column
    with pytest.raises(ReplayError) as capitals:
        read_rows(path, True, ReplaySummary())
    assert str(capitals.value).endswith(
        "(names with spaces around them or capitals: 'Brand', 'Created_At', 'ID', 'Label', 'Text'; write "
        "them as the names above, lower-case)"
    )
    path.write_text("id,created_at,text,brand,sentiment\n" + row)
    with pytest.raises(ReplayError) as absent:
        read_rows(path, True, ReplaySummary())
    assert str(absent.value).endswith("(--oracle reads the labels from a 'label' column)")
