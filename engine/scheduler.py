"""The scheduler (定时任务): acts on every due deadline row, each exactly once.

The runtime writes a :class:`~engine.store.models.DeadlineRow` for each reminder (提醒),
breach (超期) and timer (a notice period's end) when an instance enters a step, and
cancels the rows when it leaves. :func:`run_due` acts on the rows that have fallen due:

- ``remind``: an in-app notification to whoever holds the step's open task, and an
  audit event ``remind``;
- ``breach``: an audit event ``overdue``, a notification, and a 督办 (``supervise``) task
  for the role the step's deadline escalates to, at that role's unit above the instance;
- ``timer``: the SYSTEM fires the row's trigger, as of the row's due time.

Exactly once: a row is claimed in the transaction that acts on it, and that transaction
commits or rolls back as one. On PostgreSQL the claim locks the instance (the order the
runtime locks in, so a user's concurrent action cannot deadlock with it) and then the row
``FOR UPDATE SKIP LOCKED``; on both databases a conditional ``UPDATE … WHERE
status='pending'`` must change exactly one row. A second scheduler, or a rerun, finds the
row fired and leaves it. A process killed mid-row loses only its open transaction: the
row is still pending, and the next scan acts on it.

:func:`serve` runs :func:`run_due` every ``interval_seconds`` in an APScheduler 3
``BlockingScheduler``. APScheduler only says when to scan; correctness lies in the rows,
so its job store stays in memory and is never shared.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from engine import audit, notify, tasks
from engine.clock import UTC, local, utcnow
from engine.definitions import SYSTEM
from engine.runtime import Runtime
from engine.scope import Actor, ancestor_at, department_under, holders
from engine.store.db import is_postgres
from engine.store.models import ACTIVE, DeadlineRow, Instance, Task

log = logging.getLogger(__name__)

PENDING, FIRED = "pending", "fired"
SUPERVISE = "supervise"


def run_due(sessions: sessionmaker[Session], runtime: Runtime, now: datetime, *, batch: int = 100) -> int:
    """Act on every pending row due at ``now``, in due order, one transaction each; return how many.

    Rows are read ``batch`` at a time. A row that fails is rolled back alone, logged, and
    counted in its ``attempts`` with its ``last_error``; it stays pending for the next scan.
    A fired timer may start clocks that are already due (after downtime), so reading resumes
    from it and those rows are acted on in this same scan, in their order. Rows of
    instances that are not active (suspended, ended) and paused rows are left alone.
    """
    acted = 0
    cursor: tuple[datetime, int] | None = None
    while True:
        page = _candidates(sessions, now, cursor, batch)
        for row_id, due, kind in page:
            cursor = (due, row_id)
            if _act_once(sessions, runtime, row_id, now):
                acted += 1
                if kind == "timer":
                    break
        else:
            if len(page) < batch:
                return acted


def _candidates(
    sessions: sessionmaker[Session], now: datetime, cursor: tuple[datetime, int] | None, batch: int
) -> list[tuple[int, datetime, str]]:
    query = (
        select(DeadlineRow.id, DeadlineRow.due_at, DeadlineRow.kind)
        .join(Instance, Instance.id == DeadlineRow.instance_id)
        .where(DeadlineRow.status == PENDING, DeadlineRow.due_at <= now, Instance.status == ACTIVE)
        .order_by(DeadlineRow.due_at, DeadlineRow.id)
        .limit(batch)
    )
    if cursor is not None:
        due, row_id = cursor
        query = query.where(
            or_(DeadlineRow.due_at > due, and_(DeadlineRow.due_at == due, DeadlineRow.id > row_id))
        )
    with sessions() as s:
        return [tuple(r) for r in s.execute(query)]


def _act_once(sessions: sessionmaker[Session], runtime: Runtime, row_id: int, now: datetime) -> bool:
    """Claim and act on one row in one transaction; False if another scan had it, or it failed."""
    try:
        with sessions.begin() as s:
            row = _claim(s, row_id, now)
            if row is None:
                return False
            ACTIONS[row.kind](s, runtime, row, now)
        return True
    except Exception as exc:
        log.exception("deadline row %s failed; it stays pending for the next scan", row_id)
        with sessions.begin() as s:
            s.execute(
                update(DeadlineRow)
                .where(DeadlineRow.id == row_id, DeadlineRow.status == PENDING)
                .values(attempts=DeadlineRow.attempts + 1, last_error=f"{type(exc).__name__}: {exc}"[:2000])
            )
        return False


def _claim(s: Session, row_id: int, now: datetime) -> DeadlineRow | None:
    """Mark the row fired if it is still pending; None if another scheduler has or had it."""
    if is_postgres(s):
        instance_id = s.scalar(select(DeadlineRow.instance_id).where(DeadlineRow.id == row_id))
        s.execute(select(Instance.id).where(Instance.id == instance_id).with_for_update())
        free = s.scalar(
            select(DeadlineRow.id)
            .where(DeadlineRow.id == row_id, DeadlineRow.status == PENDING)
            .with_for_update(skip_locked=True)
        )
        if free is None:
            return None
    claimed = s.execute(
        update(DeadlineRow)
        .where(DeadlineRow.id == row_id, DeadlineRow.status == PENDING)
        .values(status=FIRED, fired_at=now)
    ).rowcount
    if claimed != 1:
        return None
    return s.get(DeadlineRow, row_id, populate_existing=True)


def _open_step_tasks(s: Session, row: DeadlineRow) -> list[Task]:
    return list(
        s.scalars(
            select(Task)
            .where(
                Task.instance_id == row.instance_id,
                Task.state == row.state,
                Task.status == tasks.OPEN,
                Task.kind == "step",
            )
            .order_by(Task.id)
        )
    )


def _recipients(s: Session, open_tasks: list[Task], now: datetime) -> list[int]:
    """The assignee of each claimed task; every holder (and stand-in) of each unclaimed one."""
    users: list[int] = []
    for task in open_tasks:
        users += [task.assignee_id] if task.assignee_id else holders(s, task.role, task.org_unit, now)
    return list(dict.fromkeys(users))


def _notify(
    s: Session, row: DeadlineRow, inst: Instance, users: list[int], kind: str, subject: str, now: datetime
) -> None:
    for user_id in users:
        notify.queue(
            s,
            user_id=user_id,
            kind=kind,
            instance_id=inst.id,
            now=now,
            subject=subject,
            dedupe_key=f"deadline:{row.id}:{user_id}",
        )


def _record(s: Session, row: DeadlineRow, inst: Instance, action: str, now: datetime, **detail) -> None:
    audit.append(
        s,
        audit.instance_stream(inst.id),
        at=now,
        action=action,
        actor_name=Actor.system().name,
        role=SYSTEM,
        instance_id=inst.id,
        from_state=row.state,
        to_state=inst.state,
        detail={"deadline_id": row.id, "due_at": row.due_at.isoformat(), **detail},
    )


def _remind(s: Session, runtime: Runtime, row: DeadlineRow, now: datetime) -> None:
    """提醒: tell whoever holds the step's work that it falls due in ``days_before`` days."""
    inst = s.get(Instance, row.instance_id)
    open_tasks = _open_step_tasks(s, row)
    users = _recipients(s, open_tasks, now)
    step_due = min((t.due_at for t in open_tasks if t.due_at is not None), default=None)
    when = f", 到期 {local(step_due):%Y-%m-%d %H:%M}" if step_due else ""
    _notify(s, row, inst, users, "remind", f"办理提醒: {inst.title} (还剩{row.days_before}天{when})", now)
    _record(s, row, inst, "remind", now, days_before=row.days_before, notified=users)


def _breach(s: Session, runtime: Runtime, row: DeadlineRow, now: datetime) -> None:
    """超期: record it, tell the step's holders, and open a 督办 task for the escalation role."""
    inst = s.get(Instance, row.instance_id)
    users = _recipients(s, _open_step_tasks(s, row), now)
    _notify(s, row, inst, users, "overdue", f"已超期: {inst.title}", now)
    supervise = None
    if row.escalate_to is not None:
        offer = _escalation_offer(s, runtime, inst, row.escalate_to)
        supervise = tasks.open_task(s, inst, row.state, offer, now, None, kind=SUPERVISE)
    _record(
        s,
        row,
        inst,
        "overdue",
        now,
        notified=users,
        escalated_to=row.escalate_to,
        supervise_task_id=supervise.id if supervise else None,
    )


def _escalation_offer(s: Session, runtime: Runtime, inst: Instance, role_code: str) -> tasks.Offer:
    """The role at its unit above the instance: its level's ancestor, or that unit's department."""
    role = runtime.registry.roles[role_code]
    anchor = ancestor_at(s, inst.org_unit, role.level)
    unit = department_under(s, anchor, role.dept) if role.dept is not None else anchor
    return tasks.Offer(role.code, unit)


def _timer(s: Session, runtime: Runtime, row: DeadlineRow, now: datetime) -> None:
    """The period is over (公示期满): the SYSTEM fires the trigger as of the due time."""
    runtime.fire(
        s, row.instance_id, row.trigger, Actor.system(), now=row.due_at, idempotency_key=f"deadline:{row.id}"
    )


ACTIONS: dict[str, Callable[[Session, Runtime, DeadlineRow, datetime], None]] = {
    "remind": _remind,
    "breach": _breach,
    "timer": _timer,
}


def build_scheduler(
    sessions: sessionmaker[Session],
    runtime: Runtime,
    interval_seconds: float = 30,
    *,
    clock: Callable[[], datetime] = utcnow,
) -> BlockingScheduler:
    """An APScheduler ``BlockingScheduler`` that scans every ``interval_seconds``, first at start.

    One worker thread, ``max_instances=1`` and ``coalesce=True``: scans never overlap, and
    scans missed while one ran long collapse into one. The job store is in memory: the
    deadline rows, not APScheduler, are the durable state.
    """
    scheduler = BlockingScheduler(
        jobstores={"default": MemoryJobStore()}, executors={"default": ThreadPoolExecutor(1)}, timezone=UTC
    )

    def scan() -> int:
        now = clock()
        acted = run_due(sessions, runtime, now)
        log.info("scan at %s: acted on %d due deadline row(s)", now.isoformat(), acted)
        return acted

    scheduler.add_job(
        scan,
        IntervalTrigger(seconds=interval_seconds, timezone=UTC),
        id="run_due",
        name="scan due deadlines",
        next_run_time=clock(),
        coalesce=True,
        max_instances=1,
        misfire_grace_time=None,
    )
    return scheduler


def serve(sessions: sessionmaker[Session], runtime: Runtime, interval_seconds: float = 30) -> None:
    """Scan for due deadlines every ``interval_seconds`` until interrupted.

    One process per database is enough; a second one is safe (each row is still acted on
    once) but only adds contention.
    """
    build_scheduler(sessions, runtime, interval_seconds).start()
