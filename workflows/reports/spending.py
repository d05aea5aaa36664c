"""支出进度 (spending progress) [GZ 一(一)3; DOMAIN §7].

By the end of each milestone month, cumulative spending of each county and fund source,
质保金 excluded, must reach the year's share, or the province-wide average of that month
where one is given. The 质保金 rows of the ledger are left out of the spending and out of
the base (they are held back, so "年底除质保金外支出进度达100%" means every other 分
allocated is spent): ``share = spent / (allocated − retention)``. A record counts at a
checkpoint when its date is on or before the last day of the month. Arithmetic is exact;
the share is shown truncated to 0.01%.

The records come from a 拨付台账 workbook (sheets 下达资金, 拨付记录 and optionally 全省平均,
see docs/reports.md) until disbursements are recorded by ``project_delivery``.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from pathlib import Path

from openpyxl.utils import get_column_letter
from sqlalchemy.orm import Session

from engine.forms import fen_to_wan, wan_to_fen
from engine.scope import Actor
from workflows.common import FUND_SOURCES
from workflows.policy import Policy
from workflows.reports.importer import CellError, ImportFailed, open_workbook
from workflows.reports.places import COUNTY, Places
from workflows.reports.xlsx import add_sheet, cell_text, header_map, new_book, to_bytes

TOTAL = "合计"
SOURCES = tuple(label for _, label in FUND_SOURCES)
CENT = Decimal("0.01")
YES = ("是", "1", "true", "yes", "y")


@dataclass(frozen=True)
class Disbursement:
    """One payment (拨付) in 分; ``retention`` marks 质保金."""

    county: str
    source: str
    on: date
    amount: int
    retention: bool = False


@dataclass(frozen=True)
class Row:
    """One county and fund source (or :data:`TOTAL`) at one checkpoint."""

    county: str
    source: str
    month: int
    allocated: int
    retention: int
    spent: int
    target: Decimal
    province: Decimal | None

    @property
    def base(self) -> int:
        return self.allocated - self.retention

    @property
    def percent(self) -> Decimal | None:
        if self.base <= 0:
            return None
        return (Decimal(self.spent) * 100 / self.base).quantize(CENT, rounding=ROUND_DOWN)

    @property
    def passed(self) -> bool | None:
        """Not below the milestone, or not below the province average (None without a base)."""
        if self.base <= 0:
            return None
        spent = Decimal(self.spent) * 100
        return spent >= self.target * self.base or (
            self.province is not None and spent >= self.province * self.base
        )


def month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def progress(
    p: Policy,
    allocations: Mapping[tuple[str, str], int],
    disbursements: Iterable[Disbursement],
    province_average: Mapping[int, Decimal] | None = None,
    as_of: date | None = None,
) -> list[Row]:
    """Every (county, source) and county :data:`TOTAL` at each milestone up to ``as_of``."""
    records = list(disbursements)
    province_average = province_average or {}
    pairs = sorted({*allocations, *((d.county, d.source) for d in records)})
    counties = sorted({c for c, _ in pairs})
    rows = []
    for milestone in p.milestones:
        end = month_end(p.year, milestone.month)
        if as_of is not None and end > as_of:
            continue
        for county in counties:
            group = [(c, s) for c, s in pairs if c == county] + [(county, TOTAL)]
            for c, source in group:

                def mine(d: Disbursement, c=c, source=source) -> bool:
                    return d.county == c and source in (TOTAL, d.source)

                allocated = sum(v for (ac, s), v in allocations.items() if ac == c and source in (TOTAL, s))
                rows.append(
                    Row(
                        c,
                        source,
                        milestone.month,
                        allocated,
                        sum(d.amount for d in records if mine(d) and d.retention),
                        sum(d.amount for d in records if mine(d) and not d.retention and d.on <= end),
                        milestone.percent,
                        province_average.get(milestone.month),
                    )
                )
    return rows


def behind(rows: Iterable[Row]) -> dict[int, list[str]]:
    """Checkpoint month → the counties whose total is below target there (督办 candidates)."""
    out: dict[int, list[str]] = {}
    for r in rows:
        if r.source == TOTAL:
            out.setdefault(r.month, [])
            if r.passed is False:
                out[r.month].append(r.county)
    return out


@dataclass(frozen=True)
class Ledger:
    """The inputs of :func:`progress`, read from a 拨付台账 workbook."""

    allocations: dict[tuple[str, str], int]
    disbursements: list[Disbursement]
    province_average: dict[int, Decimal]


ALLOCATION_SHEET, RECORD_SHEET, PROVINCE_SHEET = "下达资金", "拨付记录", "全省平均"
COLUMNS = {
    ALLOCATION_SHEET: ("县(市)", "资金来源", "金额(万元)"),
    RECORD_SHEET: ("县(市)", "项目名称", "资金来源", "拨付日期", "金额(万元)", "是否质保金"),
    PROVINCE_SHEET: ("月份", "全省平均支出进度(%)"),
}


def template() -> bytes:
    book = new_book()
    for title, headers in COLUMNS.items():
        add_sheet(book, title, headers, ())
    return to_bytes(book)


class _Sheet:
    """Reads one sheet by header, collecting located errors."""

    def __init__(self, book, title: str, errors: list[CellError], required: bool = True) -> None:
        self.title, self.errors, self.rows = title, errors, []
        if title not in book.sheetnames:
            if required:
                errors.append(CellError(title, 0, "", "", "缺少工作表 (sheet missing)"))
            return
        sheet = book[title]
        found = header_map(sheet)
        self.columns = {h: found.get(h) for h in COLUMNS[title]}
        for h, i in self.columns.items():
            if i is None:
                errors.append(CellError(title, 1, "", h, "缺少列 (column missing)"))
        if any(i is None for i in self.columns.values()):
            return
        for cells in sheet.iter_rows(min_row=2):
            values = {h: cell_text(cells[i - 1].value) for h, i in self.columns.items()}
            if any(values.values()):
                self.rows.append((cells[0].row, values))

    def error(self, row: int, header: str, message: str) -> None:
        self.errors.append(
            CellError(self.title, row, get_column_letter(self.columns[header]), header, message)
        )


def load(session: Session, actor: Actor, source: Path | bytes) -> Ledger:
    """A 拨付台账 workbook, limited to the counties in the actor's sight; ImportFailed on any fault."""
    book = open_workbook(source)
    places, errors = Places.load(session), []
    sheets = [_Sheet(book, t, errors, t != PROVINCE_SHEET) for t in COLUMNS]
    allocations: dict[tuple[str, str], int] = {}
    records, province = [], {}

    def county(sheet: _Sheet, row: int, name: str) -> str | None:
        unit = places.child(None, COUNTY, name)
        if unit is None:
            sheet.error(row, "县(市)", f"未知的县(市): {name} (unknown county)")
            return None
        return name if actor.sees(unit.path) else None

    def amount(sheet: _Sheet, row: int, text: str) -> int:
        try:
            fen = wan_to_fen(text)
        except ValueError as exc:
            sheet.error(row, "金额(万元)", str(exc))
            return 0
        if fen < 0:
            sheet.error(row, "金额(万元)", "不能小于0 (negative)")
        return fen

    def fund(sheet: _Sheet, row: int, text: str) -> str:
        if text not in SOURCES:
            sheet.error(row, "资金来源", f"须为: {'、'.join(SOURCES)} (unknown fund source)")
        return text

    for row, v in sheets[0].rows:
        name, src = county(sheets[0], row, v["县(市)"]), fund(sheets[0], row, v["资金来源"])
        fen = amount(sheets[0], row, v["金额(万元)"])
        if name is not None:
            allocations[(name, src)] = allocations.get((name, src), 0) + fen
    for row, v in sheets[1].rows:
        name, src = county(sheets[1], row, v["县(市)"]), fund(sheets[1], row, v["资金来源"])
        fen = amount(sheets[1], row, v["金额(万元)"])
        try:
            on = date.fromisoformat(v["拨付日期"])
        except ValueError:
            sheets[1].error(row, "拨付日期", "日期格式应为 YYYY-MM-DD (date must be YYYY-MM-DD)")
            continue
        if name is not None:
            records.append(Disbursement(name, src, on, fen, v["是否质保金"].lower() in YES))
    for row, v in sheets[2].rows:
        try:
            month, percent = int(v["月份"]), Decimal(v["全省平均支出进度(%)"])
        except (ValueError, InvalidOperation):
            sheets[2].error(row, "全省平均支出进度(%)", "月份须为整数, 进度须为数字 (not a number)")
            continue
        province[month] = percent
    if errors:
        raise ImportFailed(errors)
    return Ledger(allocations, records, province)


HEADERS = (
    "县(市)",
    "资金来源",
    "节点",
    "下达资金(万元)",
    "质保金(万元)",
    "计算基数(万元)",
    "累计支出(万元)",
    "支出进度(%)",
    "目标(%)",
    "全省平均(%)",
    "是否达标",
)


def workbook(rows: Sequence[Row]) -> bytes:
    """The progress table, and the counties behind at each checkpoint."""
    book = new_book()
    add_sheet(
        book,
        "支出进度",
        HEADERS,
        (
            (
                r.county,
                r.source,
                f"{r.month}月底",
                fen_to_wan(r.allocated),
                fen_to_wan(r.retention),
                fen_to_wan(r.base),
                fen_to_wan(r.spent),
                r.percent,
                r.target,
                r.province,
                "不适用" if r.passed is None else "达标" if r.passed else "滞后",
            )
            for r in rows
        ),
    )
    add_sheet(
        book,
        "滞后县",
        ("节点", "滞后县(市)", "个数"),
        ((f"{m}月底", "、".join(cs) or "无", len(cs)) for m, cs in behind(rows).items()),
    )
    return to_bytes(book)
