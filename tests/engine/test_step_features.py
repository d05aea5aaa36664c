"""Step features: annual and entered deadlines, extensions (延期), advisory checks, entry notices,
and guards that read the instance's county."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from engine.deadlines import end_of_day
from engine.definitions import Deadline, Field, Guard, State, T, Workflow
from engine.errors import DefinitionError, GuardFailed, NotPossible
from engine.machine import Registry
from engine.runtime import Runtime
from engine.store.models import AuditEvent, DeadlineRow, Instance, Notification, Task
from tests.conftest import T0
from tests.engine.sample import ROLES

COUNTY_A_ONLY = Guard("county_a", "仅限A县", lambda c: [] if c.units.get("county") == "A" else ["不在A县"])
ADVICE = Guard("advice", "建议附照片", lambda c: [] if c.data.get("photo") else ["没有照片"])

FILING = Workflow(
    key="filing",
    version=1,
    title="备案",
    start_role="applicant",
    start_fields=(Field("name", "名称"),),
    states=(
        State("draft", "拟定", actor="applicant"),
        State(
            "review",
            "审查",
            actor="township_reviewer",
            checklist=(COUNTY_A_ONLY,),
            advisory=(ADVICE,),
            deadline=Deadline(annual=(10, 31), remind=(7,)),
            notify=("county_reviewer",),
        ),
        State("rectify", "整改", actor="applicant", deadline=Deadline(field="rectify_by")),
        State("accepted", "通过", final=True),
    ),
    transitions=(
        T("submit", "draft", "review"),
        T("accept", "review", "accepted", checked=True),
        T("list_issues", "review", "rectify", fields=(Field("rectify_by", "整改期限", kind="date"),)),
        T("extend", "review", "review", extends=Deadline(months=2), needs_comment=True, max_times=1),
        T("note", "review", "review", record=True, fields=(Field("memo", "备注"),)),
        T("refile", "rectify", "review"),
    ),
)


@pytest.fixture
def runtime():
    registry = Registry(ROLES)
    registry.register(FILING)
    return Runtime(registry)


def _start(runtime, sessions, actor, world, village="A1v", who="applicant_a1"):
    with sessions.begin() as s:
        iid = runtime.start(
            s, "filing", actor(who), org_unit_id=world.units[village].id, form={"name": "x"}, now=T0
        ).id
    with sessions.begin() as s:
        runtime.fire(s, iid, "submit", actor(who), now=T0)
    return iid


def _breach(s, iid):
    return s.scalars(
        select(DeadlineRow.due_at).where(
            DeadlineRow.instance_id == iid, DeadlineRow.kind == "breach", DeadlineRow.status == "pending"
        )
    ).one()


def test_annual_deadline_falls_on_the_next_october_31(runtime, sessions, actor, world):
    iid = _start(runtime, sessions, actor, world)
    with sessions() as s:
        assert _breach(s, iid) == end_of_day(datetime(2025, 10, 31).date())
        assert _breach(s, iid) == datetime(2025, 10, 31, 15, 59, 59, tzinfo=UTC)


def test_extension_moves_the_running_clock_from_its_due_time(runtime, sessions, actor, world):
    iid = _start(runtime, sessions, actor, world)
    with sessions() as s:
        task_due = s.scalars(select(Task.due_at).where(Task.instance_id == iid, Task.status == "open")).one()
    with sessions.begin() as s:
        result = runtime.fire(s, iid, "extend", actor("town_a1"), now=T0, comment="专家未到位")
    assert (result.to_state, result.advanced) == ("review", False)
    with sessions() as s:
        assert _breach(s, iid) == end_of_day(datetime(2025, 12, 31).date())
        assert s.scalars(select(Task.due_at).where(Task.instance_id == iid, Task.status == "open")).one() == (
            task_due + (_breach(s, iid) - task_due)
        )
        remind = s.scalars(
            select(DeadlineRow.due_at).where(DeadlineRow.instance_id == iid, DeadlineRow.kind == "remind")
        ).one()
        assert remind == _breach(s, iid) - timedelta(days=7)


def test_deadline_from_an_entered_date(runtime, sessions, actor, world):
    iid = _start(runtime, sessions, actor, world)
    with sessions.begin() as s:
        runtime.fire(s, iid, "list_issues", actor("town_a1"), now=T0, form={"rectify_by": "2025-06-15"})
    with sessions() as s:
        assert _breach(s, iid) == end_of_day(datetime(2025, 6, 15).date())
        assert s.get(Instance, iid).data["rectify_by"] == "2025-06-15"


def test_advisory_checks_show_but_do_not_block(runtime, sessions, actor, world):
    iid = _start(runtime, sessions, actor, world)
    with sessions() as s:
        items = runtime.checklist(s, s.get(Instance, iid), T0)
    assert [(c.name, c.enforced, bool(c.reasons)) for c in items] == [
        ("county_a", True, False),
        ("advice", False, True),
    ]
    with sessions.begin() as s:
        assert runtime.fire(s, iid, "accept", actor("town_a1"), now=T0).to_state == "accepted"


def test_guards_read_the_instance_county(runtime, sessions, actor, world):
    with sessions.begin() as s:
        from engine import directory

        user = directory.add_user(
            s, username="applicant_b1", display_name="b1", password="password-b1", now=T0
        )
        directory.grant(s, user, "applicant", s.get(type(world.units["B1v"]), world.units["B1v"].id), now=T0)
    iid = _start(
        runtime, sessions, actor_with(sessions, "applicant_b1"), world, village="B1v", who="applicant_b1"
    )
    with sessions.begin() as s, pytest.raises(GuardFailed, match="不在A县"):
        runtime.fire(s, iid, "accept", actor("town_b1"), now=T0)


def actor_with(sessions, username):
    from engine.scope import load_actor
    from engine.store.models import User

    def load(_name, now=T0):
        with sessions() as s:
            return load_actor(s, s.scalars(select(User.id).where(User.username == username)).one(), now)

    return load


def test_entering_a_step_notifies_its_notify_roles(runtime, sessions, actor, world):
    iid = _start(runtime, sessions, actor, world)
    with sessions() as s:
        told = s.scalars(
            select(Notification.user_id).where(
                Notification.kind == "entered", Notification.instance_id == iid
            )
        ).all()
    assert told == [world.u["county_a"].id]


def test_extension_must_stay_in_its_step():
    bad = Workflow(
        key="bad",
        version=1,
        title="坏",
        states=FILING.states,
        transitions=(*FILING.transitions, T("extend2", "review", "accepted", extends=Deadline(days=5))),
    )
    with pytest.raises(DefinitionError, match="an extension stays in its step"):
        Registry(ROLES).register(bad)


def test_extension_at_most_once(runtime, sessions, actor, world):
    iid = _start(runtime, sessions, actor, world)
    with sessions.begin() as s:
        runtime.fire(s, iid, "extend", actor("town_a1"), now=T0, comment="第一次")
    with sessions.begin() as s, pytest.raises(NotPossible, match="at most 1 times"):
        runtime.fire(s, iid, "extend", actor("town_a1"), now=T0, comment="第二次")


def test_record_saves_fields_and_keeps_tasks_and_clocks(runtime, sessions, actor, world):
    iid = _start(runtime, sessions, actor, world)
    with sessions() as s:
        before = (
            s.scalars(select(Task.id).where(Task.instance_id == iid, Task.status == "open")).all(),
            _breach(s, iid),
        )
    with sessions.begin() as s:
        result = runtime.fire(
            s, iid, "note", actor("town_a1"), now=T0 + timedelta(days=3), form={"memo": "已核"}
        )
    assert (result.to_state, result.advanced) == ("review", False)
    with sessions() as s:
        after = (
            s.scalars(select(Task.id).where(Task.instance_id == iid, Task.status == "open")).all(),
            _breach(s, iid),
        )
        assert after == before and s.get(Instance, iid).data["memo"] == "已核"
        assert (
            s.scalars(
                select(AuditEvent.action).where(AuditEvent.instance_id == iid).order_by(AuditEvent.seq.desc())
            ).first()
            == "record"
        )


def test_record_must_stay_in_its_step():
    bad = Workflow(
        key="bad",
        version=1,
        title="坏",
        states=FILING.states,
        transitions=(*FILING.transitions, T("note2", "review", "accepted", record=True)),
    )
    with pytest.raises(DefinitionError, match="a record transition stays in its step"):
        Registry(ROLES).register(bad)


def test_optional_entered_date_starts_no_clock_until_entered():
    from engine.deadlines import due_at

    optional = Deadline(field="due_on", optional=True)
    assert due_at(optional, T0, data={}) is None
    assert due_at(optional, T0, data={"due_on": "2025-07-10"}) == end_of_day(datetime(2025, 7, 10).date())
    with pytest.raises(NotPossible, match="has not been entered"):
        due_at(Deadline(field="due_on"), T0, data={})
