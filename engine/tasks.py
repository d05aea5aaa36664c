"""Work items (待办) and clocks opened and closed as an instance enters and leaves a step.

Only the runtime calls these, inside its transaction: a task or a deadline row never
changes apart from the state change that causes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.orm import Session, joinedload

from engine import notify
from engine.deadlines import WorkCalendar, due_at
from engine.definitions import Deadline, GuardContext, State
from engine.errors import NotPossible
from engine.machine import Registry
from engine.scope import Actor, ancestor_at, department_under, holders, unit_codes, within
from engine.store.models import DeadlineRow, Instance, OrgUnit, Task

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
    session.execute(insert(DeadlineRow), [{"instance_id": inst.id, "state": state, "created_at": now, **r} for r in rows])
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
    session.execute(
        update(DeadlineRow)
        .where(DeadlineRow.instance_id == inst.id, DeadlineRow.status == "pending")
        .values(status="cancelled")
    )


@dataclass(frozen=True)
class Page:
    """One page of a query, with the total count for paging."""

    items: list
    total: int
    page: int
    per_page: int

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
    county or township; ``overdue_at`` keeps only tasks already late at that time. The page's
    ids are found first and only those rows are loaded with their instance, unit and assignee.
    """
    reach = [and_(Task.role == m.role, within(Task.org_path, m.org_path)) for m in actor.memberships]
    if not reach:
        return Page([], 0, page, per_page)
    query = (
        select(Task)
        .join(Instance, Task.instance_id == Instance.id)
        .where(Task.status == OPEN, Instance.status == "active", or_(*reach))
    )
    if workflow:
        query = query.where(Instance.workflow_key == workflow)
    if state:
        query = query.where(Task.state == state)
    if org_path:
        query = query.where(within(Instance.org_path, org_path))
    if due_before is not None:
        query = query.where(Task.due_at <= due_before)
    if overdue_at is not None:
        query = query.where(Task.due_at < overdue_at)
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    page = max(1, page)
    ids = session.scalars(
        query.with_only_columns(Task.id)
        .order_by(Task.due_at.asc().nulls_last(), Task.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    if not ids:
        return Page([], total or 0, page, per_page)
    loaded = session.scalars(
        select(Task)
        .where(Task.id.in_(ids))
        .options(joinedload(Task.instance), joinedload(Task.org_unit), joinedload(Task.assignee))
    ).unique()
    by_id = {t.id: t for t in loaded}
    return Page([by_id[i] for i in ids], total or 0, page, per_page)
