"""Fixtures for the reports: the workflow fixtures (runtime, world, actor, drive) and workbooks.

The world is two counties of the demo tree (泸定县 with two townships, 康定市 with one).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook

from tests.workflows.conftest import actor, drive, runtime, world  # noqa: F401  (fixtures)
from workflows.demo import project_form


def xlsx(sheets: dict[str, Sequence[Sequence[Any]]]) -> bytes:
    """A real .xlsx file with one sheet per entry (first row: headers)."""
    book = Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def exact(value: Any) -> Any:
    """A float read back from a cell as the exact decimal text Excel stored."""
    return Decimal(repr(value)) if isinstance(value, float) else value


def read(data: bytes, sheet: str) -> list[list[Any]]:
    """Every row of ``sheet`` of a workbook, as values (floats as exact Decimals)."""
    rows = load_workbook(io.BytesIO(data))[sheet].iter_rows(values_only=True)
    return [[exact(v) for v in r] for r in rows]


@pytest.fixture
def form():
    """A valid project form of 团结村 (demo data), by name, category and 中央 amount in 万元."""
    return project_form
