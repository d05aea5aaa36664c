"""Deadline arithmetic (时限计算) under China's statutory calendar.

- "N个月内" is calendar months, clamped to the month's end: 31 Jan + 3 months = 30 Apr.
- "N天内" is calendar days.
- "N个工作日" counts working days: Monday–Friday, minus statutory holidays, plus the
  make-up working days (调休) of the State Council's schedule, kept in ``calendar_day``.
  A deadline that needs a year whose schedule is not loaded raises :class:`CalendarMissing`
  rather than guessing.

A deadline falls due at the end of its last day, 23:59:59 Asia/Shanghai, stored in UTC.
A paused clock (挂起, 补正) keeps the time it had left; on resuming it falls due that much
later, so a deadline paused for N seconds moves by N seconds.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import holidays
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from engine.clock import SHANGHAI, UTC
from engine.definitions import Deadline
from engine.errors import NotPossible
from engine.store.models import CalendarDay, CalendarYear

END_OF_DAY = time(23, 59, 59)

PUBLISHED_YEARS = frozenset(range(2006, 2027))
"""Years whose 调休 schedule the State Council has published (国务院办公厅关于N年部分节假日安排的通知)
and the ``holidays`` package carries: 2006 to 2026, the last published in November 2025.
Each is checked day by day against ``chinese_calendar`` in the tests (the two disagree on
2005-12-31, so earlier years are left out: no deadline of ours reaches back that far).

The package computes the lunar holidays of any year but knows the make-up working days
only of published years, so a later year is refused until it is added here, after the
package is upgraded and the new year is cross-checked. Until then an operator can load a
freshly published year by hand with ``load_year(session, year, schedule=...)``.
"""


class CalendarMissing(NotPossible):
    """The working-day calendar of a year is not loaded (the State Council has not published it)."""

    code = "calendar_missing"


def add_months(day: date, months: int) -> date:
    """Calendar-month arithmetic, clamped to the last day of the target month."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def end_of_day(day: date) -> datetime:
    """23:59:59 Asia/Shanghai on ``day``, as an aware UTC datetime."""
    return datetime.combine(day, END_OF_DAY, tzinfo=SHANGHAI).astimezone(UTC)


def end_of_month(year: int, month: int) -> datetime:
    """A month-end checkpoint ("4月底"): the month's last day at 23:59:59 Asia/Shanghai."""
    return end_of_day(date(year, month, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class WorkCalendar:
    """Statutory working days: weekdays, minus holidays, plus 调休 working weekends."""

    exceptions: dict[date, bool]
    years: frozenset[int]

    @classmethod
    def load(cls, session: Session) -> WorkCalendar:
        days = {d.day: d.is_working for d in session.scalars(select(CalendarDay))}
        years = frozenset(session.scalars(select(CalendarYear.year)))
        return cls(days, years)

    def is_working(self, day: date) -> bool:
        if day.year not in self.years:
            raise CalendarMissing(
                f"no published holiday schedule for {day.year}: load it before counting working days"
            )
        return self.exceptions.get(day, day.weekday() < 5)

    def add_working_days(self, day: date, n: int) -> date:
        """The n-th working day after ``day`` (``day`` itself does not count)."""
        while n > 0:
            day += timedelta(days=1)
            if self.is_working(day):
                n -= 1
        return day

    def working_days_between(self, start: date, end: date) -> Iterable[date]:
        day = start
        while day < end:
            day += timedelta(days=1)
            if self.is_working(day):
                yield day


def due_at(
    deadline: Deadline,
    start: datetime,
    calendar_: WorkCalendar | None = None,
    data: Mapping[str, Any] | None = None,
) -> datetime:
    """When ``deadline``, started at ``start``, falls due (end of its last day, Asia/Shanghai)."""
    start_day = start.astimezone(SHANGHAI).date()
    if deadline.months:
        return end_of_day(add_months(start_day, deadline.months))
    if deadline.days:
        return end_of_day(start_day + timedelta(days=deadline.days))
    if deadline.annual is not None:
        month, day = deadline.annual
        this_year = date(start_day.year, month, day)
        return end_of_day(this_year if this_year >= start_day else date(start_day.year + 1, month, day))
    if deadline.field is not None:
        value = (data or {}).get(deadline.field)
        if not value and deadline.optional:
            return None
        if not value:
            raise NotPossible(f"the deadline date '{deadline.field}' has not been entered")
        return end_of_day(date.fromisoformat(str(value)))
    if calendar_ is None:
        raise CalendarMissing("a working-day deadline needs the working-day calendar")
    return end_of_day(calendar_.add_working_days(start_day, deadline.working_days))


_SUBSTITUTED = re.compile(r"(\d{2})/(\d{2})/(\d{4})")


def published_schedule(year: int) -> dict[date, tuple[bool, str]]:
    """The State Council schedule of ``year`` from the ``holidays`` package: holidays and 调休 days.

    The package lists each extra day off as "Day off (substituted from MM/DD/YYYY)"; the
    date it names is the weekend day that becomes a working day (调休上班). A make-up day can
    fall in the year before its holiday (2006-12-30 and 31 were worked for 元旦 2007), so the
    next year's days off are read too. Years outside :data:`PUBLISHED_YEARS` are refused.
    """
    if year not in PUBLISHED_YEARS:
        raise CalendarMissing(
            f"the State Council holiday schedule for {year} is not published (or not yet known here): "
            "working days in it cannot be counted"
        )
    schedule: dict[date, tuple[bool, str]] = {}
    for day, name in holidays.China(years=(year, year + 1), language="en_US").items():
        if day.year == year:
            schedule[day] = (False, name)
        for month, dom, yr in _SUBSTITUTED.findall(name):
            makeup = date(int(yr), int(month), int(dom))
            if makeup.year == year:
                schedule[makeup] = (True, f"调休上班 (make-up working day for {day.isoformat()})")
    return schedule


def load_year(
    session: Session,
    year: int,
    schedule: dict[date, tuple[bool, str]] | None = None,
    source: str = "holidays package",
) -> int:
    """Store ``year``'s schedule in ``calendar_day`` (replacing it); returns the days stored.

    When the State Council publishes a year the package does not know yet, pass its
    ``schedule`` explicitly; until a year is loaded, working-day deadlines in it refuse.
    """
    schedule = published_schedule(year) if schedule is None else schedule
    if not schedule:
        raise CalendarMissing(f"no holiday schedule is known for {year}")
    session.execute(
        delete(CalendarDay).where(CalendarDay.day >= date(year, 1, 1), CalendarDay.day <= date(year, 12, 31))
    )
    session.execute(delete(CalendarYear).where(CalendarYear.year == year))
    session.add_all(CalendarDay(day=d, is_working=w, name=n[:64]) for d, (w, n) in sorted(schedule.items()))
    session.add(CalendarYear(year=year, source=source))
    session.flush()
    return len(schedule)


def remaining(due: datetime, at: datetime) -> int:
    """Whole seconds a clock due at ``due`` has left at ``at`` (negative once it is past)."""
    return int((due - at).total_seconds())


def resumed_due(remaining_seconds: int, at: datetime) -> datetime:
    """When a clock resumed at ``at`` with ``remaining_seconds`` left falls due."""
    return at + timedelta(seconds=remaining_seconds)
