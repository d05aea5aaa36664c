"""Excel exports (Excel 导出): project library, annual plan, asset ledger, audit trail.

Each export is scoped by the :class:`~engine.scope.Actor`: only instances whose org path
lies in the actor's sight are read, so a township officer never exports another
township's rows. The library and plan sheets carry the import template's headers, so an
export can be imported again (extra columns such as 编号 and 状态 are ignored on import).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.clock import SHANGHAI, UTC, local
from engine.forms import fen_to_wan
from engine.runtime import Runtime
from engine.scope import Actor
from engine.store.models import AuditEvent, Instance, OrgUnit
from workflows import project_delivery, project_library
from workflows.common import FUND_SOURCES, total_funds
from workflows.reports.importer import PLAN, PLANNED, PROJECTS, SHEETS, Column, columns, negative_name
from workflows.reports.places import COUNTY, TOWNSHIP, VILLAGE, Places
from workflows.reports.xlsx import add_sheet, new_book, to_bytes

ID_HEADER, STATE_HEADER, TOTAL_HEADER = "编号", "状态", "合计(万元)"


def _scoped(session: Session, actor: Actor, key: str, county: OrgUnit | None = None) -> list[Instance]:
    query = select(Instance).where(Instance.workflow_key == key, actor.scope_filter(Instance.org_path))
    if county is not None:
        query = query.where(Instance.org_path.startswith(county.path, autoescape=True))
    return list(session.scalars(query.order_by(Instance.org_path, Instance.id)))


def cell(col: Column, places: Places, inst: Instance) -> Any:
    """The value an export writes for one template column of a project."""
    if col.field is None:
        return places.name_on_path(inst.org_path, col.key)
    value = inst.data.get(col.key)
    kind = col.field.kind
    if value is None:
        return None
    if kind == "money":
        return fen_to_wan(int(value))
    if kind == "bool":
        return "是" if value else "否"
    if kind == "multichoice":
        names = [negative_name(v) for v in value] if col.key == "negative_list_hits" else value
        return "、".join(names) or None
    return value


def _project_rows(runtime: Runtime, places: Places, found: Iterable[Instance]) -> list[list[Any]]:
    cols = columns(runtime)
    return [
        [
            inst.id,
            *(cell(c, places, inst) for c in cols),
            fen_to_wan(total_funds(inst.data)),
            runtime.definition(inst).workflow.state(inst.state).label,
            "、".join(project_library.priorities(inst.data)) or None,
        ]
        for inst in found
    ]


def _project_headers(runtime: Runtime) -> list[str]:
    return [ID_HEADER, *(c.header for c in columns(runtime)), TOTAL_HEADER, STATE_HEADER, "优先安排"]


def library(session: Session, runtime: Runtime, actor: Actor, county: OrgUnit | None = None) -> bytes:
    """Every project of the library (any state) in the actor's sight, optionally of one county."""
    places = Places.load(session)
    found = _scoped(session, actor, project_library.KEY, county)
    book = new_book()
    add_sheet(book, SHEETS[PROJECTS], _project_headers(runtime), _project_rows(runtime, places, found))
    return to_bytes(book)


SUMMARY_HEADERS = ("县(市)", "项目数", *(f"{label}(万元)" for _, label in FUND_SOURCES), TOTAL_HEADER)


def annual_plan(
    session: Session, runtime: Runtime, actor: Actor, year: int, county: OrgUnit | None = None
) -> bytes:
    """The projects of ``year`` in the annual plan (已纳入年度计划), and a 汇总 sheet per county."""
    places = Places.load(session)
    found = [
        i
        for i in _scoped(session, actor, project_library.KEY, county)
        if i.state == PLANNED and int(i.data.get("year") or 0) == year
    ]
    book = new_book()
    add_sheet(book, SHEETS[PLAN], _project_headers(runtime), _project_rows(runtime, places, found))
    sums: dict[str, list[int]] = {}
    for inst in found:
        row = sums.setdefault(places.name_on_path(inst.org_path, COUNTY), [0] * (len(FUND_SOURCES) + 1))
        row[0] += 1
        for i, (name, _) in enumerate(FUND_SOURCES, start=1):
            row[i] += int(inst.data.get(name) or 0)
    add_sheet(
        book,
        "汇总",
        SUMMARY_HEADERS,
        (
            [name, row[0], *(fen_to_wan(v) for v in row[1:]), fen_to_wan(sum(row[1:]))]
            for name, row in sums.items()
        ),
    )
    return to_bytes(book)


def ledger_headers() -> list[str]:
    fields = [f"{f.label}(万元)" if f.kind == "money" else f.label for f in project_delivery.REGISTER_FIELDS]
    return [ID_HEADER, "县(市)", "乡镇", "村", "项目名称", *fields, "移交日期", "移交文件", STATE_HEADER]


def ledger(session: Session, runtime: Runtime, actor: Actor, county: OrgUnit | None = None) -> bytes:
    """The asset ledger (资产台账): 个数、原值、权属、类别 and the rest of each registered asset."""
    places = Places.load(session)
    rows = []
    for inst in _scoped(session, actor, project_delivery.KEY, county):
        if "asset_count" not in inst.data:
            continue
        data = inst.data
        rows.append(
            [
                inst.id,
                *(places.name_on_path(inst.org_path, k) for k in (COUNTY, TOWNSHIP, VILLAGE)),
                data.get("name"),
                *(
                    fen_to_wan(int(data[f.name])) if f.kind == "money" else data.get(f.name)
                    for f in project_delivery.REGISTER_FIELDS
                ),
                data.get("handed_over_on"),
                data.get("handover_document"),
                runtime.definition(inst).workflow.state(inst.state).label,
            ]
        )
    book = new_book()
    add_sheet(book, "资产台账", ledger_headers(), rows)
    return to_bytes(book)


AUDIT_HEADERS = (
    "时间(北京时间)",
    "实例编号",
    "流程",
    "事项",
    "动作",
    "操作人",
    "代为办理(被代理人)",
    "角色",
    "原状态",
    "新状态",
    "意见",
    "哈希",
)


def _period(start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    """Local dates (inclusive) → UTC bounds [from, to)."""

    def at(d: date) -> datetime:
        return datetime.combine(d, time(), SHANGHAI).astimezone(UTC)

    return (at(start) if start else None, at(end + timedelta(days=1)) if end else None)


def _audit_rows(runtime: Runtime, pairs: Sequence[tuple[AuditEvent, Instance]]) -> list[list[Any]]:
    rows = []
    for event, inst in pairs:
        wf = runtime.definition(inst).workflow

        def label(state: str | None, wf=wf) -> str | None:
            return wf.state(state).label if state else None

        rows.append(
            [
                local(event.at).strftime("%Y-%m-%d %H:%M:%S"),
                inst.id,
                wf.title,
                inst.title,
                wf.label_of(event.trigger) if event.trigger else event.action,
                event.actor_name,
                event.on_behalf_of_name,
                event.role,
                label(event.from_state),
                label(event.to_state),
                event.comment,
                event.hash,
            ]
        )
    return rows


def audit(
    session: Session,
    runtime: Runtime,
    actor: Actor,
    *,
    instance_id: int | None = None,
    county: OrgUnit | None = None,
    start: date | None = None,
    end: date | None = None,
) -> bytes:
    """The audit trail of one instance, or of every instance of a county (in sight) for a period."""
    query = select(AuditEvent, Instance).join(Instance, AuditEvent.instance_id == Instance.id)
    if instance_id is not None:
        runtime.instance(session, instance_id, actor)
        query = query.where(Instance.id == instance_id)
    query = query.where(actor.scope_filter(Instance.org_path))
    if county is not None:
        query = query.where(Instance.org_path.startswith(county.path, autoescape=True))
    since, until = _period(start, end)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    pairs = session.execute(query.order_by(AuditEvent.at, AuditEvent.id)).tuples().all()
    book = new_book()
    add_sheet(book, "审计记录", AUDIT_HEADERS, _audit_rows(runtime, pairs))
    return to_bytes(book)
