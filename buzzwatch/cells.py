"""What a CSV written for people holds: cells that read back as written and that no spreadsheet runs.

A CSV this project writes from text other people typed (the API's feedback export) goes through
`spreadsheet_cell`: a cell that starts with =, +, -, @, a tab or a carriage return opens as a formula in
Excel, LibreOffice and Google Sheets, so it gets a leading apostrophe (shown as text there); a cell that
already starts with an apostrophe gets one more, so `from_spreadsheet_cell` gives every cell back exactly.
No pandas here: the API's image has none.
"""

from __future__ import annotations

# RFC 4180's line end. With "\n" alone, the csv module and pandas write a cell holding a carriage return
# unquoted, and every reader takes that "\r" for the end of the row: one tweet becomes two broken rows.
CSV_LINE_END = "\r\n"

FORMULA_MARKS = ("=", "+", "-", "@", "\t", "\r")
ESCAPE_MARK = "'"


def spreadsheet_cell(value: str) -> str:
    """`value` as a cell no spreadsheet evaluates: an apostrophe before a formula mark or an apostrophe."""
    return ESCAPE_MARK + value if value.startswith((*FORMULA_MARKS, ESCAPE_MARK)) else value


def from_spreadsheet_cell(value: str) -> str:
    """The cell `spreadsheet_cell` was given: the inverse of it, for readers of the files it wrote."""
    escaped = value.startswith(ESCAPE_MARK) and value[1:].startswith((*FORMULA_MARKS, ESCAPE_MARK))
    return value[1:] if escaped else value
