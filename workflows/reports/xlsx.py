"""Workbook helpers (Excel 读写): Chinese headers, exact 万元 amounts, frozen header, widths.

An amount is written as a :class:`~decimal.Decimal` (openpyxl stores its exact text) with
a number format of up to six decimals (1 分 = 0.000001万元); whole amounts show none.
Reading turns a numeric cell back into exact text: openpyxl hands back a float, whose
shortest ``repr`` is the text Excel wrote for any amount of 15 significant digits or fewer.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

AMOUNT_FORMAT = "#,##0.######"
WHOLE_FORMAT = "#,##0"
MIN_WIDTH, MAX_WIDTH = 8, 60


def new_book() -> Workbook:
    """An empty workbook (its default sheet removed)."""
    book = Workbook()
    book.remove(book.active)
    return book


def _width(value: Any) -> int:
    text = "" if value is None else str(value)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def add_sheet(book: Workbook, title: str, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> Worksheet:
    """A sheet with a frozen header row, Decimal amounts formatted, columns sized to their text.

    Text is always text: a value a user typed as ``=HYPERLINK(…)`` is written as a string,
    never as a formula that Excel would run when the export is opened (formula injection).
    """
    sheet = book.create_sheet(title)
    sheet.append(list(headers))
    widths = [_width(h) for h in headers]
    for row in rows:
        sheet.append(list(row))
        for i, value in enumerate(row):
            widths[i] = max(widths[i], _width(value))
            cell = sheet.cell(row=sheet.max_row, column=i + 1)
            if isinstance(value, Decimal):
                cell.number_format = WHOLE_FORMAT if value == value.to_integral_value() else AMOUNT_FORMAT
            elif cell.data_type == "f":
                cell.data_type = "s"
    sheet.freeze_panes = "A2"
    for i, w in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(i)].width = min(max(w + 2, MIN_WIDTH), MAX_WIDTH)
    return sheet


def to_bytes(book: Workbook) -> bytes:
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def plain(value: Any) -> str:
    """A number as text without an exponent (``fen_to_wan`` normalises 3500 to 3.5E+3)."""
    return f"{value:f}" if isinstance(value, Decimal) else str(value)


def cell_text(value: Any) -> str:
    """A cell's value as the text a person typed: exact numbers, ISO dates, stripped strings."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return plain(Decimal(repr(value)).normalize())
    return str(value).strip()


def header_map(sheet: Worksheet) -> dict[str, int]:
    """Header text → 1-based column index, from the first row."""
    return {cell_text(c.value): c.column for c in sheet[1] if cell_text(c.value)}
