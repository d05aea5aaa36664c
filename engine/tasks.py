"""Work items (待办) and clocks opened and closed as an instance enters and leaves a step.

Only the runtime calls these, inside its transaction: a task or a deadline row never
changes apart from the state change that causes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import NamedTuple

from sqlalchemy import (
    CompoundSelect,
    Select,
    and_,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from engine import notify
from engine.deadlines import WorkCalendar, due_at
from engine.definitions import Deadline, GuardContext, State
from engine.errors import NotPossible
from engine.machine import Registry
from engine.scope import Actor, ancestor_at, department_under, holders, path_end, unit_codes
from engine.store.db import is_postgres
from engine.store.models import ACTIVE, DeadlineRow, Instance, OrgUnit, Task, User

OPEN = "open"


@dataclass(frozen=True)
class Offer:
    """Where a step's work is offered: a role at a unit, for one countersign party or for all."""

    role: str
    unit: OrgUnit
    party: str | None = None


def offers(session: Session, registry: Registry, inst: Instance, state: State, now: datetime) -> list[Offer]:
    """The units whose holders of the step's role receive a task on entering ``state``."""
    if state.actor is None:
        return []
    if state.countersign is not None:
        ctx = GuardContext(data=inst.data, form={}, now=now, units=unit_codes(session, inst))
        parties = list(dict.fromkeys(state.countersign.parties(ctx)))
        return [party_offer(session, registry, inst, state, p) for p in parties]
    return [Offer(state.actor, role_unit(session, registry, inst, state.actor))]


def role_unit(session: Session, registry: Registry, inst: Instance, code: str) -> OrgUnit:
    """The unit where role ``code`` is held over ``inst``: its level's ancestor, or that unit's department."""
    role = registry.roles[code]
    anchor = ancestor_at(session, inst.org_unit, role.level)
    return department_under(session, anchor, role.dept) if role.dept else anchor


def party_offer(session: Session, registry: Registry, inst: Instance, state: State, party: str) -> Offer:
    """A countersign party's offer: the step's role at department ``party`` of the anchoring unit."""
    role = registry.roles[state.actor]
    anchor = ancestor_at(session, inst.org_unit, role.level)
    return Offer(role.code, department_under(session, anchor, party), party)


def open_task(
    session: Session,
    inst: Instance,
    state: str,
    offer: Offer,
    now: datetime,
    due: datetime | None,
    kind: str = "step",
) -> Task:
    task = Task(
        instance_id=inst.id,
        state=state,
        kind=kind,
        role=offer.role,
        org_unit_id=offer.unit.id,
        org_path=offer.unit.path,
        party=offer.party,
        status=OPEN,
        created_at=now,
        due_at=due,
    )
    session.add(task)
    session.flush()
    tell_holders(
        session,
        offer.role,
        offer.unit,
        inst,
        now,
        kind="assigned",
        subject=f"新待办: {inst.title}",
        key=f"assigned:{task.id}",
    )
    return task


def tell_holders(
    session: Session,
    role: str,
    unit: OrgUnit,
    inst: Instance,
    now: datetime,
    *,
    kind: str,
    subject: str,
    key: str,
) -> None:
    """Queue one in-app notification for each holder of ``role`` at ``unit`` (and their stand-ins)."""
    notify.queue_all(session, holders(session, role, unit, now), kind=kind, instance_id=inst.id, now=now,
                     subject=subject, dedupe_prefix=key)


_NEW_CLOCKS = insert(DeadlineRow.__table__)


def start_clock(
    session: Session,
    inst: Instance,
    state: str,
    deadline: Deadline,
    now: datetime,
    calendar: WorkCalendar | None,
    kind: str,
) -> datetime | None:
    """Rows for a step's deadline (reminders and breach) or timer (SYSTEM trigger at expiry).

    Returns the due time, or None when an optional entered-date deadline has no date (no clock).
    """
    due = due_at(deadline, now, calendar, inst.data)
    if due is None:
        return None
    rows = [
        {"kind": "remind", "due_at": due - timedelta(days=days), "days_before": days, "trigger": None,
         "escalate_to": None}
        for days in deadline.remind
        if due - timedelta(days=days) > now
    ]
    rows.append(
        {"kind": kind, "due_at": due, "days_before": None, "trigger": deadline.on_expiry,
         "escalate_to": deadline.escalate_to}
    )
    session.connection().execute(_NEW_CLOCKS, [{"instance_id": inst.id, "state": state, "created_at": now, **r} for r in rows])
    return due


def finish(task: Task, now: datetime, *, outcome: str, by: int | None, comment: str | None = None) -> None:
    """Close one task as done (a countersign party's sign, a supervision task's handling)."""
    task.status, task.outcome, task.comment = "done", outcome, comment
    task.closed_at, task.closed_by_id = now, by


def extend_clocks(
    session: Session, inst: Instance, extension: Deadline, calendar: WorkCalendar | None
) -> datetime:
    """延期: move the step's running clocks (and its open tasks' due times) later.

    The new due time is ``extension`` counted from the current breach (or timer) due time;
    every pending reminder moves by the same amount.
    """
    rows = session.scalars(
        select(DeadlineRow).where(DeadlineRow.instance_id == inst.id, DeadlineRow.status == "pending")
    ).all()
    ends = [r for r in rows if r.kind in ("breach", "timer")]
    if not ends:
        raise NotPossible("本环节没有可延期的时限 (this step has no running deadline to extend)")
    old = max(r.due_at for r in ends)
    shift = due_at(extension, old, calendar, inst.data) - old
    for row in rows:
        row.due_at += shift
    for task in session.scalars(select(Task).where(Task.instance_id == inst.id, Task.status == OPEN)):
        if task.due_at is not None:
            task.due_at += shift
    return old + shift


def notify_on_entry(
    session: Session, registry: Registry, inst: Instance, state: State, now: datetime
) -> None:
    """Tell the holders of each of the step's ``notify`` roles that the instance entered it."""
    for code in state.notify:
        tell_holders(
            session,
            code,
            role_unit(session, registry, inst, code),
            inst,
            now,
            kind="entered",
            subject=f"{state.label}: {inst.title}",
            key=f"entered:{inst.id}:{state.name}:{now.isoformat()}",
        )


_CLOCKS = DeadlineRow.__table__.c
_STOP_CLOCKS = (
    update(DeadlineRow.__table__)
    .where(_CLOCKS.instance_id == bindparam("of_instance"), _CLOCKS.status == "pending")
    .values(status="cancelled")
)
"""Stop an instance's clocks (a Core UPDATE: the loaded rows are brought in line by hand, not by the ORM)."""


def close_open(
    session: Session,
    inst: Instance,
    now: datetime,
    *,
    done: Task | None,
    outcome: str,
    closed_by: int | None,
    open_tasks: Sequence[Task] | None = None,
) -> None:
    """Leave a step: the task acted on is done; every other open task is cancelled; clocks stop.

    ``open_tasks``: the instance's open tasks if the caller has just read them (not read again).
    """
    if open_tasks is None:
        open_tasks = session.scalars(select(Task).where(Task.instance_id == inst.id, Task.status == OPEN)).all()
    for task in open_tasks:
        task.status = "done" if done is not None and task.id == done.id else "cancelled"
        task.outcome = outcome
        task.closed_at = now
        task.closed_by_id = closed_by
    session.connection().execute(_STOP_CLOCKS, {"of_instance": inst.id})
    for obj in list(session.identity_map.values()):
        if isinstance(obj, DeadlineRow) and obj.instance_id == inst.id and obj.__dict__.get("status") == "pending":
            set_committed_value(obj, "status", "cancelled")


_FILTERS = ("workflow", "state", "org_path", "due_before", "overdue_at")


class Assignee(NamedTuple):
    """Who has claimed (签收) a task."""

    id: int
    username: str
    display_name: str


class QueueItem(NamedTuple):
    """One line of 我的待办: the task, with what the list shows of its instance, unit and assignee."""

    id: int
    instance_id: int
    state: str
    role: str
    org_unit_id: int
    assignee_id: int | None
    delegated_by_id: int | None
    created_at: datetime
    due_at: datetime | None
    title: str
    workflow_key: str
    workflow_version: int
    unit_name: str
    assignee: Assignee | None


@dataclass(frozen=True)
class Page:
    """One page of a query, with the total for paging.

    When ``exact`` is False the query was not counted to its end: ``total`` rows exist
    (there is a page after this one) and there may be more, shown "N+".
    """

    items: list
    total: int
    page: int
    per_page: int
    exact: bool = True

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def task_queue(
    session: Session,
    actor: Actor,
    *,
    workflow: str | None = None,
    state: str | None = None,
    org_path: str | None = None,
    due_before: datetime | None = None,
    overdue_at: datetime | None = None,
    page: int = 1,
    per_page: int = 20,
) -> Page:
    """我的待办: open tasks the actor may work, by role membership and org scope, soonest due first.

    A task claimed by someone else stays listed (shown as taken). ``org_path`` narrows to a
    county or township; ``overdue_at`` keeps only tasks already late at that time. The queue
    is counted only as far as each membership's range has to be read for this page and one
    row more: the total is exact when every range ended, else a lower bound ("N+").

    One statement (:func:`_statements`) reads each membership's index ranges in page order,
    each stopping after the rows the page needs, merges them, and returns only the page's
    rows with the columns the list shows and the count. It is built once per shape and
    reused, and runs on the session's connection (no ORM entities are loaded), so a call
    costs little Python beyond the page's rows.
    """
    reach = _reach(actor)
    page = max(1, page)
    if not reach:
        return Page([], 0, page, per_page)
    offset = (page - 1) * per_page
    limit = offset + per_page + 1
    given = {
        "workflow": workflow,
        "state": state,
        "org_path": org_path,
        "due_before": due_before,
        "overdue_at": overdue_at,
    }
    params: dict = {"limit": limit, **{k: v for k, v in given.items() if v}}
    if org_path:
        params["org_end"] = path_end(org_path)
    for i, (role, path) in enumerate(reach):
        params.update({f"role{i}": role, f"path{i}": path, f"end{i}": path_end(path)})
    shape = tuple(k for k in _FILTERS if given[k])
    listing, counting = _statements(is_postgres(session), len(reach), shape)
    conn = session.connection()
    rows = conn.execute(listing, {**params, "offset": offset, "per_page": per_page}).all()
    total, widest = (rows[0].total, rows[0].widest) if rows else conn.execute(counting, params).one()
    items = [
        QueueItem(*r[:13], Assignee(r.assignee_id, r.username, r.display_name) if r.username else None)
        for r in rows
    ]
    return Page(items, total, page, per_page, (widest or 0) < limit)


def _reach(actor: Actor) -> list[tuple[str, str]]:
    """The actor's (role, org path) memberships, leaving out any that lies inside another of the same role."""
    reach: list[tuple[str, str]] = []
    for role, path in sorted({(m.role, m.org_path) for m in actor.memberships}):
        if not any(r == role and path.startswith(p) for r, p in reach):
            reach.append((role, path))
    return reach


def _candidates(postgres: bool, memberships: int, filters: tuple[str, ...]) -> CompoundSelect:
    """The ids and due times of the queue's first ``:limit`` rows in each index range of ``ix_task_open``.

    Per membership (``:role0``, ``:path0``…), the tasks at its unit itself, where a role's
    tasks are offered, and those below it: each range is one index scan in page order that
    stops early, joined to its instances row by row. PostgreSQL's ascending index already
    puts tasks without a due time last; SQLite's puts them first, so there each range is
    read as two, with and without a due time. The ranges do not overlap.
    """
    due = Task.due_at.asc().nulls_last() if postgres else Task.due_at
    conditions = {
        "workflow": Instance.workflow_key == bindparam("workflow"),
        "state": Task.state == bindparam("state"),
        "org_path": and_(Instance.org_path >= bindparam("org_path"), Instance.org_path < bindparam("org_end")),
        "due_before": Task.due_at <= bindparam("due_before", type_=Task.due_at.type),
        "overdue_at": Task.due_at < bindparam("overdue_at", type_=Task.due_at.type),
    }
    arms = []
    for i in range(memberships):
        path = bindparam(f"path{i}")
        for at in (Task.org_path == path, and_(Task.org_path > path, Task.org_path < bindparam(f"end{i}"))):
            for dated in (None,) if postgres else (True, False):
                query = (
                    select(Task.id, Task.due_at, literal_column(str(len(arms))).label("arm"))
                    .join(Instance, Task.instance_id == Instance.id)
                    .where(Task.status == literal_column(f"'{OPEN}'"), Task.role == bindparam(f"role{i}"), at)
                    .where(Instance.status == ACTIVE, *(conditions[f] for f in filters))
                    .order_by(due, Task.id)
                    .limit(bindparam("limit"))
                )
                if dated is not None:
                    query = query.where(Task.due_at.is_not(None) if dated else Task.due_at.is_(None))
                arms.append(select(query.subquery()))
    return union_all(*arms)


@lru_cache(maxsize=128)
def _statements(postgres: bool, memberships: int, filters: tuple[str, ...]) -> tuple[Select, Select]:
    """The page with its columns and the count (total, widest range), and the count alone for an empty page.

    Built once per shape (backend, number of memberships, filters given). The candidates of :func:`_candidates` are sorted once more (a few rows per range), cut to
    ``:per_page`` rows from ``:offset``, and joined to what the list shows: the instance's
    title and workflow, the unit's name and the assignee (looked up per row).
    """
    cand = _candidates(postgres, memberships, filters).cte("cand")
    ranges = select(func.count().label("n")).select_from(cand).group_by(cand.c.arm).subquery()
    total = select(func.count()).select_from(cand).scalar_subquery()
    widest = select(func.max(ranges.c.n)).scalar_subquery()
    order = (cand.c.due_at.asc().nulls_last(), cand.c.id)
    page = select(cand.c.id, cand.c.due_at).order_by(*order).limit(bindparam("per_page"))
    page = page.offset(bindparam("offset")).subquery("page")
    listing = (
        select(
            Task.id,
            Task.instance_id,
            Task.state,
            Task.role,
            Task.org_unit_id,
            Task.assignee_id,
            Task.delegated_by_id,
            Task.created_at,
            Task.due_at,
            Instance.title,
            Instance.workflow_key,
            Instance.workflow_version,
            select(OrgUnit.name).where(OrgUnit.id == Task.org_unit_id).scalar_subquery().label("unit_name"),
            select(User.username).where(User.id == Task.assignee_id).scalar_subquery().label("username"),
            select(User.display_name)
            .where(User.id == Task.assignee_id)
            .scalar_subquery()
            .label("display_name"),
            total.label("total"),
            widest.label("widest"),
        )
        .select_from(page)
        .join(Task, Task.id == page.c.id)
        .join(Instance, Task.instance_id == Instance.id)
        .order_by(page.c.due_at.asc().nulls_last(), page.c.id)
    )
    return listing, select(total.label("total"), widest.label("widest"))
