"""The scheduler (定时任务): acts on every due deadline row, each exactly once.

The runtime writes a :class:`~engine.store.models.DeadlineRow` for each reminder (提醒),
breach (超期) and timer (a notice period's end) when an instance enters a step, and
cancels the rows when it leaves. :func:`run_due` acts on the rows that have fallen due:

- ``remind``: an in-app notification to whoever holds the step's open task, and an
  audit event ``remind``;
- ``breach``: an audit event ``overdue``, a notification, and a 督办 (``supervise``) task
  for the role the step's deadline escalates to, at that role's unit above the instance;
- ``timer``: the SYSTEM fires the row's trigger, as of the row's due time.

Exactly once: rows are claimed in batches, in the transaction that acts on them, and each
row acts in its own SAVEPOINT, so a failing row rolls back alone while the claims of the
others commit with their effects. On PostgreSQL a batch first locks its rows' instances
``FOR UPDATE SKIP LOCKED`` (the order the runtime locks in, and never waiting, so neither a
user's concurrent action nor a second scheduler can deadlock with it), then claims the
rows with a conditional ``UPDATE … WHERE status='pending'``; on SQLite that UPDATE is the
batch's first write, so the single-writer lock serialises scans. A second scheduler, or a
rerun, finds the row fired and leaves it. A process killed mid-batch loses only its open
transaction: the rows are still pending, and the next scan acts on them.

:func:`build_scheduler` runs :func:`run_due` every ``interval_seconds`` in an APScheduler
3 ``BlockingScheduler``. APScheduler only says when to scan; correctness lies in the rows,
so its job store stays in memory and is never shared. A scan that fails because the
database is unreachable (or, on SQLite, locked) logs one warning and is retried with
exponential backoff until a scan succeeds; that scan catches up on everything due.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import and_, bindparam, exists, or_, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from engine import audit, notify, tasks
from engine.clock import UTC, local, utcnow
from engine.definitions import SYSTEM
from engine.runtime import Runtime
from engine.scope import Actor, ancestor_at, department_under, holders
from engine.store.db import is_postgres
from engine.store.models import ACTIVE, DeadlineRow, Instance, OrgUnit, Task

log = logging.getLogger(__name__)

PENDING, FIRED = "pending", "fired"
SUPERVISE = "supervise"
JOB_ID = "run_due"

BATCH = 200
"""Due rows acted on per transaction (a page of the scan)."""

Candidate = tuple[int, datetime, str, int, int]
CANDIDATE_COLUMNS = (
    DeadlineRow.id,
    DeadlineRow.due_at,
    DeadlineRow.kind,
    DeadlineRow.instance_id,
    DeadlineRow.attempts,
)


class _RowFailed(Exception):
    """A row failed in a batch run without SAVEPOINTs: the batch is redone with them."""


def unavailable(exc: BaseException) -> bool:
    """The database cannot be reached or used right now (down, connection lost, SQLite locked)."""
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(
            exc, (sa_exc.OperationalError, sa_exc.InterfaceError)
        )
    return isinstance(exc, (sa_exc.DisconnectionError, sa_exc.TimeoutError))


def run_due(sessions: sessionmaker[Session], runtime: Runtime, now: datetime, *, batch: int = BATCH) -> int:
    """Act on every pending row due at ``now``, in due order, a batch per transaction; return how many.

    A row that fails is rolled back alone (its SAVEPOINT), logged, and counted in its
    ``attempts`` with its ``last_error``; it stays pending for the next scan. A fired timer
    may start clocks that are already due (after downtime): the batch then stops after it
    and reading resumes from it, so those rows are acted on in this same scan, in their
    order. Rows of instances that are not active (suspended, ended) and paused rows are
    left alone. On PostgreSQL, rows whose instance another transaction holds are done at
    the end, waiting for the lock. A database that is unreachable raises (see
    :func:`unavailable`): the open batch rolls back and nothing is lost.
    """
    acted = 0
    while True:
        done, again = _scan(sessions, runtime, now, batch)
        acted += done
        if not again:
            return acted


def _scan(sessions: sessionmaker[Session], runtime: Runtime, now: datetime, batch: int) -> tuple[int, bool]:
    """One pass in due order, then the rows skipped for a held instance; True if a pass must follow.

    It must when a skipped timer, fired at the end, started clocks that are already due.
    """
    acted = 0
    cursor: tuple[datetime, int] | None = None
    deferred: list[Candidate] = []
    while True:
        page = _candidates(sessions, now, cursor, batch)
        if not page:
            break
        done, cursor, skipped, fired_timer = _batch(sessions, runtime, page, now, wait=False)
        acted += done
        deferred += skipped
        if not fired_timer and len(page) < batch:
            break
    for start in range(0, len(deferred), batch):
        done, _, _, fired_timer = _batch(sessions, runtime, deferred[start : start + batch], now, wait=True)
        acted += done
        if fired_timer:
            return acted, True
    return acted, False


_CANDIDATES = (
    select(*CANDIDATE_COLUMNS)
    .join(Instance, Instance.id == DeadlineRow.instance_id)
    .where(DeadlineRow.status == PENDING, DeadlineRow.due_at <= bindparam("now"), Instance.status == ACTIVE)
    .order_by(DeadlineRow.due_at, DeadlineRow.id)
    .limit(bindparam("batch"))
)
_CANDIDATES_AFTER = _CANDIDATES.where(
    or_(
        DeadlineRow.due_at > bindparam("due"),
        and_(DeadlineRow.due_at == bindparam("due"), DeadlineRow.id > bindparam("row_id")),
    )
)
"""The scan's two statements (first page, and after a cursor), built once."""


def _candidates(
    sessions: sessionmaker[Session], now: datetime, cursor: tuple[datetime, int] | None, batch: int
) -> list[Candidate]:
    """The next ``batch`` due rows of running instances in due order, read on the connection (no ORM)."""
    if cursor is None:
        query, params = _CANDIDATES, {"now": now, "batch": batch}
    else:
        query, params = _CANDIDATES_AFTER, {"now": now, "batch": batch, "due": cursor[0], "row_id": cursor[1]}
    with sessions() as s:
        return [tuple(r) for r in s.connection().execute(query, params)]


def _after(cursor: tuple[datetime, int]):
    due, row_id = cursor
    return or_(DeadlineRow.due_at > due, and_(DeadlineRow.due_at == due, DeadlineRow.id > row_id))


def _before(cursor: tuple[datetime, int]):
    due, row_id = cursor
    return or_(DeadlineRow.due_at < due, and_(DeadlineRow.due_at == due, DeadlineRow.id < row_id))


def _instance_active():
    return exists().where(Instance.id == DeadlineRow.instance_id, Instance.status == ACTIVE)


def _claim(s: Session, row_ids: Iterable[int], now: datetime) -> set[int]:
    """Mark the rows fired if still pending and their instance active; the ids this claimed."""
    ids = list(row_ids)
    if not ids:
        return set()
    return set(
        s.scalars(
            update(DeadlineRow)
            .where(DeadlineRow.id.in_(ids), DeadlineRow.status == PENDING, _instance_active())
            .values(status=FIRED, fired_at=now)
            .returning(DeadlineRow.id)
            .execution_options(synchronize_session=False)
        )
    )


def _unclaim(s: Session, row_ids: Iterable[int]) -> None:
    ids = list(row_ids)
    if ids:
        s.execute(
            update(DeadlineRow)
            .where(DeadlineRow.id.in_(ids), DeadlineRow.status == FIRED)
            .values(status=PENDING, fired_at=None)
            .execution_options(synchronize_session=False)
        )


def _lock_instances(s: Session, instance_ids: set[int], wait: bool) -> set[int]:
    """PostgreSQL: lock the instances in id order; without ``wait``, skip those another holds."""
    query = select(Instance.id).where(Instance.id.in_(instance_ids)).order_by(Instance.id)
    return set(s.scalars(query.with_for_update(skip_locked=not wait)))


def _batch(
    sessions: sessionmaker[Session], runtime: Runtime, page: list[Candidate], now: datetime, wait: bool
) -> tuple[int, tuple[datetime, int], list[Candidate], bool]:
    """One page in one transaction: without a SAVEPOINT per row unless a row fails (or failed before).

    A SAVEPOINT and its RELEASE are two of the dozen statements a row costs; rows almost
    never fail, so a page first runs without them, and is rolled back and redone with them
    when one does (see :func:`_act`). A page holding a row that failed on an earlier scan
    goes straight to the guarded run.
    """
    if not any(c[4] for c in page):
        try:
            return _act_on_batch(sessions, runtime, page, now, wait, guarded=False)
        except _RowFailed:
            pass
    return _act_on_batch(sessions, runtime, page, now, wait, guarded=True)


def _act_on_batch(
    sessions: sessionmaker[Session],
    runtime: Runtime,
    page: list[Candidate],
    now: datetime,
    wait: bool,
    guarded: bool,
) -> tuple[int, tuple[datetime, int], list[Candidate], bool]:
    """Claim and act on one page in one transaction.

    Returns how many rows acted, the cursor reached, the rows skipped because another
    transaction held their instance, and whether a timer fired (its clocks may be due).
    """
    acted, skipped, fired_timer = 0, [], False
    cursor = (page[-1][1], page[-1][0])
    with sessions.begin() as s:
        if is_postgres(s):
            locked = _lock_instances(s, {c[3] for c in page}, wait)
            skipped = [c for c in page if c[3] not in locked]
            page = [c for c in page if c[3] in locked]
        claimed = _claim(s, (c[0] for c in page), now)
        ctx = _Batch.load(s, [c[0] for c in page if c[0] in claimed])
        for position, (row_id, due, kind, instance_id, _) in enumerate(page):
            if row_id not in claimed:
                claimed |= _claim(s, [row_id], now) if row_id in ctx.released else set()
                if row_id not in claimed:
                    continue
            later = page[position + 1 :]
            if kind == "timer":
                siblings = [c[0] for c in later if c[3] == instance_id and c[0] in claimed]
                _unclaim(s, siblings)
                claimed -= set(siblings)
                ctx.released |= set(siblings)
            if _act(s, runtime, ctx.rows[row_id], now, ctx, guarded):
                acted += 1
                fired_timer |= kind == "timer"
            if kind == "timer" and _due_now_before(s, instance_id, now, (due, row_id), later):
                _unclaim(s, (c[0] for c in later if c[0] in claimed))
                cursor = (due, row_id)
                break
    return acted, cursor, skipped, fired_timer


def _due_now_before(
    s: Session, instance_id: int, now: datetime, cursor: tuple[datetime, int], later: list[Candidate]
) -> bool:
    """Did the timer just fired start a clock already due, before the end of this page?

    Only asked when the page ends later than the timer was due: the clocks it starts run from
    its due time and have higher ids, so they cannot come before a page that ends at that time.
    """
    if not later or later[-1][1] <= cursor[0]:
        return False
    return (
        s.scalar(
            select(DeadlineRow.id)
            .where(
                DeadlineRow.instance_id == instance_id,
                DeadlineRow.status == PENDING,
                DeadlineRow.due_at <= now,
                _after(cursor),
                _before((later[-1][1], later[-1][0])),
            )
            .limit(1)
        )
        is not None
    )


def _act(s: Session, runtime: Runtime, row: Any, now: datetime, ctx: _Batch, guarded: bool) -> bool:
    """Act on one claimed row; ``guarded``, in a SAVEPOINT, so a failure rolls back that row alone.

    Unguarded, a failure raises :class:`_RowFailed` and the whole page is redone guarded.
    """
    if not guarded:
        try:
            ACTIONS[row.kind](s, runtime, row, now, ctx)
        except Exception as exc:
            if unavailable(exc):
                raise
            raise _RowFailed(row.id) from exc
        return True
    try:
        with s.begin_nested():
            ACTIONS[row.kind](s, runtime, row, now, ctx)
        return True
    except Exception as exc:
        if unavailable(exc):
            raise
        log.exception("deadline row %s failed; it stays pending for the next scan", row.id)
        s.execute(
            update(DeadlineRow)
            .where(DeadlineRow.id == row.id)
            .values(
                status=PENDING,
                fired_at=None,
                attempts=DeadlineRow.attempts + 1,
                last_error=f"{type(exc).__name__}: {exc}"[:2000],
            )
        )
        ctx.touched.add(row.instance_id)
        return False


ROW_COLUMNS = (  # read as plain rows, not ORM objects: the session's identity map stays small
    DeadlineRow.id,
    DeadlineRow.instance_id,
    DeadlineRow.state,
    DeadlineRow.kind,
    DeadlineRow.due_at,
    DeadlineRow.trigger,
    DeadlineRow.escalate_to,
    DeadlineRow.days_before,
)


@dataclass
class _Batch:
    """What a batch's rows need, loaded in bulk: rows, instances, open step tasks, holders, offers.

    ``held`` keeps the bulk-loaded instances and units referenced: the session's identity map
    holds objects weakly, and ``Session.get`` finds them there without a query.
    """

    rows: dict[int, Any]
    open_tasks: dict[tuple[int, str], list[Task]]
    held: list[Any]
    released: set[int] = field(default_factory=set)
    touched: set[int] = field(default_factory=set)
    holders: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    offers: dict[tuple[int, str], tasks.Offer] = field(default_factory=dict)

    @classmethod
    def load(cls, s: Session, row_ids: list[int]) -> _Batch:
        rows = {r.id: r for r in s.execute(select(*ROW_COLUMNS).where(DeadlineRow.id.in_(row_ids)))}
        instance_ids = {r.instance_id for r in rows.values()}
        held: list[Any] = list(s.scalars(select(Instance).where(Instance.id.in_(instance_ids))))
        open_tasks: dict[tuple[int, str], list[Task]] = {}
        stepped = {r.instance_id for r in rows.values() if r.kind != "timer"}
        if stepped:
            found = s.scalars(
                select(Task)
                .where(Task.instance_id.in_(stepped), Task.status == tasks.OPEN, Task.kind == "step")
                .order_by(Task.id)
            )
            for task in found:
                open_tasks.setdefault((task.instance_id, task.state), []).append(task)
        units = {t.org_unit_id for ts in open_tasks.values() for t in ts}
        if units:
            held += s.scalars(select(OrgUnit).where(OrgUnit.id.in_(units)))
        return cls(rows, open_tasks, held)

    def step_tasks(self, s: Session, row: Any) -> list[Task]:
        """The step's open tasks: from the bulk load, unless an earlier row of the batch changed them."""
        if row.instance_id not in self.touched:
            return self.open_tasks.get((row.instance_id, row.state), [])
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

    def recipients(self, s: Session, open_tasks: list[Task], now: datetime) -> list[int]:
        """The assignee of each claimed task; every holder (and stand-in) of each unclaimed one."""
        users: list[int] = []
        for task in open_tasks:
            if task.assignee_id:
                users.append(task.assignee_id)
                continue
            key = (task.role, task.org_unit_id)
            if key not in self.holders:
                self.holders[key] = holders(s, task.role, s.get(OrgUnit, task.org_unit_id), now)
            users += self.holders[key]
        return list(dict.fromkeys(users))

    def escalation_offer(self, s: Session, runtime: Runtime, inst: Instance, role_code: str) -> tasks.Offer:
        """The role at its unit above the instance: its level's ancestor, or that unit's department."""
        key = (inst.org_unit_id, role_code)
        if key not in self.offers:
            role = runtime.registry.roles[role_code]
            anchor = ancestor_at(s, inst.org_unit, role.level)
            unit = department_under(s, anchor, role.dept) if role.dept is not None else anchor
            self.offers[key] = tasks.Offer(role.code, unit)
        return self.offers[key]


def _notify(
    s: Session, row: Any, inst: Instance, users: list[int], kind: str, subject: str, now: datetime
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


def _record(s: Session, row: Any, inst: Instance, action: str, now: datetime, **detail) -> None:
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


def _remind(s: Session, runtime: Runtime, row: Any, now: datetime, ctx: _Batch) -> None:
    """提醒: tell whoever holds the step's work that it falls due in ``days_before`` days."""
    inst = s.get(Instance, row.instance_id)
    open_tasks = ctx.step_tasks(s, row)
    users = ctx.recipients(s, open_tasks, now)
    step_due = min((t.due_at for t in open_tasks if t.due_at is not None), default=None)
    when = f", 到期 {local(step_due):%Y-%m-%d %H:%M}" if step_due else ""
    _notify(s, row, inst, users, "remind", f"办理提醒: {inst.title} (还剩{row.days_before}天{when})", now)
    _record(s, row, inst, "remind", now, days_before=row.days_before, notified=users)


def _breach(s: Session, runtime: Runtime, row: Any, now: datetime, ctx: _Batch) -> None:
    """超期: record it, tell the step's holders, and open a 督办 task for the escalation role."""
    inst = s.get(Instance, row.instance_id)
    users = ctx.recipients(s, ctx.step_tasks(s, row), now)
    _notify(s, row, inst, users, "overdue", f"已超期: {inst.title}", now)
    supervise = None
    if row.escalate_to is not None:
        offer = ctx.escalation_offer(s, runtime, inst, row.escalate_to)
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


def _timer(s: Session, runtime: Runtime, row: Any, now: datetime, ctx: _Batch) -> None:
    """The period is over (公示期满): the SYSTEM fires the trigger as of the due time."""
    ctx.touched.add(row.instance_id)
    runtime.fire(
        s, row.instance_id, row.trigger, Actor.system(), now=row.due_at, idempotency_key=f"deadline:{row.id}"
    )


ACTIONS: dict[str, Callable[[Session, Runtime, Any, datetime, _Batch], None]] = {
    "remind": _remind,
    "breach": _breach,
    "timer": _timer,
}


class Scan:
    """The scheduled scan: :func:`run_due` as of ``clock()``, backing off while the database is unavailable.

    After a failed scan the next try comes ``first_retry`` seconds later, then twice that,
    and so on up to ``max_retry`` seconds; each failure logs one warning saying when the
    next try is. The first scan that succeeds resets the delay and catches up on every row
    that fell due meanwhile (the rows are the state: nothing is lost).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        runtime: Runtime,
        clock: Callable[[], datetime],
        first_retry: float,
        max_retry: float,
        batch: int = BATCH,
    ) -> None:
        self.sessions, self.runtime, self.clock, self.batch = sessions, runtime, clock, batch
        self.first_retry, self.max_retry = first_retry, max_retry
        self.failures = 0
        self.retry_in: float | None = None
        self.succeeded = 0
        self.acted = 0

    def __call__(self) -> int | None:
        now = self.clock()
        try:
            acted = run_due(self.sessions, self.runtime, now, batch=self.batch)
        except Exception as exc:
            if not unavailable(exc):
                raise
            self.failures += 1
            self.retry_in = min(self.first_retry * 2 ** (self.failures - 1), self.max_retry)
            log.warning(
                "scan at %s failed, database unavailable (%s: %s); failure %d, next try in %.1f s",
                now.isoformat(),
                type(exc).__name__,
                str(exc).strip().splitlines()[0] if str(exc).strip() else "",
                self.failures,
                self.retry_in,
                extra={"retry_seconds": self.retry_in, "failures": self.failures},
            )
            return None
        if self.failures:
            log.warning("database available again after %d failed scan(s)", self.failures)
        self.failures, self.retry_in = 0, None
        self.succeeded += 1
        self.acted += acted
        log.info("scan at %s: acted on %d due deadline row(s)", now.isoformat(), acted)
        return acted


def build_scheduler(
    sessions: sessionmaker[Session],
    runtime: Runtime,
    interval_seconds: float = 30,
    *,
    clock: Callable[[], datetime] = utcnow,
    first_retry_seconds: float = 1,
    max_retry_seconds: float | None = None,
    batch: int = BATCH,
) -> BlockingScheduler:
    """An APScheduler ``BlockingScheduler`` that scans every ``interval_seconds``, first at start.

    APScheduler keeps wall-clock time; each scan acts as of ``clock()`` (a frozen time in tests).

    One worker thread, ``max_instances=1`` and ``coalesce=True``: scans never overlap, and
    scans missed while one ran long collapse into one. The job store is in memory: the
    deadline rows, not APScheduler, are the durable state. After a scan that found the
    database unavailable, a listener moves the job's ``next_run_time`` to the backoff delay
    (``first_retry_seconds`` doubling up to ``max_retry_seconds``, by default the interval);
    the interval trigger takes over again after it. ``batch``: due rows per transaction.
    """
    scheduler = BlockingScheduler(
        jobstores={"default": MemoryJobStore()}, executors={"default": ThreadPoolExecutor(1)}, timezone=UTC
    )
    scan = Scan(
        sessions,
        runtime,
        clock,
        first_retry_seconds,
        interval_seconds if max_retry_seconds is None else max_retry_seconds,
        batch,
    )

    def backoff(event: JobExecutionEvent) -> None:
        if event.job_id == JOB_ID and scan.retry_in is not None:
            scheduler.modify_job(JOB_ID, next_run_time=utcnow() + timedelta(seconds=scan.retry_in))

    scheduler.add_listener(backoff, EVENT_JOB_EXECUTED)
    scheduler.add_job(
        scan,
        IntervalTrigger(seconds=interval_seconds, timezone=UTC),
        id=JOB_ID,
        name="scan due deadlines",
        next_run_time=utcnow(),
        coalesce=True,
        max_instances=1,
        misfire_grace_time=None,
    )
    return scheduler

