"""Excel import of project proposals and annual plans (Excel 导入), all or nothing.

The template's columns are the project record of DOMAIN §2.1: 县, 乡镇, 村 and every start
field of ``project_library`` (headers are the field labels; money headers add ``(万元)``).
docs/excel-template.md documents them; :func:`template` writes an empty workbook.

Every row is checked first (place, amounts, category, dates, 负面清单, 联农带农…); any fault
raises :class:`ImportFailed` listing each as sheet, row, column and rule, and nothing is
written. Rows then go through the real :meth:`~engine.runtime.Runtime.start` (and, for a
plan, ``plan`` fires) in the caller's one transaction; a refusal there is listed too and
the caller's transaction rolls back. Natural keys make idempotency keys, so importing the
same file again creates nothing new.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.definitions import Field
from engine.errors import EngineError, InvalidForm
from engine.forms import fen_to_wan, parse
from engine.runtime import Runtime
from engine.scope import Actor, department_under
from engine.store.models import Instance, OrgUnit
from workflows import plan_filing, policy, project_library
from workflows.common import FUND_SOURCES, total_funds
from workflows.reports.industry import plan_totals
from workflows.reports.places import COUNTY, TOWNSHIP, VILLAGE, Places
from workflows.reports.xlsx import add_sheet, cell_text, header_map, new_book, plain, to_bytes
from workflows.roles import ROLES

PROJECTS, PLAN = "projects", "plan"
SHEETS = {PROJECTS: "项目申报", PLAN: "年度计划"}
HELP_SHEET = "填写说明"
PLACE_COLUMNS = ((COUNTY, "县(市)"), (TOWNSHIP, "乡镇"), (VILLAGE, "村"))
LISTED = ("in_library", "sweep_review")
PLANNED = "in_annual_plan"
SEPARATORS = re.compile(r"[、,，;；]")


@dataclass(frozen=True)
class Column:
    """One template column: a place, or a start field of project_library."""

    key: str
    header: str
    field: Field | None = None

    @property
    def rule(self) -> str:
        f = self.field
        if f is None:
            return "必填; 名称须与系统中的单位一致"
        need = "必填" if f.required and f.kind != "bool" else "选填"
        hint = {
            "money": "万元, 最多6位小数(精确到分), 不小于0",
            "int": "整数",
            "date": "日期, 如 2025-06-01",
            "bool": "是 或 否",
            "choice": "可选: " + "、".join(f.choices),
            "multichoice": "多项用、分隔; 可选: " + "、".join(f.choices),
        }.get(f.kind, f"文字, 最多{f.max_length}字")
        return f"{need}; {hint}"


def _header(f: Field) -> str:
    return f"{f.label}(万元)" if f.kind == "money" else f.label


def columns(runtime: Runtime) -> tuple[Column, ...]:
    """The template columns, from the registered project_library start fields."""
    fields = runtime.registry.get(project_library.KEY).workflow.start_fields
    return (*(Column(k, h) for k, h in PLACE_COLUMNS), *(Column(f.name, _header(f), f) for f in fields))


def negative_name(code: str) -> str:
    """A 负面清单 item's Chinese name (its text before the English gloss)."""
    return policy.latest().negative_item(code).text.split(" (")[0]


def template(runtime: Runtime, kind: str) -> bytes:
    """An empty import workbook of ``kind`` (projects | plan) with a sheet of rules per column."""
    cols = columns(runtime)
    book = new_book()
    add_sheet(book, SHEETS[kind], [c.header for c in cols], ())
    add_sheet(book, HELP_SHEET, ("列", "填写要求"), ((c.header, c.rule) for c in cols))
    return to_bytes(book)


@dataclass(frozen=True)
class CellError:
    """One fault of an import, located by sheet, row and column (letter and header)."""

    sheet: str
    row: int
    column: str
    header: str
    message: str

    def __str__(self) -> str:
        return f"{self.sheet}!{self.column}{self.row} [{self.header}]: {self.message}"


class ImportFailed(Exception):
    """The file is refused as a whole; ``errors`` lists every fault found."""

    def __init__(self, errors: Sequence[CellError]) -> None:
        super().__init__("\n".join(map(str, errors)))
        self.errors = list(errors)


def open_workbook(source: Path | bytes):
    """The workbook in ``source``; a file that is not a readable .xlsx is refused as a whole."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        return load_workbook(io.BytesIO(data), data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError, OSError):
        raise ImportFailed(
            [CellError("", 0, "", "", "不是有效的 Excel (.xlsx) 文件 (not an .xlsx file)")]
        ) from None


@dataclass
class Row:
    number: int
    village: OrgUnit
    county: OrgUnit
    form: dict[str, Any]
    values: dict[str, Any]
    """``form`` is what the cells say (passed to Runtime.start); ``values`` is it parsed (分, ISO dates)."""


@dataclass
class ImportResult:
    """Instances created by this import, and those an earlier import of the same rows had made."""

    created: list[int] = field(default_factory=list)
    existing: list[int] = field(default_factory=list)


def _raw(col: Column, value: Any) -> Any:
    """A cell as the form value Runtime.start parses (multichoice split, 负面清单 names to codes)."""
    text = cell_text(value)
    if col.field is None or not text or col.field.kind != "multichoice":
        return text
    items = [t.strip() for t in SEPARATORS.split(text) if t.strip()]
    if col.key == "negative_list_hits":
        by_name = {}
        for item in policy.latest().negative_list:
            by_name.update({item.code: item.code, item.text: item.code, negative_name(item.code): item.code})
        items = [by_name.get(t, t) for t in items]
    return items


class _Reader:
    def __init__(self, session: Session, runtime: Runtime, actor: Actor, kind: str) -> None:
        self.session, self.runtime, self.actor = session, runtime, actor
        self.sheet_name = SHEETS[kind]
        self.columns = columns(runtime)
        self.places = Places.load(session)
        self.errors: list[CellError] = []
        self.letters: dict[str, str] = {}

    def error(self, row: int, key: str | None, message: str) -> None:
        col = next((c for c in self.columns if c.key == key), None)
        self.errors.append(
            CellError(
                self.sheet_name, row, self.letters.get(key or "", ""), col.header if col else "", message
            )
        )

    def read(self, source: Path | bytes) -> list[Row]:
        book = open_workbook(source)
        if self.sheet_name not in book.sheetnames:
            self.errors.append(CellError(self.sheet_name, 0, "", "", "缺少工作表 (sheet missing)"))
            return []
        sheet = book[self.sheet_name]
        found = header_map(sheet)
        for col in self.columns:
            if col.header in found:
                self.letters[col.key] = get_column_letter(found[col.header])
            else:
                self.errors.append(CellError(self.sheet_name, 1, "", col.header, "缺少列 (column missing)"))
        if self.errors:
            return []
        rows, seen = [], {}
        for cells in sheet.iter_rows(min_row=2):
            values = {c.key: cells[found[c.header] - 1].value for c in self.columns}
            if all(cell_text(v) == "" for v in values.values()):
                continue
            row = self._row(cells[0].row, values)
            if row is None:
                continue
            key = natural_key(row)
            if key in seen:
                self.error(row.number, "name", f"与第{seen[key]}行重复 (duplicate of row {seen[key]})")
            seen.setdefault(key, row.number)
            rows.append(row)
        if not rows and not self.errors:
            self.errors.append(CellError(self.sheet_name, 2, "", "", "没有数据行 (no rows)"))
        return rows

    def _place(self, number: int, values: Mapping[str, Any]) -> tuple[OrgUnit, OrgUnit] | None:
        county = self.places.child(None, COUNTY, cell_text(values[COUNTY]))
        if county is None:
            self.error(number, COUNTY, f"未知的县(市): {cell_text(values[COUNTY])} (unknown county)")
            return None
        township = self.places.child(county, TOWNSHIP, cell_text(values[TOWNSHIP]))
        if township is None:
            self.error(
                number, TOWNSHIP, f"{county.name}无此乡镇: {cell_text(values[TOWNSHIP])} (unknown township)"
            )
            return None
        village = self.places.child(township, VILLAGE, cell_text(values[VILLAGE]))
        if village is None or not self.actor.sees(village.path):
            self.error(
                number,
                VILLAGE,
                f"{township.name}无此村或不在您的管辖范围: {cell_text(values[VILLAGE])} (unknown village or out of scope)",
            )
            return None
        return county, village

    def _row(self, number: int, cells: Mapping[str, Any]) -> Row | None:
        place = self._place(number, cells)
        raw = {c.key: _raw(c, cells[c.key]) for c in self.columns if c.field is not None}
        fields = [c.field for c in self.columns if c.field is not None]
        try:
            values = parse(fields, raw)
        except InvalidForm as exc:
            for key, message in exc.errors.items():
                self.error(number, key, message)
            return None
        before = len(self.errors)
        self._rules(number, values)
        if place is None or len(self.errors) > before:
            return None
        return Row(number, place[1], place[0], raw, values)

    def _rules(self, number: int, values: Mapping[str, Any]) -> None:
        """The entry rules a form alone does not hold (DOMAIN §2.2 gate, §8, §9)."""
        for code in values.get("negative_list_hits") or ():
            self.error(
                number, "negative_list_hits", f"属于负面清单, 不得入库: {negative_name(code)} (negative list)"
            )
        if not values.get("negative_list_checked"):
            self.error(number, "negative_list_checked", "未完成负面清单自查 (self-check not done)")
        if not str(values.get("benefit_mechanism") or "").strip():
            self.error(
                number, "benefit_mechanism", "缺少联农带农利益联结机制, 不得安排衔接资金 (no benefit linkage)"
            )
        if total_funds(values) <= 0:
            self.error(number, FUND_SOURCES[0][0], "计划投入资金合计为零 (no planned funds)")
        if values["period_end"] < values["period_start"]:
            self.error(number, "period_end", "实施期限(止)早于(起) (period ends before it starts)")


def natural_key(row: Row) -> tuple[int, str, str]:
    """A project is (year, village code, project name)."""
    return (int(row.values["year"]), row.village.code, row.values["name"])


def _key(prefix: str, *parts: Any) -> str:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:40]
    return f"import:{prefix}:{digest}"


def _start(
    reader: _Reader, key: str, unit: OrgUnit, form: Mapping[str, Any], now, idem: str, result, row
) -> None:
    existed = reader.session.scalars(select(Instance.id).where(Instance.idempotency_key == idem)).first()
    try:
        inst = reader.runtime.start(
            reader.session, key, reader.actor, org_unit_id=unit.id, form=form, now=now, idempotency_key=idem
        )
    except EngineError as exc:
        reader.error(row, VILLAGE, f"系统拒绝: {exc.message}")
        return
    (result.existing if existed is not None else result.created).append(inst.id)


def import_projects(
    session: Session, runtime: Runtime, actor: Actor, source: Path | bytes, now: datetime
) -> ImportResult:
    """Start a ``project_library`` draft per row, as ``actor`` (who must hold the start role there)."""
    reader = _Reader(session, runtime, actor, PROJECTS)
    rows = reader.read(source)
    if reader.errors:
        raise ImportFailed(reader.errors)
    result = ImportResult()
    for row in rows:
        idem = _key(project_library.KEY, *natural_key(row))
        _start(reader, project_library.KEY, row.village, row.form, now, idem, result, row.number)
    if reader.errors:
        raise ImportFailed(reader.errors)
    return result


def _library_project(session: Session, row: Row) -> Instance | None:
    found = session.scalars(
        select(Instance)
        .where(
            Instance.workflow_key == project_library.KEY,
            Instance.org_unit_id == row.village.id,
            Instance.title == row.values["name"][:255],
        )
        .order_by(Instance.id.desc())
    ).all()
    return next((i for i in found if int(i.data.get("year") or 0) == int(row.values["year"])), None)


def import_plan(
    session: Session, runtime: Runtime, actor: Actor, source: Path | bytes, now: datetime
) -> ImportResult:
    """A county's annual plan: each row's library project is planned (纳入年度计划), then one
    ``plan_filing`` per county and year is started with the totals of its rows.

    Only projects already in the library may enter a plan [N]. ``actor`` must hold the
    county approver role; ``existing`` lists filings an earlier import made.
    """
    reader = _Reader(session, runtime, actor, PLAN)
    rows = reader.read(source)
    projects = {}
    for row in rows:
        inst = _library_project(session, row)
        if inst is None or inst.state not in (*LISTED, PLANNED):
            state = "不存在" if inst is None else runtime.definition(inst).workflow.state(inst.state).label
            reader.error(row.number, "name", f"项目未入库({state}), 不得纳入年度计划 (not in the library)")
        projects[row.number] = inst
    if reader.errors:
        raise ImportFailed(reader.errors)
    for row in rows:
        inst = projects[row.number]
        if inst.state in LISTED:
            try:
                runtime.fire(session, inst.id, "plan", actor, now=now, idempotency_key=_key("plan", inst.id))
            except EngineError as exc:
                reader.error(row.number, "name", f"系统拒绝: {exc.message}")
    groups: dict[tuple[int, int], list[Row]] = {}
    for row in rows:
        groups.setdefault((int(row.values["year"]), row.county.id), []).append(row)
    start_role = next(r for r in ROLES if r.code == runtime.registry.get(plan_filing.KEY).workflow.start_role)
    result = ImportResult()
    for (year, _), group in groups.items():
        county = group[0].county
        p = policy.load(year)
        total = sum(total_funds(r.values) for r in group)
        form = {
            "year": year,
            "plan_summary": f"{county.name}{year}年度项目实施计划: 共{len(group)}个项目, 计划投入{plain(fen_to_wan(total))}万元",
            **{k: plain(fen_to_wan(v)) for k, v in plan_totals(p, [r.values for r in group]).items()},
        }
        unit = department_under(session, county, start_role.dept)
        idem = _key(plan_filing.KEY, year, county.code)
        _start(reader, plan_filing.KEY, unit, form, now, idem, result, group[0].number)
    if reader.errors:
        raise ImportFailed(reader.errors)
    return result
