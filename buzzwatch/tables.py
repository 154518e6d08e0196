"""The one reader of a CSV a person brings to be scored (`buzzwatch score`, `buzzwatch evaluate`, the app's
upload): every cell a string, or a `CsvError` that names the line to fix.

pandas alone reads a first row with more fields than the header (an unquoted comma in a tweet) as if its
extra leading fields were an index: every column of every row shifts by one, silently; it renames a column
named twice `text.1`, so the file's second `text` is scored or dropped without a word. A byte that is not
UTF-8 is reported by pandas at a position in its read buffer, not in the file. A header with no comma but
semicolons (or tabs) is read with those: Excel's "CSV" where the decimal mark is a comma (French) uses ';'.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from buzzwatch.cells import CSV_LINE_END
from buzzwatch.replay import UTF16_MARKS
from buzzwatch.settings import CommandError

if TYPE_CHECKING:
    import pandas as pd


def frame_csv(frame: pd.DataFrame) -> str:
    """`frame` (no index) as CSV text that reads back as the same rows, whatever line breaks cells hold."""
    return frame.to_csv(index=False, lineterminator=CSV_LINE_END)


class CsvError(CommandError):
    """A CSV that cannot be read as its header says; the message names the file and the line."""


def read_string_csv(data: bytes, name: str | Path) -> pd.DataFrame:
    """The CSV `data` (UTF-8, with or without a byte-order mark) as a frame of strings, empty cells "".

    `name` is how messages call the file.
    """
    import pandas as pd

    if data[:2] in UTF16_MARKS:  # it was "line 1 is not UTF-8 text (byte 0xff)"
        raise CsvError(f"{name} is UTF-16 text (Excel's 'Unicode text'); save it as CSV UTF-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CsvError(
            f"{name}: line {line} is not UTF-8 text (byte {data[exc.start]:#04x}); save the file as UTF-8"
        ) from None
    if not text.strip():
        raise CsvError(f"{name} is empty: a CSV needs a header line naming its columns (e.g. text)")
    header_line = text.split("\n", 1)[0]
    separator = next((mark for mark in (";", "\t") if "," not in header_line and mark in header_line), ",")
    header = next(csv.reader([header_line.rstrip("\r")], delimiter=separator), [])
    twice = sorted(column for column, count in Counter(header).items() if count > 1 and column.strip())
    if twice:
        raise CsvError(f"{name}: the header names {', '.join(twice)} more than once; rename the copies")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, sep=separator)
    except (ValueError, pd.errors.ParserError) as exc:  # EmptyDataError is a ValueError
        raise CsvError(f"cannot read {name} as CSV: {str(exc).strip()}") from None
    if not isinstance(frame.index, pd.RangeIndex):
        fields = frame.index.nlevels + len(frame.columns)
        raise CsvError(
            f"{name}: the first row after the header has {fields} fields and the header "
            f"{len(frame.columns)} columns; quote each field that contains a comma"
        )
    return frame
