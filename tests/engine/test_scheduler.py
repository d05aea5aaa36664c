"""The scheduler: reminders, breaches and timers act once each, in due order, with a frozen clock.

The sample grant enters ``notice`` (10 calendar days, then the SYSTEM fires ``notice_ended``)
and then ``township_review`` (5 working days, reminders 2 and 1 days before, escalated to
the county reviewer on breach). Submitted on 6 May 2025 (Shanghai), its notice ends at the
end of 16 May; the review falls due at the end of 23 May, with reminders at the ends of
21 and 22 May.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from engine.deadlines import load_year
from engine.runtime import Runtime
from engine.scheduler import build_scheduler, run_due
from engine.scope import Actor, load_actor
from engine.store.db import make_engine, session_factory
from engine.store.models import AuditEvent, DeadlineRow, Instance, Notification, Task
from engine.timeliness import per_step, per_unit, timeliness
from tests.conftest import T0
from tests.engine.sample import build_world, grant_form, make_runtime

ROOT = Path(__file__).resolve().parents[2]
NOTICE_DUE = datetime(2025, 5, 16, 15, 59, 59, tzinfo=UTC)
REMIND_2 = datetime(2025, 5, 21, 15, 59, 59, tzinfo=UTC)
REMIND_1 = datetime(2025, 5, 22, 15, 59, 59, tzinfo=UTC)
REVIEW_DUE = datetime(2025, 5, 23, 15, 59, 59, tzinfo=UTC)
SECOND = timedelta(seconds=1)
STALL_INSTANCE = "SHUANGTI_TEST_STALL_INSTANCE"
STALL_MARKER = "SHUANGTI_TEST_STALL_MARKER"


def submit(sessions, runtime, world, now=T0, who="applicant_a1", village="A1v") -> int:
    """Start a grant and submit it into its village notice at ``now``."""
    with sessions() as s:
        applicant = load_actor(s, world.u[who].id, now)
    with sessions.begin() as s:
        iid = runtime.start(
            s, "grant", applicant, org_unit_id=world.units[village].id, form=grant_form(), now=now
        ).id
    with sessions.begin() as s:
        runtime.fire(s, iid, "submit", applicant, now=now)
    return iid


def events(sessions, iid=None, action=None) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.instance_id.is_not(None)).order_by(AuditEvent.id)
    if iid is not None:
        query = query.where(AuditEvent.instance_id == iid)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    with sessions() as s:
        return list(s.scalars(query))


def deadline_rows(sessions, iid=None) -> list[DeadlineRow]:
    query = select(DeadlineRow).order_by(DeadlineRow.due_at, DeadlineRow.id)
    if iid is not None:
        query = query.where(DeadlineRow.instance_id == iid)
    with sessions() as s:
        return list(s.scalars(query))


def notes(sessions, kind) -> Counter:
    with sessions() as s:
        rows = s.scalars(select(Notification).where(Notification.kind == kind)).all()
        return Counter(n.user_id for n in rows)


def user_ids(world, *names) -> set[int]:
    return {world.u[n].id for n in names}


def state_of(sessions, iid) -> str:
    with sessions() as s:
        return s.get(Instance, iid).state


def from_deadline(event: AuditEvent) -> int:
    """The deadline row an event came from: in its detail, or in the timer's idempotency key."""
    if event.idempotency_key and event.idempotency_key.startswith("deadline:"):
        return int(event.idempotency_key.split(":")[1])
    return event.detail["deadline_id"]


def test_a_notice_period_ends_itself(sessions, runtime, world):
    iid = submit(sessions, runtime, world)
    [timer] = deadline_rows(sessions, iid)
    assert (timer.kind, timer.due_at, timer.trigger) == ("timer", NOTICE_DUE, "notice_ended")

    assert run_due(sessions, runtime, NOTICE_DUE - SECOND) == 0
    assert state_of(sessions, iid) == "notice"

    scanned_at = NOTICE_DUE + timedelta(minutes=1)
    assert run_due(sessions, runtime, scanned_at) == 1
    assert state_of(sessions, iid) == "township_review"
    last = events(sessions, iid)[-1]
    assert (last.action, last.trigger, last.from_state, last.to_state) == (
        "transition",
        "notice_ended",
        "notice",
        "township_review",
    )
    assert (last.actor_id, last.actor_name, last.role) == (None, "SYSTEM", "SYSTEM")
    assert last.at == NOTICE_DUE
    assert last.idempotency_key == f"deadline:{timer.id}"
    [fired] = [r for r in deadline_rows(sessions, iid) if r.id == timer.id]
    assert (fired.status, fired.fired_at) == ("fired", scanned_at)
    with sessions() as s:
        review = s.scalars(select(Task).where(Task.instance_id == iid, Task.status == "open")).one()
        assert (review.state, review.org_unit_id, review.due_at) == (
            "township_review",
            world.units["A1"].id,
            REVIEW_DUE,
        )


def test_reminders_fire_at_each_offset_exactly_once(sessions, runtime, world):
    iid = submit(sessions, runtime, world)
    run_due(sessions, runtime, NOTICE_DUE)
    reminders = [r for r in deadline_rows(sessions, iid) if r.kind == "remind"]
    assert [(r.due_at, r.days_before) for r in reminders] == [(REMIND_2, 2), (REMIND_1, 1)]

    for n, row in enumerate(reminders, start=1):
        assert run_due(sessions, runtime, row.due_at - SECOND) == 0
        assert run_due(sessions, runtime, row.due_at) == 1
        assert run_due(sessions, runtime, row.due_at) == 0
        assert len(events(sessions, iid, "remind")) == n

    assert [e.detail["days_before"] for e in events(sessions, iid, "remind")] == [2, 1]
    townships = user_ids(world, "town_a1", "town_a1_b")
    assert notes(sessions, "remind") == dict.fromkeys(townships, 2)


def test_a_reminder_goes_only_to_the_assignee_of_a_claimed_task(sessions, runtime, world):
    iid = submit(sessions, runtime, world)
    run_due(sessions, runtime, NOTICE_DUE)
    with sessions.begin() as s:
        s.execute(update(Task).where(Task.instance_id == iid).values(assignee_id=world.u["town_a1_b"].id))
    assert run_due(sessions, runtime, REMIND_2) == 1
    assert notes(sessions, "remind") == {world.u["town_a1_b"].id: 1}
    assert events(sessions, iid, "remind")[0].detail["notified"] == [world.u["town_a1_b"].id]


def test_a_breach_opens_exactly_one_supervise_task(sessions, runtime, world):
    iid = submit(sessions, runtime, world)
    assert run_due(sessions, runtime, REVIEW_DUE) == 4
    for later in (REVIEW_DUE, REVIEW_DUE + timedelta(days=1), REVIEW_DUE + timedelta(days=30)):
        assert run_due(sessions, runtime, later) == 0

    [overdue] = events(sessions, iid, "overdue")
    with sessions() as s:
        supervise = s.scalars(select(Task).where(Task.instance_id == iid, Task.kind == "supervise")).all()
        assert len(supervise) == 1
        task = supervise[0]
        assert (task.role, task.org_unit_id, task.state, task.status) == (
            "county_reviewer",
            world.units["A-agri"].id,
            "township_review",
            "open",
        )
        assigned = s.scalars(
            select(Notification.user_id).where(Notification.dedupe_key.startswith(f"assigned:{task.id}:"))
        ).all()
    assert assigned == [world.u["county_a"].id]
    assert overdue.detail["supervise_task_id"] == task.id
    assert overdue.detail["escalated_to"] == "county_reviewer"
    assert (overdue.actor_name, overdue.role, overdue.from_state) == ("SYSTEM", "SYSTEM", "township_review")
    assert notes(sessions, "overdue") == dict.fromkeys(user_ids(world, "town_a1", "town_a1_b"), 1)


def test_leaving_the_step_in_time_cancels_its_reminders_and_breach(sessions, runtime, world, actor):
    iid = submit(sessions, runtime, world)
    run_due(sessions, runtime, NOTICE_DUE)
    decided = REMIND_2 - timedelta(hours=1)
    with sessions.begin() as s:
        runtime.fire(s, iid, "approve", actor("town_a1", decided), now=decided)
    assert run_due(sessions, runtime, REVIEW_DUE + timedelta(days=30)) == 0
    assert events(sessions, iid, "remind") == events(sessions, iid, "overdue") == []


def test_running_twice_at_the_same_time_does_nothing_the_second_time(sessions, runtime, world):
    for village, who in (("A1v", "applicant_a1"), ("A2v", "applicant_a2"), ("A1v", "applicant_a1")):
        submit(sessions, runtime, world, who=who, village=village)
    later = REVIEW_DUE + timedelta(days=1)
    assert run_due(sessions, runtime, later) == 12
    before = (len(events(sessions)), notes(sessions, "remind"), notes(sessions, "overdue"))
    assert run_due(sessions, runtime, later) == 0
    assert (len(events(sessions)), notes(sessions, "remind"), notes(sessions, "overdue")) == before


@pytest.mark.parametrize("batch", [1, 3, 100])
def test_a_scheduler_down_for_a_week_catches_up_once_each_in_due_order(sessions, runtime, world, batch):
    """Clocks started by the catch-up itself (the review after a notice) are caught up too."""
    first = submit(sessions, runtime, world)
    second = submit(sessions, runtime, world, now=T0 + timedelta(days=3), who="applicant_a2", village="A2v")
    back = datetime(2025, 6, 2, 1, 0, tzinfo=UTC)

    assert run_due(sessions, runtime, back, batch=batch) == 8
    rows = {r.id: r for r in deadline_rows(sessions)}
    assert {r.status for r in rows.values()} == {"fired"}
    acted = [from_deadline(e) for e in events(sessions) if e.action != "start" and e.trigger != "submit"]
    assert sorted(acted) == sorted(rows)
    assert [rows[i].due_at for i in acted] == sorted(rows[i].due_at for i in acted)
    assert [(rows[i].instance_id, rows[i].kind) for i in acted] == [
        (first, "timer"),
        (second, "timer"),
        (first, "remind"),
        (first, "remind"),
        (first, "breach"),
        (second, "remind"),
        (second, "remind"),
        (second, "breach"),
    ]
    assert run_due(sessions, runtime, back, batch=batch) == 0


def test_a_failing_row_rolls_back_alone_and_is_retried(sessions, runtime, world):
    """The SYSTEM may not fire a villager's objection: that row fails; the next one still fires."""
    failing = submit(sessions, runtime, world)
    due_first = submit(
        sessions, runtime, world, now=T0 - timedelta(days=10), who="applicant_a2", village="A2v"
    )
    with sessions.begin() as s:
        bad = DeadlineRow(
            instance_id=failing,
            state="notice",
            kind="timer",
            trigger="object",
            due_at=T0 + timedelta(hours=1),
            created_at=T0,
        )
        s.add(bad)
    trail = [e.id for e in events(sessions, failing)]
    scan = datetime(2025, 5, 7, 0, 0, tzinfo=UTC)

    assert run_due(sessions, runtime, scan) == 1
    assert state_of(sessions, due_first) == "township_review"
    assert state_of(sessions, failing) == "notice"
    assert [e.id for e in events(sessions, failing)] == trail
    [row] = [r for r in deadline_rows(sessions, failing) if r.id == bad.id]
    assert (row.status, row.attempts, row.fired_at) == ("pending", 1, None)
    assert "the system may not do this" in row.last_error

    assert run_due(sessions, runtime, scan) == 0
    [row] = [r for r in deadline_rows(sessions, failing) if r.id == bad.id]
    assert (row.status, row.attempts) == ("pending", 2)


def test_paused_rows_and_suspended_instances_are_left_alone(sessions, runtime, world):
    paused = submit(sessions, runtime, world)
    suspended = submit(sessions, runtime, world, who="applicant_a2", village="A2v")
    with sessions.begin() as s:
        s.execute(update(DeadlineRow).where(DeadlineRow.instance_id == paused).values(status="paused"))
        s.get(Instance, suspended).status = "suspended"
    assert run_due(sessions, runtime, REVIEW_DUE) == 0
    assert state_of(sessions, paused) == state_of(sessions, suspended) == "notice"
    assert [r.status for r in deadline_rows(sessions)] == ["paused", "pending"]


def test_the_apscheduler_job_scans_with_the_given_clock(sessions, runtime, world):
    iid = submit(sessions, runtime, world)
    scheduler = build_scheduler(sessions, runtime, interval_seconds=30, clock=lambda: NOTICE_DUE)
    [job] = scheduler.get_jobs()
    assert (job.coalesce, job.max_instances, job.trigger.interval) == (True, 1, timedelta(seconds=30))
    assert abs(job.next_run_time - datetime.now(UTC)) < timedelta(minutes=1), "first scan at start"
    assert job.func() == 1
    assert state_of(sessions, iid) == "township_review"
    assert job.func() == 0


# ---- PostgreSQL: several OS processes, and a process killed mid-scan -------------------------------


class StallingRuntime(Runtime):
    """Hangs inside the transaction of one timer's fire, after the transition is applied."""

    def fire(self, session, instance_id, trigger, actor, **kw):
        result = super().fire(session, instance_id, trigger, actor, **kw)
        if actor.is_system and instance_id == int(os.environ[STALL_INSTANCE]):
            Path(os.environ[STALL_MARKER]).touch()
            signal.pause()
        return result


def stalling_runtime() -> Runtime:
    return StallingRuntime(make_runtime().registry)


@pytest.fixture
def pg_sessions(pg_url):
    engine = make_engine(pg_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def pg_world(pg_sessions):
    with pg_sessions.begin() as s:
        for year in (2025, 2026):
            load_year(s, year)
        return build_world(s)


def scheduler_process(pg_url, now, runtime="tests.engine.sample:make_runtime", env=None, batch=None):
    command = [sys.executable, "-m", "web.cli", "--db", pg_url, "scheduler", "--once"]
    command += ["--now", now.isoformat(), "--runtime", runtime]
    command += ["--batch", str(batch)] if batch else []
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def acted_count(process) -> int:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return int(out.split("acted on ")[1].split()[0])


def wait_until_stalled(process, marker) -> None:
    """Wait (up to two minutes) for the process to reach its stall point; fail if it exits first."""
    for _ in range(1200):
        if marker.exists():
            return
        try:
            process.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"the scheduler exited before it stalled: {process.communicate()[1]}")
    pytest.fail("the scheduler never reached the row it stalls on")


def assert_each_once(sessions, iids):
    per_instance = Counter((e.instance_id, e.action, e.trigger) for e in events(sessions))
    for iid in iids:
        assert per_instance[(iid, "transition", "notice_ended")] == 1
        assert per_instance[(iid, "remind", None)] == 2
        assert per_instance[(iid, "overdue", None)] == 1
    with sessions() as s:
        supervise = Counter(s.scalars(select(Task.instance_id).where(Task.kind == "supervise")))
    assert supervise == dict.fromkeys(iids, 1)
    assert {r.status for r in deadline_rows(sessions)} == {"fired"}


@pytest.mark.postgres_only
def test_two_scheduler_processes_act_on_each_row_once(pg_url, pg_sessions, pg_world):
    runtime = make_runtime()
    villages = [("A1v", "applicant_a1"), ("A2v", "applicant_a2")]
    iids = [submit(pg_sessions, runtime, pg_world, who=w, village=v) for _ in range(6) for v, w in villages]
    back = datetime(2025, 6, 2, 1, 0, tzinfo=UTC)

    processes = [scheduler_process(pg_url, back) for _ in range(2)]
    counts = [acted_count(p) for p in processes]

    assert sum(counts) == 4 * len(iids)
    assert_each_once(pg_sessions, iids)
    assert acted_count(scheduler_process(pg_url, back)) == 0


BACK = datetime(2025, 6, 2, 1, 0, tzinfo=UTC)
"""The scan time of the kill tests: every notice period and the clocks it starts are due."""


def kill_while_firing_the_third_timer(pg_url, pg_sessions, pg_world, tmp_path, batch=None) -> list[int]:
    """Four instances in their notice; a scheduler process is SIGKILLed inside the third timer's fire."""
    runtime = make_runtime()
    iids = [submit(pg_sessions, runtime, pg_world) for _ in range(4)]
    marker = tmp_path / "stalled"
    env = {STALL_INSTANCE: str(iids[2]), STALL_MARKER: str(marker)}
    stalled = scheduler_process(pg_url, BACK, "tests.engine.test_scheduler:stalling_runtime", env, batch=batch)
    try:
        wait_until_stalled(stalled, marker)
    finally:
        stalled.send_signal(signal.SIGKILL)
        stalled.communicate()
    return iids


@pytest.mark.postgres_only
def test_a_scheduler_killed_mid_scan_loses_nothing_and_doubles_nothing(
    pg_url, pg_sessions, pg_world, tmp_path
):
    iids = kill_while_firing_the_third_timer(pg_url, pg_sessions, pg_world, tmp_path, batch=1)

    # one row per transaction: what committed before the kill stays, the row in flight rolls back
    assert all(state_of(pg_sessions, i) != "notice" for i in iids[:2])
    assert state_of(pg_sessions, iids[2]) == "notice"
    done = sum(r.status == "fired" for r in deadline_rows(pg_sessions))
    assert done >= 2
    assert acted_count(scheduler_process(pg_url, BACK)) == 4 * len(iids) - done
    assert_each_once(pg_sessions, iids)


@pytest.mark.postgres_only
def test_a_scheduler_killed_mid_page_rolls_the_page_back_whole(pg_url, pg_sessions, pg_world, tmp_path):
    iids = kill_while_firing_the_third_timer(pg_url, pg_sessions, pg_world, tmp_path)

    # the four timers were one page, one transaction: the first two fires rolled back with it
    assert [state_of(pg_sessions, i) for i in iids] == ["notice"] * 4
    assert {r.status for r in deadline_rows(pg_sessions)} == {"pending"}
    assert acted_count(scheduler_process(pg_url, BACK)) == 4 * len(iids)
    assert_each_once(pg_sessions, iids)


# ---- the deadline dashboard ---------------------------------------------------------------------------


def figures(rows) -> dict:
    return {
        (t.unit_name, t.state): (t.open, t.due_soon, t.overdue, t.handled, t.handled_late, t.average_handling)
        for t in rows
    }


@pytest.fixture
def dashboard_world(sessions, runtime, world, actor):
    """Two grants in county A: one waits at A1's township review, A2's was approved in two days."""
    waiting = submit(sessions, runtime, world)
    approved = submit(sessions, runtime, world, who="applicant_a2", village="A2v")
    run_due(sessions, runtime, NOTICE_DUE)
    decided = NOTICE_DUE + timedelta(days=2)
    with sessions.begin() as s:
        runtime.fire(s, approved, "approve", actor("town_a2", decided), now=decided)
    return waiting, approved


def test_the_dashboard_counts_open_due_soon_overdue_and_handling_time(sessions, dashboard_world):
    everyone = Actor.system()
    with sessions() as s:
        day_before = timeliness(s, everyone, REVIEW_DUE - timedelta(days=1))
        after = timeliness(s, everyone, REVIEW_DUE + SECOND)
        three_days_out = timeliness(s, everyone, REVIEW_DUE - timedelta(days=3))
    assert figures(day_before) == {
        ("A", "draft"): (0, 0, 0, 2, 0, timedelta(0)),
        ("A", "township_review"): (1, 1, 0, 1, 0, timedelta(days=2)),
        ("A", "dept_review"): (2, 0, 0, 0, 0, None),
    }
    assert figures(after)[("A", "township_review")] == (1, 0, 1, 1, 0, timedelta(days=2))
    assert figures(three_days_out)[("A", "township_review")] == (1, 0, 0, 1, 0, timedelta(days=2))
    [county] = per_unit(day_before)
    assert (county.unit_name, county.state, county.open, county.handled) == ("A", None, 3, 3)
    assert county.average_handling == timedelta(days=2) / 3
    assert {(t.unit_name, t.state, t.open) for t in per_step(day_before)} == {
        (None, "draft", 0),
        (None, "township_review", 1),
        (None, "dept_review", 2),
    }


def test_the_dashboard_shows_only_what_the_viewer_sees(sessions, world, dashboard_world):
    now = REVIEW_DUE - timedelta(days=1)
    with sessions() as s:
        township = timeliness(s, load_actor(s, world.u["town_a1"].id, now), now)
        auditor = timeliness(s, load_actor(s, world.u["auditor_a"].id, now), now)
        other_county = timeliness(s, load_actor(s, world.u["town_b1"].id, now), now)
    assert figures(township) == {
        ("A", "draft"): (0, 0, 0, 1, 0, timedelta(0)),
        ("A", "township_review"): (1, 1, 0, 0, 0, None),
    }
    assert sum(t.open for t in auditor) == 3
    assert other_county == []


def test_a_suspended_instance_has_no_open_work_on_the_dashboard(sessions, dashboard_world):
    waiting, _ = dashboard_world
    with sessions.begin() as s:
        s.get(Instance, waiting).status = "suspended"
    with sessions() as s:
        rows = figures(timeliness(s, Actor.system(), REVIEW_DUE + SECOND))
    assert rows[("A", "township_review")] == (0, 0, 0, 1, 0, timedelta(days=2))
