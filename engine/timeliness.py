"""Timeliness figures for the 督办 dashboard (时效统计): per county and per step.

For each county (or, for work above the counties, the unit where it sits) and each step:
open tasks, those due within ``soon_days``, those overdue, and the tasks handled with their
average handling time (opened to done) and how many were handled late. Only step tasks
count (not 督办 tasks), and only those at units within the actor's sight. Open tasks of
instances that are not active (suspended: clocks paused) are not counted as open.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from engine.scope import Actor
from engine.store.db import is_postgres
from engine.store.models import ACTIVE, Instance, OrgUnit, Task
from engine.tasks import OPEN

DONE = "done"
COUNTY = "county"


@dataclass(frozen=True)
class Timeliness:
    """The figures of one unit and step; the unit or the step is None in a total over them."""

    unit_id: int | None
    unit_name: str | None
    workflow_key: str | None
    state: str | None
    open: int = 0
    due_soon: int = 0
    overdue: int = 0
    handled: int = 0
    handled_late: int = 0
    handling_seconds: float = 0.0

    @property
    def average_handling(self) -> timedelta | None:
        """Mean time from a task's opening to its completion, over the tasks handled."""
        return timedelta(seconds=self.handling_seconds / self.handled) if self.handled else None

    def __add__(self, other: Timeliness) -> Timeliness:
        """These figures plus ``other``'s, under this row's unit and step."""
        return replace(
            self,
            open=self.open + other.open,
            due_soon=self.due_soon + other.due_soon,
            overdue=self.overdue + other.overdue,
            handled=self.handled + other.handled,
            handled_late=self.handled_late + other.handled_late,
            handling_seconds=self.handling_seconds + other.handling_seconds,
        )


def _seconds_between(session: Session, start, end) -> ColumnElement[float]:
    if is_postgres(session):
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def timeliness(session: Session, actor: Actor, now: datetime, *, soon_days: int = 2) -> list[Timeliness]:
    """Figures per (county, workflow, step), ordered by unit path, workflow and step."""
    is_open = (Task.status == OPEN) & (Instance.status == ACTIVE)
    is_done = Task.status == DONE
    soon = now + timedelta(days=soon_days)

    def count(condition) -> ColumnElement[int]:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    rows = session.execute(
        select(
            Task.org_path,
            Task.org_unit_id,
            Instance.workflow_key,
            Task.state,
            count(is_open),
            count(is_open & (Task.due_at >= now) & (Task.due_at < soon)),
            count(is_open & (Task.due_at < now)),
            count(is_done),
            count(is_done & (Task.closed_at > Task.due_at)),
            func.coalesce(
                func.sum(case((is_done, _seconds_between(session, Task.created_at, Task.closed_at)))), 0
            ),
        )
        .join(Instance, Instance.id == Task.instance_id)
        .where(Task.kind == "step", Task.status.in_((OPEN, DONE)), actor.scope_filter(Task.org_path))
        .group_by(Task.org_path, Task.org_unit_id, Instance.workflow_key, Task.state)
    ).all()
    counties = session.scalars(select(OrgUnit).where(OrgUnit.kind == COUNTY)).all()
    figures: dict[tuple[str, str, str], Timeliness] = {}
    for path, unit_id, key, state, n_open, n_soon, n_over, n_done, n_late, seconds in rows:
        unit = next((c for c in counties if path.startswith(c.path)), None) or session.get(OrgUnit, unit_id)
        row = Timeliness(
            unit.id, unit.name, key, state, n_open, n_soon, n_over, n_done, n_late, float(seconds)
        )
        slot = (unit.path, key, state)
        figures[slot] = figures[slot] + row if slot in figures else row
    return [figures[slot] for slot in sorted(figures)]


def _total(rows: Iterable[Timeliness], key: Callable[[Timeliness], Hashable]) -> list[Timeliness]:
    totals: dict[Hashable, Timeliness] = {}
    for row in rows:
        k = key(row)
        totals[k] = totals[k] + row if k in totals else row
    return list(totals.values())


def per_unit(rows: Iterable[Timeliness]) -> list[Timeliness]:
    """One total per county over every step (``workflow_key`` and ``state`` are None)."""
    return [replace(t, workflow_key=None, state=None) for t in _total(rows, lambda t: t.unit_id)]


def per_step(rows: Iterable[Timeliness]) -> list[Timeliness]:
    """One total per workflow step over every county (``unit_id`` and ``unit_name`` are None)."""
    return [
        replace(t, unit_id=None, unit_name=None) for t in _total(rows, lambda t: (t.workflow_key, t.state))
    ]
