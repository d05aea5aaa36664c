"""The domain calendar jobs: what each creates on a prepared database, and that a rerun adds nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from engine import directory
from engine.clock import SHANGHAI
from engine.scheduler import build_scheduler
from engine.store.models import AuditEvent, DeadlineRow, Instance, Notification, Task
from tests.workflows.test_delivery_filing_report import DELIVERY_START, FILING_START
from tests.workflows.test_project_library import ROUTES
from workflows import jobs, policy
from workflows.demo import DEMO_COUNTY, DEMO_VILLAGE, dept_code
from workflows.roles import COUNTY_APPROVER, VILLAGE_APPLICANT

KANGDING, KANGDING_VILLAGE = "513301", "51330101001"
APRIL = datetime(2025, 4, 1, tzinfo=UTC)
TO_LIBRARY = ROUTES["499万 is approved at county level"]


def shanghai(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


@pytest.fixture
def kangding(sessions, world):
    """A 康定市 农牧农村局 approver and a 新华村 applicant (the demo has users only in 泸定县)."""
    with sessions.begin() as s:
        for username, role, code in (
            ("kd_approver", COUNTY_APPROVER, dept_code(KANGDING, "agriculture")),
            ("kd_applicant", VILLAGE_APPLICANT, KANGDING_VILLAGE),
        ):
            user = directory.add_user(
                s, username=username, display_name=username, password_hash="x", now=APRIL
            )
            directory.grant(s, user, role, s.merge(world.units[code]), now=APRIL)
            world.users[username] = user
    return {name: world.users[name].id for name in ("kd_approver", "kd_applicant")}


def _counts(sessions) -> tuple[int, ...]:
    with sessions() as s:
        models = (Instance, Task, Notification, AuditEvent, DeadlineRow)
        return tuple(s.scalar(select(func.count()).select_from(m)) for m in models)


def run_twice(job, sessions, runtime, now) -> jobs.Outcome:
    """Run ``job``; a second run at the same moment must hand nothing and change nothing."""
    first = job(sessions, runtime, now)
    before = _counts(sessions)
    again = job(sessions, runtime, now)
    assert (again.period, again.done) == (first.period, {})
    assert _counts(sessions) == before
    return first


def _open_tasks(sessions, iid) -> list[tuple[str, str]]:
    with sessions() as s:
        rows = s.scalars(select(Task).where(Task.instance_id == iid, Task.status == "open")).all()
        return [(t.role, t.org_unit.code) for t in rows]


def _told(sessions, user_id, kind="job") -> list[str]:
    with sessions() as s:
        return list(
            s.scalars(
                select(Notification.subject).where(Notification.user_id == user_id, Notification.kind == kind)
            )
        )


def _instances(sessions, key) -> list[Instance]:
    with sessions() as s:
        return list(s.scalars(select(Instance).where(Instance.workflow_key == key).order_by(Instance.id)))


def test_library_sweep_sends_two_year_old_projects_to_the_county(drive, runtime, sessions, world):
    form, steps, _ = TO_LIBRARY
    old, _ = drive("project_library", DEMO_VILLAGE, "applicant", form, steps)
    recent, _ = drive(
        "project_library", DEMO_VILLAGE, "applicant", form, steps, start=shanghai(2026, 3, 2, 9)
    )
    outcome = run_twice(jobs.library_sweep, sessions, runtime, shanghai(2027, 8, 1, 2))
    assert outcome.period == "2027"
    assert outcome.done[DEMO_COUNTY] == [f"{old} 入库已满2年未实施"]
    assert outcome.done[KANGDING] == []
    with sessions() as s:
        assert (s.get(Instance, old).state, s.get(Instance, recent).state) == ("sweep_review", "in_library")
        due = s.scalars(
            select(DeadlineRow.due_at).where(
                DeadlineRow.instance_id == old,
                DeadlineRow.state == "sweep_review",
                DeadlineRow.kind == "breach",
            )
        ).one()
    assert _open_tasks(sessions, old) == [("county_approver", dept_code(DEMO_COUNTY, "agriculture"))]
    assert due.isoformat() == "2027-08-31T15:59:59+00:00"


@pytest.mark.parametrize(
    ("related", "entered", "today", "reason"),
    [
        (True, date(2025, 8, 31), date(2027, 8, 30), None),
        (True, date(2025, 8, 31), date(2027, 8, 31), "入库已满2年未实施"),
        (False, date(2027, 8, 1), date(2027, 8, 1), "与巩固衔接无关"),
    ],
)
def test_sweep_reason(related, entered, today, reason):
    data = {"related_to_consolidation": related}
    assert jobs.sweep_reason(data, entered, policy.load(2025), today) == reason


def test_filing_review_opening(drive, runtime, sessions, world, kangding):
    unit = dept_code(DEMO_COUNTY, "agriculture")
    filed, _ = drive(
        "plan_filing", unit, "county_approver", FILING_START, [("file", "county_approver", None)]
    )
    outcome = run_twice(jobs.filing_review_opening, sessions, runtime, shanghai(2025, 10, 1, 2))
    assert outcome.done == {DEMO_COUNTY: [f"{filed} under_review"], KANGDING: ["not filed: told"]}
    with sessions() as s:
        assert s.get(Instance, filed).state == "under_review"
    assert _open_tasks(sessions, filed) == [("third_party_expert", "513300")]
    assert _told(sessions, kangding["kd_approver"]) == ["康定市尚未报送2025年度项目实施计划备案"]
    assert _told(sessions, world.users["county_approver"].id) == []


def _delivery(drive, village, applicant, disbursed, on, start=APRIL):
    steps = [
        ("start_work", applicant, {"started_on": "2025-03-01"}),
        ("disburse", applicant, {"disbursed_total": disbursed, "disbursed_on": on}),
    ]
    form = {**DELIVERY_START, "allocated": "100"}
    return drive("project_delivery", village, applicant, form, steps, start=start)[0]


def test_spending_checkpoints_escalate_through_two_notices_and_a_letter(
    drive, runtime, sessions, world, kangding
):
    _delivery(drive, DEMO_VILLAGE, "applicant", "10", "2025-04-20")
    _delivery(drive, KANGDING_VILLAGE, "kd_applicant", "50", "2025-04-30")
    checkpoints = [
        (shanghai(2025, 5, 1, 2), "2025-04", {DEMO_COUNTY: ["提醒函"]}),
        (shanghai(2025, 7, 1, 2), "2025-06", {DEMO_COUNTY: ["约谈通知书"]}),
        (shanghai(2025, 8, 1, 2), "2025-07", {DEMO_COUNTY: ["督办函"], KANGDING: ["提醒函"]}),
    ]
    for now, period, expected in checkpoints:
        outcome = run_twice(jobs.spending_checkpoint, sessions, runtime, now)
        assert outcome.period == period
        assert {c: [d.split(" ", 1)[1] for d in done] for c, done in outcome.done.items() if done} == expected
    issued = _instances(sessions, "spending_supervision")
    assert sorted((i.data["checkpoint"], i.data["level"], i.data["spending_percent"]) for i in issued) == [
        (4, "提醒函", "10.00"),
        (6, "约谈通知书", "10.00"),
        (7, "提醒函", "50.00"),
        (7, "督办函", "10.00"),
    ]
    assert _open_tasks(sessions, issued[0].id) == [("county_approver", dept_code(DEMO_COUNTY, "agriculture"))]
    assert len(_told(sessions, world.users["county_finance"].id, kind="entered")) == 3


def test_last_checkpoint_in_january_is_last_december():
    p, milestone = jobs.last_checkpoint(shanghai(2026, 1, 1, 2))
    assert (p.year, milestone.month) == (2025, 12)
    assert jobs.last_checkpoint(shanghai(2025, 4, 30, 23, 59, 58))[1].month == 12
    assert jobs.last_checkpoint(shanghai(2025, 4, 30, 23, 59, 59))[1].month == 4


def test_monthly_dispatch_tells_each_county_and_inspects_the_worst(drive, runtime, sessions, world, kangding):
    form, steps, _ = TO_LIBRARY
    drive("project_library", DEMO_VILLAGE, "applicant", form, steps, start=APRIL)
    drive(
        "project_delivery",
        DEMO_VILLAGE,
        "applicant",
        DELIVERY_START,
        [("start_work", "applicant", {"started_on": "2025-04-01"})],
        start=APRIL,
    )
    _delivery(drive, KANGDING_VILLAGE, "kd_applicant", "50", "2025-05-01", start=shanghai(2025, 6, 20, 9))
    outcome = run_twice(jobs.data_quality_dispatch, sessions, runtime, shanghai(2025, 7, 5, 2))
    inspections = _instances(sessions, "site_inspection")
    assert outcome.period == "2025-07"
    assert outcome.done == {
        DEMO_COUNTY: ["3 problem(s)", f"{inspections[0].id} site_inspection"],
        KANGDING: ["1 problem(s)"],
    }
    assert [(i.state, i.org_unit_id, i.data["problem_count"]) for i in inspections] == [
        ("inspecting", world.units[dept_code(DEMO_COUNTY, "agriculture")].id, 3)
    ]
    assert _open_tasks(sessions, inspections[0].id) == [
        ("prefecture_bureau", dept_code("513300", "agriculture"))
    ]
    approver = world.users["county_approver"].id
    assert _told(sessions, approver) == ["泸定县2025-07项目库数据质量调度: 3个问题"]
    assert _told(sessions, approver, kind="entered") == ["实地检查: 泸定县2025-07项目库数据实地检查"]
    assert _told(sessions, kangding["kd_approver"]) == ["康定市2025-07项目库数据质量调度: 1个问题"]


def test_quarterly_reports_open_for_counties_without_one(drive, runtime, sessions, kangding):
    unit = dept_code(DEMO_COUNTY, "agriculture")
    drive("quarterly_report", unit, "county_approver", {"year": 2025, "quarter": "2"}, [])
    outcome = run_twice(jobs.quarterly_reports, sessions, runtime, shanghai(2025, 6, 20, 2))
    reports = _instances(sessions, "quarterly_report")
    assert outcome.period == "2025-Q2"
    assert outcome.done == {DEMO_COUNTY: [], KANGDING: [f"{reports[1].id} due 2025-07-10"]}
    assert reports[1].data == {"year": 2025, "quarter": "2", "due_on": "2025-07-10"}
    assert _open_tasks(sessions, reports[1].id) == [("county_approver", dept_code(KANGDING, "agriculture"))]


def test_schedule_dates_come_from_policy():
    start = shanghai(2025, 5, 6, 9)
    fires = {
        name: trigger.get_next_fire_time(None, start)
        for name, (_, trigger) in jobs.schedule(policy.load(2025)).items()
    }
    assert fires == {
        "library_sweep": shanghai(2025, 8, 1, 2),
        "filing_review_opening": shanghai(2025, 10, 1, 2),
        "spending_checkpoint": shanghai(2025, 7, 1, 2),
        "data_quality_dispatch": shanghai(2025, 6, 5, 2),
        "quarterly_reports": shanghai(2025, 6, 20, 2),
    }


def test_register_adds_every_job_beside_the_deadline_scan(runtime):
    process = build_scheduler(None, runtime)
    names = jobs.register(process, None, runtime)
    assert sorted(j.id for j in process.get_jobs()) == sorted(["run_due", "catch_up", *names])
    assert len(names) == 5


def test_last_due_of_each_job():
    schedule = jobs.schedule(policy.latest())
    now = shanghai(2027, 9, 15, 12)
    assert jobs.last_due(schedule["library_sweep"][1], now) == shanghai(2027, 8, 1, 2)
    assert jobs.last_due(schedule["data_quality_dispatch"][1], now) == shanghai(2027, 9, 5, 2)
    assert jobs.last_due(schedule["library_sweep"][1], shanghai(2027, 7, 31, 12)) == shanghai(2026, 8, 1, 2)


def test_a_sweep_missed_while_the_scheduler_was_down_is_caught_up_once(drive, runtime, sessions, world):
    form, steps, _ = TO_LIBRARY
    old, _ = drive("project_library", DEMO_VILLAGE, "applicant", form, steps)
    restarted = shanghai(2027, 8, 20, 9)
    first = jobs.catch_up(sessions, runtime, restarted)
    assert first["library_sweep"].period == "2027"
    assert first["library_sweep"].done[DEMO_COUNTY] == [f"{old} 入库已满2年未实施"]
    with sessions() as s:
        assert s.get(Instance, old).state == "sweep_review"
        before = _counts(sessions)
    again = jobs.catch_up(sessions, runtime, restarted + timedelta(hours=1))
    assert again["library_sweep"].done == {}
    assert _counts(sessions) == before
