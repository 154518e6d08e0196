"""The CSV a person brings to be scored: strings as written, or an error naming the line to fix."""

import pytest

from buzzwatch.tables import CsvError, frame_csv, read_string_csv


def test_cells_stay_strings_with_a_bom_crlf_and_quoted_newlines() -> None:
    data = '\ufeffid,text\r\n007,"two\nlines"\r\n8,\r\n'.encode()
    frame = read_string_csv(data, "in.csv")
    assert frame.to_dict("records") == [{"id": "007", "text": "two\nlines"}, {"id": "8", "text": ""}]


def test_a_first_row_with_an_unquoted_comma_is_refused_not_shifted() -> None:
    """pandas took the extra leading field for an index: every row's text became the next column's value."""
    with pytest.raises(CsvError, match=r"in\.csv: line 2: more fields than the header"):
        read_string_csv(b"id,text\n1,hello, world\n2,ok\n", "in.csv")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"text\nok\ncaf\xe9\n", r"in.csv: line 3: not UTF-8 text \(byte 0xe9\); save the file as UTF-8"),
        (b"", "in.csv: the file is empty: it needs a header line"),  # "No columns to parse"
        ("text\nok\n".encode("utf-16"), "in.csv is UTF-16 text; save it as UTF-8"),
        (b"\xef\xbb\xbf\r\n\n", "in.csv: the file is empty: it needs a header line"),
        (b"text\nok\na,b\n", "in.csv: line 3: more fields than the header"),
    ],
)
def test_what_cannot_be_read_names_the_file_and_line(data: bytes, message: str) -> None:
    with pytest.raises(CsvError, match=message):
        read_string_csv(data, "in.csv")


def test_a_semicolon_or_tab_separated_file_is_read_by_its_header() -> None:
    """Excel's "CSV" in a French locale separates with ';': the header became one column 'text;label'."""
    semicolons = '\ufefftext;label\r\n"late, again; sigh";negative\r\nmerci;positive\r\n'.encode()
    assert read_string_csv(semicolons, "fr.csv").to_dict("records") == [
        {"text": "late, again; sigh", "label": "negative"},
        {"text": "merci", "label": "positive"},
    ]
    assert read_string_csv(b"id\ttext\n1\thi, there\n", "in.tsv").to_dict("records") == [
        {"id": "1", "text": "hi, there"}
    ]
    assert read_string_csv(b"text\nhello; world\n", "in.csv").to_dict("records") == [{"text": "hello; world"}]


def test_a_column_named_twice_is_refused_not_renamed() -> None:
    """pandas renamed the second 'text' to 'text.1': one of them was scored, the other kept as data."""
    with pytest.raises(CsvError, match=r"in\.csv: the header names text more than once; rename the copies"):
        read_string_csv(b"text,id,text\na,1,b\n", "in.csv")
    # Excel's trailing empty columns are not names given twice
    assert read_string_csv(b"text,,\nhi,,\n", "in.csv")["text"].tolist() == ["hi"]


def test_frame_csv_reads_back_the_same_rows_whatever_line_breaks_the_cells_hold() -> None:
    import pandas as pd

    frame = pd.DataFrame({"text": ["a\rb", "\r", "c\nd", "e\r\nf", "plain"], "id": ["1", "2", "3", "4", "5"]})
    assert read_string_csv(frame_csv(frame).encode(), "out.csv").to_dict("records") == frame.to_dict(
        "records"
    )


def test_a_file_with_old_mac_line_ends_is_read_not_a_traceback() -> None:
    """Lines ended by a lone CR (classic Mac exports): the header check raised csv.Error, a traceback."""
    assert read_string_csv(b"id,text\r1,hello\r2,world\r", "in.csv").to_dict("records") == [
        {"id": "1", "text": "hello"},
        {"id": "2", "text": "world"},
    ]


def test_a_short_row_reads_empty_cells_and_an_unnamed_column_keeps_its_cells() -> None:
    frame = read_string_csv(b"text,,label\nhi,x,negative\nshort\n", "in.csv")
    assert frame.to_dict("records") == [
        {"text": "hi", "Unnamed: 1": "x", "label": "negative"},
        {"text": "short", "Unnamed: 1": "", "label": ""},
    ]
