"""The runtime's contract: scope, roles, each error kind, idempotency, locking, atomicity."""

from __future__ import annotations

import ast
import pathlib
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from engine import audit
from engine.errors import Conflict, Forbidden, GuardFailed, InvalidForm, NotFound, NotPossible
from engine.store.models import AuditEvent, DeadlineRow, Instance, Notification, Task
from tests.conftest import T0
from tests.engine.helpers import SYSTEM, TO_TOWNSHIP, start_grant, walk

LATER = T0 + timedelta(days=1)


def _snapshot(session, iid):
    """Everything a fire may touch, to prove a refusal changed nothing."""
    inst = session.get(Instance, iid)
    session.refresh(inst)
    return (
        inst.state,
        inst.version_id,
        dict(inst.data),
        sorted(
            (t.id, t.status, t.assignee_id)
            for t in session.scalars(select(Task).where(Task.instance_id == iid))
        ),
        sorted(
            (d.id, d.status)
            for d in session.scalars(select(DeadlineRow).where(DeadlineRow.instance_id == iid))
        ),
        session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.instance_id == iid)),
        session.scalar(select(func.count()).select_from(Notification)),
    )


# ---- permission matrix: role × state, deny by default, org scope ---------------------------------

USERS = (
    "applicant_a1",
    "applicant_a2",
    "villager_a1",
    "town_a1",
    "town_a2",
    "town_b1",
    "county_a",
    "county_b",
    "dept_agri",
    "auditor_a",
)
STATES = {
    "draft": ((), "submit", {"applicant_a1"}),
    "township_review": (TO_TOWNSHIP, "approve", {"town_a1"}),
    "county_review": ((*TO_TOWNSHIP, ("approve", "town_a1")), "approve", {"county_a"}),
}
SEES = {"applicant_a1", "villager_a1", "town_a1", "county_a", "dept_agri", "auditor_a"}


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("user", USERS)
def test_permission_matrix(state, user, runtime, sessions, actor, world):
    steps, trigger, allowed = STATES[state]
    iid = start_grant(runtime, sessions, actor, world, amount="150")
    walk(runtime, sessions, actor, iid, steps)
    with sessions() as s:
        before = _snapshot(s, iid)
    with sessions.begin() as s:
        if user in allowed:
            assert runtime.fire(s, iid, trigger, actor(user, LATER), now=LATER).from_state == state
            return
        expected = Forbidden if user in SEES else NotFound
        with pytest.raises(expected):
            runtime.fire(s, iid, trigger, actor(user, LATER), now=LATER)
    with sessions() as s:
        assert _snapshot(s, iid) == before


def test_system_fires_only_system_transitions(runtime, sessions, actor, world):
    iid = start_grant(runtime, sessions, actor, world)
    with sessions.begin() as s, pytest.raises(Forbidden, match="system may not"):
        runtime.fire(s, iid, "submit", SYSTEM, now=LATER)
    walk(runtime, sessions, actor, iid, [("submit", "applicant_a1")])
    with sessions.begin() as s, pytest.raises(Forbidden, match="only the system"):
        runtime.fire(s, iid, "notice_ended", actor("town_a1"), now=LATER)


def test_township_cannot_see_other_township(runtime, sessions, actor, world):
    iid = start_grant(runtime, sessions, actor, world)
    with sessions() as s:
        with pytest.raises(NotFound):
            runtime.instance(s, iid, actor("town_a2"))
        assert runtime.instance(s, iid, actor("town_a1")).id == iid
        assert runtime.instance(s, iid, actor("auditor_a")).id == iid


def test_start_needs_the_start_role_in_scope(runtime, sessions, actor, world):
    with sessions.begin() as s:
        with pytest.raises(Forbidden):
            runtime.start(s, "grant", actor("town_a1"), org_unit_id=world.units["A1v"].id, form={}, now=T0)
        with pytest.raises(NotFound):
            runtime.start(
                s, "grant", actor("applicant_a1"), org_unit_id=world.units["A2v"].id, form={}, now=T0
            )


# ---- each error kind ----------------------------------------------------------------------------


def test_not_possible_in_this_state(runtime, sessions, actor, world):
    iid = start_grant(runtime, sessions, actor, world)
    with sessions.begin() as s, pytest.raises(NotPossible, match="not possible"):
        runtime.fire(s, iid, "approve", actor("applicant_a1"), now=LATER)


def test_guard_failure_lists_every_reason(runtime, sessions, actor, world):
    iid = start_grant(runtime, sessions, actor, world, plan="", target="")
    walk(runtime, sessions, actor, iid, TO_TOWNSHIP)
    with sessions() as s:
        before = _snapshot(s, iid)
    with sessions.begin() as s, pytest.raises(GuardFailed) as err:
        runtime.fire(s, iid, "approve", actor("town_a1"), now=LATER)
    assert err.value.reasons == ["有实施方案: 没有实施方案 (no plan)", "有绩效目标: 没有绩效目标 (no target)"]
    with sessions() as s:
        assert _snapshot(s, iid) == before
        actions = {a.trigger: a for a in runtime.available_actions(s, iid, actor("town_a1"), LATER)}
        assert not actions["approve"].allowed and len(actions["approve"].reasons) == 2
        assert actions["return"].allowed and actions["return"].needs_comment
        assert [bool(c.reasons) for c in runtime.checklist(s, s.get(Instance, iid), LATER)] == [True, True]


def test_invalid_form_names_each_field(runtime, sessions, actor, world):
    with sessions.begin() as s, pytest.raises(InvalidForm) as err:
        runtime.start(
            s,
            "grant",
            actor("applicant_a1"),
            org_unit_id=world.units["A1v"].id,
            now=T0,
            form={"name": "", "amount": "1.0000001", "depts": ["agri", "space"], "colour": "red"},
        )
    assert set(err.value.errors) == {"name", "amount", "depts", "colour"}
    assert "1分" in err.value.errors["amount"]
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Instance)) == 0


def test_missing_reason_is_an_invalid_form(runtime, sessions, actor, world):
    iid = start_grant(runtime, sessions, actor, world)
    walk(runtime, sessions, actor, iid, TO_TOWNSHIP)
    with sessions.begin() as s, pytest.raises(InvalidForm) as err:
        runtime.fire(s, iid, "reject", actor("town_a1"), now=LATER, comment="  ")
    assert list(err.value.errors) == ["comment"]


def test_money_is_stored_as_integer_fen(runtime, sessions, actor, world):
    iid = start_grant(runtime, sessions, actor, world, amount="12.345678")
    with sessions() as s:
        assert s.get(Instance, iid).data["amount"] == 12_345_678


# ---- stale versions and idempotency ------------------------------------------------------------------


def test_stale_expected_version_is_a_conflict(runtime, sessions, actor, world):
    iid = start_grant(runtime, sessions, actor, world)
    with sessions() as s:
        version = s.get(Instance, iid).version_id
    walk(runtime, sessions, actor, iid, [("submit", "applicant_a1")])
    with sessions.begin() as s, pytest.raises(Conflict) as err:
        runtime.fire(s, iid, "notice_ended", SYSTEM, now=LATER, expected_version=version)
    assert err.value.current_version == version + 1


def test_same_idempotency_key_does_the_work_once(runtime, sessions, actor, world):
    iid = start_grant(runtime, sessions, actor, world)
    with sessions.begin() as s:
        first = runtime.fire(s, iid, "submit", actor("applicant_a1"), now=LATER, idempotency_key="k-1")
    with sessions.begin() as s:
        again = runtime.fire(s, iid, "submit", actor("applicant_a1"), now=LATER, idempotency_key="k-1")
    assert again.replayed and (again.event_id, again.to_state) == (first.event_id, first.to_state)
    with sessions.begin() as s:
        with pytest.raises(Conflict):
            runtime.fire(
                s, iid, "object", actor("villager_a1"), now=LATER, idempotency_key="k-1", comment="x"
            )
        assert (
            s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.trigger == "submit")) == 1
        )


def test_idempotent_start(runtime, sessions, actor, world):
    with sessions.begin() as s:
        a = runtime.start(
            s,
            "grant",
            actor("applicant_a1"),
            org_unit_id=world.units["A1v"].id,
            form={"name": "x", "amount": "1", "depts": ["agri"]},
            now=T0,
            idempotency_key="s-1",
        )
    with sessions.begin() as s:
        b = runtime.start(
            s,
            "grant",
            actor("applicant_a1"),
            org_unit_id=world.units["A1v"].id,
            form={"name": "x", "amount": "1", "depts": ["agri"]},
            now=T0,
            idempotency_key="s-1",
        )
        assert a.id == b.id
        assert s.scalar(select(func.count()).select_from(Instance)) == 1


def test_two_sessions_racing_exactly_one_wins(runtime, sessions, actor, world):
    """Two transactions fire on the same version at once: one commits, the other gets a Conflict."""
    iid = start_grant(runtime, sessions, actor, world)
    walk(runtime, sessions, actor, iid, TO_TOWNSHIP)
    with sessions() as s:
        version = s.get(Instance, iid).version_id
    deciders = {"approve": actor("town_a1"), "reject": actor("town_a1_b")}
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def race(trigger):
        try:
            with sessions.begin() as s:
                runtime.instance(s, iid, deciders[trigger])
                barrier.wait(timeout=10)
                outcomes[trigger] = runtime.fire(
                    s, iid, trigger, deciders[trigger], now=LATER, comment="理由", expected_version=version
                )
        except Exception as exc:  # the loser's error is the assertion's subject
            outcomes[trigger] = exc

    threads = [threading.Thread(target=race, args=(t,)) for t in deciders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    kinds = sorted(type(o).__name__ for o in outcomes.values())
    assert kinds == ["Conflict", "FireResult"], outcomes
    with sessions() as s:
        inst = s.get(Instance, iid)
        assert inst.version_id == version + 1
        assert (
            s.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.instance_id == iid, AuditEvent.from_state == "township_review")
            )
            == 1
        )


# ---- atomicity ---------------------------------------------------------------------------------------


def test_failure_inside_fire_leaves_no_trace(runtime, sessions, actor, world):
    """The county department is missing when the countersign opens: the whole fire rolls back."""
    iid = start_grant(runtime, sessions, actor, world, depts=["agri", "roads"])
    walk(runtime, sessions, actor, iid, TO_TOWNSHIP)
    with sessions.begin() as s:
        s.get(Instance, iid).data = {**s.get(Instance, iid).data, "depts": ["agri", "water"]}
    with sessions() as s:
        before = _snapshot(s, iid)
    with pytest.raises(NotPossible, match="no department 'water'"), sessions.begin() as s:
        runtime.fire(s, iid, "approve", actor("town_a1"), now=LATER)
    with sessions() as s:
        assert _snapshot(s, iid) == before
        assert audit.verify(s) == []


# ---- versions ------------------------------------------------------------------------------------------


def test_running_instance_keeps_its_version(sessions, actor, world):
    from dataclasses import replace

    from engine.machine import Registry
    from engine.runtime import Runtime
    from tests.engine.sample import GRANT, ROLES

    registry = Registry(ROLES)
    registry.register(GRANT)
    runtime = Runtime(registry)
    iid = start_grant(runtime, sessions, actor, world)

    v2 = replace(
        GRANT,
        version=2,
        states=tuple(replace(s, label="村级拟定") if s.name == "draft" else s for s in GRANT.states),
    )
    registry.register(v2)
    walk(runtime, sessions, actor, iid, [("submit", "applicant_a1")])
    new = start_grant(runtime, sessions, actor, world)
    with sessions() as s:
        assert s.get(Instance, iid).workflow_version == 1
        assert s.get(Instance, new).workflow_version == 2
        assert runtime.definition(s.get(Instance, new)).workflow.state("draft").label == "村级拟定"


# ---- the engine's boundary -----------------------------------------------------------------------------


def test_engine_imports_neither_flask_nor_workflows():
    forbidden = {"flask", "flask_login", "flask_wtf", "flask_babel", "web", "workflows"}
    for path in pathlib.Path("engine").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path} imports {name}"


def test_migration_maps_running_instances_to_a_new_version(sessions, actor, world):
    from dataclasses import replace

    from engine.machine import Registry
    from engine.runtime import Runtime
    from tests.engine.sample import GRANT, ROLES

    registry = Registry(ROLES)
    registry.register(GRANT)
    runtime = Runtime(registry)
    at_township = start_grant(runtime, sessions, actor, world)
    walk(runtime, sessions, actor, at_township, TO_TOWNSHIP)
    at_draft = start_grant(runtime, sessions, actor, world)

    def renamed(name):
        return "town_check" if name == "township_review" else name

    v2 = replace(
        GRANT,
        version=2,
        states=tuple(replace(st, name=renamed(st.name)) for st in GRANT.states),
        transitions=tuple(
            replace(t, sources=tuple(map(renamed, t.sources)), dest=renamed(t.dest))
            for t in GRANT.transitions
        ),
    )
    registry.register(v2)
    with sessions.begin() as s, pytest.raises(InvalidForm, match="lacks: map it"):
        runtime.migrate_instances(s, "grant", 1, 2, SYSTEM, LATER)
    with sessions.begin() as s:
        moved = runtime.migrate_instances(
            s, "grant", 1, 2, SYSTEM, LATER, state_map={"township_review": "town_check"}
        )
    assert moved == sorted([at_township, at_draft])
    with sessions() as s:
        inst = s.get(Instance, at_township)
        assert (inst.workflow_version, inst.state) == (2, "town_check")
        assert [
            t.state
            for t in s.scalars(select(Task).where(Task.instance_id == at_township, Task.status == "open"))
        ] == ["town_check"]
        assert (
            s.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.instance_id == at_township)
                .order_by(AuditEvent.seq.desc())
            ).first()
            == "migrate"
        )
    with sessions.begin() as s:
        assert (
            runtime.fire(s, at_township, "approve", actor("town_a1", LATER), now=LATER).to_state
            == "dept_review"
        )
