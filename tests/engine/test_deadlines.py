"""Deadline arithmetic (DOMAIN §11): calendar months, calendar days, month ends, working days."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import chinese_calendar
import pytest
from sqlalchemy import func, select

from engine.clock import SHANGHAI, UTC
from engine.deadlines import (
    PUBLISHED_YEARS,
    CalendarMissing,
    WorkCalendar,
    add_months,
    due_at,
    end_of_month,
    load_year,
    published_schedule,
    remaining,
    resumed_due,
)
from engine.definitions import Deadline
from engine.store.models import CalendarDay, CalendarYear


def calendar_of(*years: int) -> WorkCalendar:
    days = {d: w for y in years for d, (w, _) in published_schedule(y).items()}
    return WorkCalendar(days, frozenset(years))


def shanghai(y, m, d, hh=9, mm=0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SHANGHAI)


def due_day(moment: datetime) -> date:
    """The Shanghai day a deadline falls due, after checking it falls at 23:59:59 there."""
    local = moment.astimezone(SHANGHAI)
    assert (local.hour, local.minute, local.second) == (23, 59, 59)
    return local.date()


def days_of(year: int):
    day = date(year, 1, 1)
    while day.year == year:
        yield day
        day += timedelta(days=1)


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2025, 1, 31), 3, date(2025, 4, 30)),
        (date(2025, 1, 31), 1, date(2025, 2, 28)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2023, 2, 28), 12, date(2024, 2, 28)),
        (date(2025, 11, 30), 3, date(2026, 2, 28)),
        (date(2025, 10, 31), 4, date(2026, 2, 28)),
        (date(2025, 5, 15), 3, date(2025, 8, 15)),
        (date(2025, 3, 31), -1, date(2025, 2, 28)),
    ],
)
def test_calendar_months_clamp_to_the_month_end(start, months, expected):
    assert add_months(start, months) == expected


def test_a_months_deadline_falls_due_at_the_end_of_the_clamped_day():
    """GZ 一(三)1 style: "3个月内" from 31 January is the end of 30 April, not 90 days."""
    due = due_at(Deadline(months=3), shanghai(2025, 1, 31))
    assert due == datetime(2025, 4, 30, 15, 59, 59, tzinfo=UTC)
    assert date(2025, 1, 31) + timedelta(days=90) == date(2025, 5, 1)


def test_calendar_days_count_weekends_and_holidays():
    """ "30天内" from 15 September 2025 runs through 国庆 and ends on 15 October."""
    assert due_day(due_at(Deadline(days=30), shanghai(2025, 9, 15))) == date(2025, 10, 15)


def test_the_start_day_is_the_shanghai_day_not_the_utc_day():
    late_utc = datetime(2025, 6, 15, 17, 0, tzinfo=UTC)  # 16 June, 01:00 in Shanghai
    assert due_day(due_at(Deadline(days=10), late_utc)) == date(2025, 6, 26)


@pytest.mark.parametrize(
    ("year", "month", "utc"),
    [
        (2025, 4, datetime(2025, 4, 30, 15, 59, 59, tzinfo=UTC)),
        (2024, 2, datetime(2024, 2, 29, 15, 59, 59, tzinfo=UTC)),
        (2025, 2, datetime(2025, 2, 28, 15, 59, 59, tzinfo=UTC)),
        (2025, 12, datetime(2025, 12, 31, 15, 59, 59, tzinfo=UTC)),
    ],
)
def test_end_of_month_checkpoints_are_stored_in_utc(year, month, utc):
    """ "4月底" is the last day at 23:59:59 Asia/Shanghai, which is 15:59:59 UTC."""
    checkpoint = end_of_month(year, month)
    assert checkpoint == utc
    assert checkpoint.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # 国庆+中秋 2025: 1–8 October off; Sunday 28 September and Saturday 11 October worked.
        (shanghai(2025, 9, 26), date(2025, 10, 10)),
        (shanghai(2025, 9, 30), date(2025, 10, 14)),
        (shanghai(2025, 10, 1), date(2025, 10, 14)),
        # 春节 2026: 15–23 February off; Saturdays 14 and 28 February worked.
        (shanghai(2026, 2, 12), date(2026, 2, 26)),
        (shanghai(2026, 2, 24), date(2026, 3, 2)),
        # Across the new year: 元旦 2026 (1–3 January off, Sunday 4 January worked).
        (shanghai(2025, 12, 29), date(2026, 1, 6)),
    ],
)
def test_five_working_days_follow_holidays_and_make_up_days(start, expected):
    deadline = Deadline(working_days=5)
    assert due_day(due_at(deadline, start, calendar_of(2025, 2026))) == expected


def test_make_up_saturdays_of_the_2026_spring_festival_are_working_days():
    cal = calendar_of(2026)
    assert cal.is_working(date(2026, 2, 14)) and cal.is_working(date(2026, 2, 28))
    assert not any(cal.is_working(date(2026, 2, d)) for d in range(15, 24))
    assert list(cal.working_days_between(date(2026, 2, 13), date(2026, 2, 28))) == [
        date(2026, 2, 14),
        date(2026, 2, 24),
        date(2026, 2, 25),
        date(2026, 2, 26),
        date(2026, 2, 27),
        date(2026, 2, 28),
    ]


@pytest.mark.parametrize("year", sorted(PUBLISHED_YEARS))
def test_every_published_year_matches_chinese_calendar(year):
    cal = calendar_of(year)
    wrong = [d for d in days_of(year) if cal.is_working(d) != chinese_calendar.is_workday(d)]
    assert wrong == []


@pytest.mark.parametrize("year", [2025, 2026])
def test_stored_calendar_matches_chinese_calendar_day_by_day(sessions, year):
    with sessions.begin() as s:
        load_year(s, year)
    with sessions() as s:
        cal = WorkCalendar.load(s)
        stored = s.scalar(select(func.count()).select_from(CalendarDay))
    assert stored == len(published_schedule(year))
    assert [d for d in days_of(year) if cal.is_working(d) != chinese_calendar.is_workday(d)] == []


def test_reloading_a_year_replaces_it(sessions):
    with sessions.begin() as s:
        load_year(s, 2025)
        load_year(s, 2025)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(CalendarDay)) == len(published_schedule(2025))
        assert s.scalars(select(CalendarYear.year)).all() == [2025]


def test_an_unpublished_year_is_refused_not_guessed(sessions):
    """The package would compute 2027's lunar holidays, but not its 调休: refuse."""
    assert 2027 not in PUBLISHED_YEARS
    with pytest.raises(CalendarMissing, match="2027"):
        published_schedule(2027)
    with pytest.raises(CalendarMissing), sessions.begin() as s:
        load_year(s, 2027)
    with sessions() as s:
        assert s.scalars(select(CalendarYear.year)).all() == []


def test_a_working_day_deadline_needing_an_unloaded_year_refuses():
    only_2025 = calendar_of(2025)
    with pytest.raises(CalendarMissing, match="2026"):
        due_at(Deadline(working_days=5), shanghai(2025, 12, 29), only_2025)
    with pytest.raises(CalendarMissing):
        due_at(Deadline(working_days=5), shanghai(2025, 6, 2))


def test_a_year_published_after_the_package_can_be_loaded_by_hand(sessions):
    schedule = {date(2027, 1, 1): (False, "元旦"), date(2027, 1, 9): (True, "调休上班")}
    with sessions.begin() as s:
        load_year(s, 2027, schedule, source="国办发明电 (typed in)")
    with sessions() as s:
        cal = WorkCalendar.load(s)
    assert not cal.is_working(date(2027, 1, 1))
    assert cal.is_working(date(2027, 1, 9))
    assert due_day(due_at(Deadline(working_days=2), shanghai(2027, 1, 7), cal)) == date(2027, 1, 9)


def test_a_clock_paused_for_n_seconds_falls_due_n_seconds_later():
    due = datetime(2025, 6, 10, 15, 59, 59, tzinfo=UTC)
    paused_at = datetime(2025, 6, 3, 2, 0, tzinfo=UTC)
    left = remaining(due, paused_at)
    for pause in (timedelta(seconds=1), timedelta(hours=5), timedelta(days=12, seconds=7)):
        assert resumed_due(left, paused_at + pause) == due + pause


def test_a_clock_paused_after_its_due_time_stays_overdue_on_resume():
    due = datetime(2025, 6, 10, 15, 59, 59, tzinfo=UTC)
    late = due + timedelta(hours=1)
    assert remaining(due, late) == -3600
    assert resumed_due(remaining(due, late), late + timedelta(days=1)) == due + timedelta(days=1)
