"""The approval actions: normal path, refusals and audit event of each, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine import directory
from engine.errors import Forbidden, InvalidForm, NotFound, NotPossible
from engine.store.models import AuditEvent, DeadlineRow, Instance, Notification, Task
from engine.tasks import task_queue
from tests.conftest import T0
from tests.engine.helpers import TO_TOWNSHIP, start_grant, walk

LATER = T0 + timedelta(days=1)
TO_DEPTS = (*TO_TOWNSHIP, ("approve", "town_a1"))


def _open(s, iid, state=None):
    q = select(Task).where(Task.instance_id == iid, Task.status == "open").order_by(Task.id)
    return s.scalars(q.where(Task.state == state) if state else q).all()


def _last_event(s, iid):
    return s.scalars(
        select(AuditEvent).where(AuditEvent.instance_id == iid).order_by(AuditEvent.seq.desc())
    ).first()


@pytest.fixture
def at_township(runtime, sessions, actor, world):
    iid = start_grant(runtime, sessions, actor, world)
    walk(runtime, sessions, actor, iid, TO_TOWNSHIP)
    return iid


# ---- 签收 / 取消签收 ---------------------------------------------------------------------------


def test_claim_then_others_see_it_taken(runtime, sessions, actor, at_township):
    with sessions.begin() as s:
        task = _open(s, at_township)[0]
        runtime.claim(s, task.id, actor("town_a1"), LATER)
        assert _last_event(s, at_township).action == "claim"
    with sessions() as s:
        other = task_queue(s, actor("town_a1_b"))
        assert [t.id for t in other.items] == [task.id] and other.items[0].assignee.username == "town_a1"
    with sessions.begin() as s, pytest.raises(Forbidden, match="已被他人签收"):
        runtime.fire(s, at_township, "approve", actor("town_a1_b"), now=LATER)
    with sessions.begin() as s, pytest.raises(Forbidden, match="claimed by town_a1"):
        runtime.claim(s, task.id, actor("town_a1_b"), LATER)
    with sessions.begin() as s, pytest.raises(NotPossible, match="already claimed"):
        runtime.claim(s, task.id, actor("town_a1"), LATER)
    with sessions.begin() as s:
        runtime.unclaim(s, task.id, actor("town_a1"), LATER)
        assert _last_event(s, at_township).action == "unclaim"
    with sessions.begin() as s:
        assert runtime.fire(s, at_township, "approve", actor("town_a1_b"), now=LATER).advanced


def test_out_of_scope_claim_is_not_found(runtime, sessions, actor, at_township):
    with sessions.begin() as s, pytest.raises(NotFound):
        runtime.claim(s, _open(s, at_township)[0].id, actor("town_a2"), LATER)


# ---- 退回 / 驳回到指定节点 / 退回后直送 -------------------------------------------------------------


def test_return_needs_a_reason_and_resubmission_goes_back_to_returner(runtime, sessions, actor, world):
    iid = start_grant(runtime, sessions, actor, world, amount="100")
    walk(runtime, sessions, actor, iid, [*TO_TOWNSHIP, ("approve", "town_a1")])
    with sessions.begin() as s, pytest.raises(InvalidForm, match="comment"):
        runtime.fire(s, iid, "return", actor("county_a"), now=LATER)
    with sessions.begin() as s:
        runtime.fire(s, iid, "return", actor("county_a"), now=LATER, comment="预算不实")
        assert s.get(Instance, iid).returned_from == "county_review"
    with sessions.begin() as s:
        result = runtime.fire(s, iid, "submit", actor("applicant_a1"), now=LATER)
    assert result.to_state == "county_review"


# ---- 撤回 ---------------------------------------------------------------------------------------------


def test_withdraw_until_the_next_step_acts(runtime, sessions, actor, world):
    iid = start_grant(runtime, sessions, actor, world)
    walk(runtime, sessions, actor, iid, [("submit", "applicant_a1")])
    with sessions.begin() as s, pytest.raises(Forbidden, match="only the person who submitted"):
        runtime.withdraw(s, iid, actor("villager_a1"), LATER)
    with sessions.begin() as s:
        inst = runtime.withdraw(s, iid, actor("applicant_a1"), LATER, comment="补充材料")
        assert inst.state == "draft"
        assert _last_event(s, iid).action == "withdraw"
        assert [d.status for d in s.scalars(select(DeadlineRow).where(DeadlineRow.instance_id == iid))] == [
            "cancelled"
        ]


def test_withdraw_refused_once_the_next_step_has_claimed(runtime, sessions, actor, world):
    iid = start_grant(runtime, sessions, actor, world)
    walk(runtime, sessions, actor, iid, TO_DEPTS)
    with sessions.begin() as s, pytest.raises(NotPossible, match="does not allow withdrawal"):
        runtime.withdraw(s, iid, actor("town_a1"), LATER)
    iid2 = start_grant(runtime, sessions, actor, world)
    walk(runtime, sessions, actor, iid2, TO_TOWNSHIP)
    with sessions.begin() as s, pytest.raises(Forbidden):
        runtime.withdraw(s, iid2, actor("applicant_a1"), LATER)


def test_withdraw_too_late_after_claim(runtime, sessions, actor, world):
    """In the step after a withdrawable one, a claim counts as acting: withdrawal is then refused."""
    iid = start_grant(runtime, sessions, actor, world, amount="100")
    walk(
        runtime,
        sessions,
        actor,
        iid,
        [*TO_TOWNSHIP, ("approve", "town_a1"), ("return", "county_a"), ("submit", "applicant_a1")],
    )
    with sessions.begin() as s:
        assert s.get(Instance, iid).state == "county_review"
        runtime.claim(s, _open(s, iid)[0].id, actor("county_a"), LATER)
    with sessions.begin() as s, pytest.raises(NotPossible, match="too late to withdraw"):
        runtime.withdraw(s, iid, actor("applicant_a1"), LATER)


# ---- 转办 / 委派 -------------------------------------------------------------------------------------


def test_reassign_to_same_role_only(runtime, sessions, actor, world, at_township):
    with sessions.begin() as s:
        task = _open(s, at_township)[0]
        with pytest.raises(InvalidForm, match="to_user"):
            runtime.reassign(s, task.id, actor("town_a1"), world.u["town_a2"].id, LATER)
    with sessions.begin() as s:
        runtime.reassign(s, task.id, actor("town_a1"), world.u["town_a1_b"].id, LATER, comment="出差")
        event = _last_event(s, at_township)
        assert (event.action, event.detail["to"]) == ("reassign", "town_a1_b")
    with sessions.begin() as s, pytest.raises(Forbidden, match="claimed by town_a1_b"):
        runtime.fire(s, at_township, "approve", actor("town_a1"), now=LATER)
    with sessions.begin() as s:
        assert runtime.fire(s, at_township, "approve", actor("town_a1_b"), now=LATER).advanced


def test_delegate_acts_and_returns_to_delegator(runtime, sessions, actor, world, at_township):
    with sessions.begin() as s:
        task = _open(s, at_township)[0]
        with pytest.raises(InvalidForm, match="cannot see"):
            runtime.delegate(s, task.id, actor("town_a1"), world.u["town_b1"].id, LATER)
        runtime.delegate(s, task.id, actor("town_a1"), world.u["county_a"].id, LATER, comment="请核预算")
    with sessions.begin() as s, pytest.raises(Forbidden, match="claimed by county_a"):
        runtime.fire(s, at_township, "approve", actor("town_a1"), now=LATER)
    with sessions.begin() as s, pytest.raises(InvalidForm, match="comment"):
        runtime.hand_back(s, task.id, actor("county_a"), LATER, comment="")
    with sessions.begin() as s:
        runtime.hand_back(s, task.id, actor("county_a"), LATER, comment="预算合理")
        assert [
            e.action
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.instance_id == at_township).order_by(AuditEvent.seq)
            )
        ][-2:] == ["delegate", "hand_back"]
    with sessions.begin() as s:
        assert runtime.fire(s, at_township, "approve", actor("town_a1"), now=LATER).advanced


# ---- 会签 / 或签 / 加签 / 减签 --------------------------------------------------------------------------


def test_countersign_all_three_must_pass(runtime, sessions, actor, world):
    iid = start_grant(runtime, sessions, actor, world, depts=["agri", "finance", "roads"])
    walk(runtime, sessions, actor, iid, TO_DEPTS)
    with sessions() as s:
        assert sorted(t.party for t in _open(s, iid)) == ["agri", "finance", "roads"]
    for who, advanced in (("dept_agri", False), ("dept_finance", False), ("dept_roads", True)):
        with sessions.begin() as s:
            result = runtime.fire(s, iid, "approve", actor(who), now=LATER)
        assert result.advanced is advanced
    with sessions() as s:
        assert s.get(Instance, iid).state == "granted"


def test_countersign_one_return_sends_it_back_with_that_reason(runtime, sessions, actor, world):
    iid = start_grant(runtime, sessions, actor, world, depts=["agri", "finance", "roads"])
    walk(runtime, sessions, actor, iid, [*TO_DEPTS, ("approve", "dept_agri")])
    with sessions.begin() as s:
        runtime.fire(s, iid, "return", actor("dept_roads"), now=LATER, comment="道路等级不符")
    with sessions() as s:
        inst = s.get(Instance, iid)
        assert inst.state == "draft" and _open(s, iid, "dept_review") == []
        event = _last_event(s, iid)
        assert (event.role, event.comment, event.org_unit_id) == (
            "dept_reviewer",
            "道路等级不符",
            world.units["A-roads"].id,
        )


def test_added_signer_must_also_pass_and_removed_one_need_not(runtime, sessions, actor, world):
    iid = start_grant(runtime, sessions, actor, world, depts=["agri", "finance"])
    walk(runtime, sessions, actor, iid, TO_DEPTS)
    with sessions.begin() as s, pytest.raises(Forbidden):
        runtime.add_signer(s, iid, "roads", actor("town_a1"), LATER, comment="涉及道路")
    with sessions.begin() as s:
        runtime.add_signer(s, iid, "roads", actor("county_a"), LATER, comment="涉及道路")
        assert _last_event(s, iid).action == "add_signer"
    with sessions.begin() as s, pytest.raises(InvalidForm, match="already signing"):
        runtime.add_signer(s, iid, "roads", actor("county_a"), LATER, comment="again")
    for who in ("dept_agri", "dept_finance"):
        with sessions.begin() as s:
            assert not runtime.fire(s, iid, "approve", actor(who), now=LATER).advanced
    with sessions.begin() as s, pytest.raises(NotPossible, match="last pending signer"):
        runtime.remove_signer(s, iid, "roads", actor("county_a"), LATER, comment="不涉及")
    with sessions.begin() as s:
        assert runtime.fire(s, iid, "approve", actor("dept_roads"), now=LATER).to_state == "granted"


def test_remove_signer(runtime, sessions, actor, world):
    iid = start_grant(runtime, sessions, actor, world, depts=["agri", "finance", "roads"])
    walk(runtime, sessions, actor, iid, TO_DEPTS)
    with sessions.begin() as s:
        runtime.remove_signer(s, iid, "roads", actor("county_a"), LATER, comment="不涉及道路")
        assert _last_event(s, iid).detail["party"] == "roads"
    walk(
        runtime, sessions, actor, iid, [("approve", "dept_agri"), ("approve", "dept_finance")], start_hour=30
    )
    with sessions() as s:
        assert s.get(Instance, iid).state == "granted"


# ---- 催办 ----------------------------------------------------------------------------------------------


def test_urge_counts_and_notifies(runtime, sessions, actor, world, at_township):
    with sessions.begin() as s:
        task = _open(s, at_township)[0]
        with pytest.raises(Forbidden, match="urge"):
            runtime.urge(s, task.id, actor("villager_a1"), LATER)
    with sessions.begin() as s, pytest.raises(NotPossible, match="yours to work"):
        runtime.urge(s, task.id, actor("town_a1"), LATER)
    for n in (1, 2):
        with sessions.begin() as s:
            assert runtime.urge(s, task.id, actor("applicant_a1"), LATER, comment="请尽快").urge_count == n
    with sessions() as s:
        notes = s.scalars(select(Notification).where(Notification.kind == "urged")).all()
        assert sorted(n.user_id for n in notes) == sorted(
            [world.u["town_a1"].id, world.u["town_a1_b"].id] * 2
        )
        assert s.get(Task, task.id).urge_count == 2


# ---- 挂起 / 恢复 ----------------------------------------------------------------------------------------


def test_suspend_ten_days_moves_the_deadline_by_ten_days(runtime, sessions, actor, at_township):
    with sessions() as s:
        due_before = _open(s, at_township)[0].due_at
        rows_before = {
            d.id: d.due_at
            for d in s.scalars(
                select(DeadlineRow).where(
                    DeadlineRow.instance_id == at_township, DeadlineRow.status == "pending"
                )
            )
        }
    with sessions.begin() as s, pytest.raises(Forbidden):
        runtime.suspend(s, at_township, actor("town_a1"), LATER, comment="x")
    with sessions.begin() as s:
        runtime.suspend(s, at_township, actor("county_a"), LATER, comment="群众举报，核查中")
    with sessions.begin() as s, pytest.raises(NotPossible, match="suspended"):
        runtime.fire(s, at_township, "approve", actor("town_a1"), now=LATER)
    with sessions.begin() as s:
        runtime.resume(s, at_township, actor("county_a"), LATER + timedelta(days=10))
    with sessions() as s:
        assert _open(s, at_township)[0].due_at == due_before + timedelta(days=10)
        rows_after = {
            d.id: d.due_at
            for d in s.scalars(
                select(DeadlineRow).where(
                    DeadlineRow.instance_id == at_township, DeadlineRow.status == "pending"
                )
            )
        }
        assert rows_after == {k: v + timedelta(days=10) for k, v in rows_before.items()}
        assert [
            e.action
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.instance_id == at_township).order_by(AuditEvent.seq)
            )
        ][-2:] == ["suspend", "resume"]


# ---- 代理 -----------------------------------------------------------------------------------------------


def test_acting_officer_routes_and_audits_on_behalf(runtime, sessions, actor, world, at_township):
    with sessions.begin() as s:
        stand_in = directory.add_user(
            s, username="deputy", display_name="副乡长", password="deputy-pass", now=T0
        )
        directory.name_substitute(
            s,
            s.get(type(world.u["town_a1"]), world.u["town_a1"].id),
            stand_in,
            starts_at=T0,
            ends_at=T0 + timedelta(days=7),
            now=T0,
        )
        deputy_id = stand_in.id
    from engine.scope import load_actor

    with sessions() as s:
        deputy = load_actor(s, deputy_id, LATER)
        assert [t.instance_id for t in task_queue(s, deputy).items] == [at_township]
        assert task_queue(s, load_actor(s, deputy_id, T0 + timedelta(days=8))).total == 0
    with sessions.begin() as s:
        runtime.fire(s, at_township, "approve", load_actor(s, deputy_id, LATER), now=LATER)
        event = _last_event(s, at_township)
        assert (event.actor_name, event.on_behalf_of_name) == ("副乡长", "town_a1")


# ---- the task queue ----------------------------------------------------------------------------------


def test_task_queue_scope_filters_and_paging(runtime, sessions, actor, world):
    ids = [start_grant(runtime, sessions, actor, world) for _ in range(3)]
    ids.append(start_grant(runtime, sessions, actor, world, village="A2v", who="applicant_a2"))
    for iid, who in zip(ids, ["applicant_a1"] * 3 + ["applicant_a2"], strict=True):
        walk(runtime, sessions, actor, iid, [("submit", who), ("notice_ended", None)])
    with sessions() as s:
        mine = task_queue(s, actor("town_a1"), per_page=2)
        assert (mine.total, len(mine.items), mine.pages) == (3, 2, 2)
        assert {t.instance_id for t in mine.items} | {
            t.instance_id for t in task_queue(s, actor("town_a1"), per_page=2, page=2).items
        } == set(ids[:3])
        assert task_queue(s, actor("town_a2")).total == 1
        assert task_queue(s, actor("town_b1")).total == 0
        assert task_queue(s, actor("town_a1"), state="county_review").total == 0
        assert task_queue(s, actor("town_a1"), workflow="grant").total == 3
        assert task_queue(s, actor("town_a1"), org_path=world.units["A2"].path).total == 0
        due = mine.items[0].due_at
        assert task_queue(s, actor("town_a1"), overdue_at=due - timedelta(seconds=1)).total == 0
        assert task_queue(s, actor("town_a1"), overdue_at=due + timedelta(seconds=1)).total == 3
        assert task_queue(s, actor("auditor_a")).total == 0


# ---- what the actor may do now (the same checks as the actions) -------------------------------------


def test_options_agree_with_the_actions(runtime, sessions, actor, world, at_township):
    with sessions() as s:
        inst = s.get(Instance, at_township)
        mine = runtime.options(s, inst, actor("town_a1"))
        [task] = mine.tasks
        assert (task.claim, task.unclaim, task.hand_over, task.urge) == (True, False, True, False)
        assert [u.username for u in task.reassign_to] == ["town_a1_b"]
        assert not mine.suspend and not mine.withdraw
        starter = runtime.options(s, inst, actor("applicant_a1"))
        assert starter.tasks[0].urge and not starter.tasks[0].claim
        supervisor = runtime.options(s, inst, actor("county_a"))
        assert supervisor.suspend and not supervisor.resume
    with sessions.begin() as s:
        runtime.claim(s, task.task.id, actor("town_a1_b"), LATER)
    with sessions() as s:
        other = runtime.options(s, s.get(Instance, at_township), actor("town_a1"))
        assert not other.tasks[0].claim and not other.tasks[0].hand_over
        with pytest.raises(Forbidden):
            runtime.claim(s, task.task.id, actor("town_a1"), LATER)
