"""The CSV a person brings to be scored (`buzzwatch score`, `buzzwatch evaluate`, the app's upload), read by
the one CSV reader (`buzzwatch.replay.ReplayCsv`): every cell a string, any file size, or a `CsvError` that
names what to fix.

pandas alone read a first row with more fields than the header (an unquoted comma in a tweet) as if its
extra leading fields were an index, shifting every column of every row by one, and renamed a column named
twice `text.1`; the one reader reports such a row on its own line and refuses such a header. A byte that is
not UTF-8 makes its row unreadable (reported with its line), so a text is never scored altered.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from buzzwatch.cells import CSV_LINE_END
from buzzwatch.replay import CsvError, CsvRow, ReplayCsv, SkippedRows, open_replay_csv, replay_text

if TYPE_CHECKING:
    import pandas as pd


def frame_csv(frame: pd.DataFrame) -> str:
    """`frame` (no index) as CSV text that reads back as the same rows, whatever line breaks cells hold."""
    return frame.to_csv(index=False, lineterminator=CSV_LINE_END)


@contextmanager
def open_string_csv(path: Path, required: Sequence[str]) -> Iterator[ReplayCsv]:
    """The file's rows (a pipe too), read as it is iterated; a CsvError when it cannot be read (missing, a
    folder: `open_replay_text`) or its header is unusable."""
    with open_replay_csv(path) as rows:
        problem = rows.header_problem(required)
        if problem:
            raise CsvError(f"{path}: {problem}")
        yield rows


def readable_chunks(rows: ReplayCsv, skipped: SkippedRows, size: int) -> Iterator[list[CsvRow]]:
    """The readable rows, at most `size` at a time (what bounds memory); each unreadable one to `skipped`."""

    def readable() -> Iterator[CsvRow]:
        for row in rows:
            if row.problem is None:
                yield row
            else:
                skipped.add(row.line, row.problem)

    remaining = readable()
    while chunk := list(islice(remaining, size)):
        yield chunk


def row_cells(rows: ReplayCsv, row: CsvRow) -> list[str]:
    """The row's cells in header order, "" for an empty or missing one."""
    return [row.values.get(name, "") for name in rows.header]


def read_string_csv(data: bytes, name: str | Path) -> pd.DataFrame:
    """The CSV `data` (an upload) as a frame of strings, empty cells ""; a CsvError names the first bad line.

    `name` is how messages call the file.
    """
    import pandas as pd

    rows = ReplayCsv(replay_text(io.BufferedReader(io.BytesIO(data)), name))
    problem = rows.header_problem()
    if problem:
        raise CsvError(f"{name}: {problem}")
    records = []
    for row in rows:
        if row.problem is not None:
            raise CsvError(f"{name}: line {row.line}: {row.problem}")
        records.append(row_cells(rows, row))
    return pd.DataFrame(records, columns=list(rows.header))
