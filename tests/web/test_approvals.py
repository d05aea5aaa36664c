"""Approval actions from the instance page and the API: 转办, 委派/交回, 催办, 撤回, 挂起/恢复, 加签/减签."""

from __future__ import annotations

from sqlalchemy import select

from engine.store.models import Task
from tests.web.conftest import ROUTE

AT_DEPTS = [*ROUTE, ("approve", "town_a1")]


def open_tasks(sessions, iid: int) -> list[Task]:
    with sessions() as s:
        return list(
            s.scalars(select(Task).where(Task.instance_id == iid, Task.status == "open").order_by(Task.id))
        )


def task_url(iid: int, task: Task, action: str) -> str:
    return f"/instances/{iid}/tasks/{task.id}/{action}"



def test_page_offers_only_the_actions_that_make_sense(make_instance, browser):
    iid = make_instance()
    worker = browser("town_a1").get(f"/instances/{iid}").get_data(as_text=True)
    assert "/reassign" in worker and "/delegate" in worker and "/claim" in worker
    assert ">town_a1_b</option>" in worker, "转办 offers the colleague holding the same role"
    assert "/urge" not in worker and "/suspend" not in worker and "/withdraw" not in worker
    starter = browser("applicant_a1").get(f"/instances/{iid}").get_data(as_text=True)
    assert "/urge" in starter and "/reassign" not in starter
    supervisor = browser("county_a").get(f"/instances/{iid}").get_data(as_text=True)
    assert "/suspend" in supervisor and "/resume" not in supervisor and "/add_signer" not in supervisor


def test_reassign_to_a_colleague_and_refusals(make_instance, browser, sessions, world):
    iid = make_instance()
    (task,) = open_tasks(sessions, iid)
    me = browser("town_a1")
    r = me.post(task_url(iid, task, "reassign"), {"to_user": str(world.u["town_b1"].id)})
    assert r.status_code == 422 and "不具备该岗位" in r.get_data(as_text=True)
    assert me.post(task_url(iid, task, "reassign"), {"to_user": ""}).status_code == 422
    r = me.post(task_url(iid, task, "reassign"), {"to_user": str(world.u["town_a1_b"].id), "comment": "出差"})
    assert r.status_code == 302
    (task,) = open_tasks(sessions, iid)
    assert task.assignee_id == world.u["town_a1_b"].id
    r = me.post(task_url(iid, task, "reassign"), {"to_user": str(world.u["town_a1"].id)})
    assert r.status_code == 403, "the task is now someone else's"
    assert browser("town_b1").post(task_url(iid, task, "reassign"), {"to_user": "1"}).status_code == 404
    other = make_instance()
    assert me.post(task_url(other, task, "claim")).status_code == 404, "a task of another instance"
    r = me.client.post(task_url(iid, task, "urge"), data={})
    assert r.status_code == 400, "no CSRF token"


def test_delegate_then_hand_back_with_an_opinion(make_instance, browser, sessions, world):
    iid = make_instance()
    (task,) = open_tasks(sessions, iid)
    assert (
        browser("town_a1")
        .post(task_url(iid, task, "delegate"), {"to_user": str(world.u["county_a"].id)})
        .status_code
        == 302
    )
    delegate = browser("county_a")
    page = delegate.get(f"/instances/{iid}").get_data(as_text=True)
    assert "/hand_back" in page and "委派中" in page
    r = delegate.post(task_url(iid, task, "hand_back"), {"comment": " "})
    assert r.status_code == 422 and "须填写理由" in r.get_data(as_text=True)
    assert browser("town_a1").post(task_url(iid, task, "hand_back"), {"comment": "x"}).status_code == 403
    assert delegate.post(task_url(iid, task, "hand_back"), {"comment": "同意"}).status_code == 302
    (task,) = open_tasks(sessions, iid)
    assert task.assignee_id == world.u["town_a1"].id and task.delegated_by_id is None


def test_urge_counts_and_who_may_urge(make_instance, browser, sessions):
    iid = make_instance()
    (task,) = open_tasks(sessions, iid)
    starter = browser("applicant_a1")
    assert starter.post(task_url(iid, task, "urge"), {"comment": "请尽快"}).status_code == 302
    assert starter.post(task_url(iid, task, "urge")).status_code == 302
    assert "已催办 2 次" in starter.get(f"/instances/{iid}").get_data(as_text=True)
    assert browser("town_a1").post(task_url(iid, task, "urge")).status_code == 409, "one's own task"
    assert browser("villager_a1").post(task_url(iid, task, "urge")).status_code == 403
    assert browser("town_b1").post(task_url(iid, task, "urge")).status_code == 404


def test_withdraw_by_the_submitter_only(make_instance, browser, load):
    iid = make_instance(steps=[("submit", "applicant_a1")])
    assert browser("town_a1").post(f"/instances/{iid}/withdraw").status_code == 403
    starter = browser("applicant_a1")
    assert "/withdraw" in starter.get(f"/instances/{iid}").get_data(as_text=True)
    assert starter.post(f"/instances/{iid}/withdraw", {"comment": "补充材料"}).status_code == 302
    assert load(iid).state == "draft"
    assert starter.post(f"/instances/{iid}/withdraw").status_code == 403, "nothing submitted to take back"
    assert browser("applicant_a2").post(f"/instances/{iid}/withdraw").status_code == 404


def test_suspend_needs_a_reason_and_resume_restarts(make_instance, browser, load):
    iid = make_instance()
    supervisor = browser("county_a")
    assert supervisor.post(f"/instances/{iid}/resume").status_code == 409
    assert supervisor.post(f"/instances/{iid}/suspend", {"comment": ""}).status_code == 422
    assert browser("town_a1").post(f"/instances/{iid}/suspend", {"comment": "x"}).status_code == 403
    assert browser("county_b").post(f"/instances/{iid}/suspend", {"comment": "x"}).status_code == 404
    assert supervisor.post(f"/instances/{iid}/suspend", {"comment": "资料核查"}).status_code == 302
    assert load(iid).status == "suspended"
    page = supervisor.get(f"/instances/{iid}").get_data(as_text=True)
    assert "/resume" in page and "/suspend" not in page
    assert supervisor.post(f"/instances/{iid}/resume").status_code == 302
    assert load(iid).status == "active"


def test_add_and_remove_a_countersign_party(make_instance, browser, sessions):
    iid = make_instance(steps=AT_DEPTS)
    supervisor = browser("county_a")
    page = supervisor.get(f"/instances/{iid}").get_data(as_text=True)
    assert 'value="roads"' in page and "/remove_signer" in page
    assert supervisor.post(f"/instances/{iid}/add_signer", {"party": "roads"}).status_code == 422, (
        "reason required"
    )
    assert (
        supervisor.post(f"/instances/{iid}/add_signer", {"party": "agri", "comment": "x"}).status_code == 422
    )
    assert (
        supervisor.post(f"/instances/{iid}/add_signer", {"party": "roads", "comment": "涉及道路"}).status_code
        == 302
    )
    assert sorted(t.party for t in open_tasks(sessions, iid)) == ["agri", "finance", "roads"]
    assert (
        supervisor.post(
            f"/instances/{iid}/remove_signer", {"party": "finance", "comment": "无关"}
        ).status_code
        == 302
    )
    assert sorted(t.party for t in open_tasks(sessions, iid)) == ["agri", "roads"]
    assert (
        browser("dept_agri")
        .post(f"/instances/{iid}/remove_signer", {"party": "roads", "comment": "x"})
        .status_code
        == 403
    )


def test_api_actions_and_their_refusals(make_instance, api, sessions, world, load):
    iid = make_instance()
    (task,) = open_tasks(sessions, iid)
    me = api("town_a1")
    assert me.post(f"/api/v1/tasks/{task.id}/claim").get_json()["assignee_id"] == world.u["town_a1"].id
    assert me.post(f"/api/v1/tasks/{task.id}/claim").status_code == 409
    assert me.post(f"/api/v1/tasks/{task.id}/unclaim").get_json()["assignee_id"] is None
    r = me.post(f"/api/v1/tasks/{task.id}/reassign", json={})
    assert r.status_code == 422 and r.get_json()["fields"] == {"to_user_id": "必填 (required)"}
    r = me.post(f"/api/v1/tasks/{task.id}/delegate", json={"to_user_id": world.u["county_a"].id})
    assert r.status_code == 200 and r.get_json()["delegated_by_id"] == world.u["town_a1"].id
    r = api("county_a").post(f"/api/v1/tasks/{task.id}/hand_back", json={"comment": "同意"})
    assert r.status_code == 200 and r.get_json()["assignee_id"] == world.u["town_a1"].id
    r = api("applicant_a1").post(f"/api/v1/tasks/{task.id}/urge", json={"comment": "请尽快"})
    assert r.get_json()["urge_count"] == 1
    assert api("town_b1").post(f"/api/v1/tasks/{task.id}/urge").status_code == 404
    assert api("villager_a1").post(f"/api/v1/tasks/{task.id}/urge").get_json()["error"] == "forbidden"
    r = me.post(f"/api/v1/tasks/{task.id}/reassign", json={"to_user_id": world.u["town_a1_b"].id})
    assert r.get_json()["assignee_id"] == world.u["town_a1_b"].id
    supervisor = api("county_a")
    assert supervisor.post(f"/api/v1/instances/{iid}/suspend", json={}).status_code == 422
    assert (
        supervisor.post(f"/api/v1/instances/{iid}/suspend", json={"comment": "核查"}).get_json()["status"]
        == "suspended"
    )
    assert supervisor.post(f"/api/v1/instances/{iid}/resume").get_json()["status"] == "active"
    assert me.post(f"/api/v1/instances/{iid}/withdraw").status_code == 403
    assert (
        supervisor.post(
            f"/api/v1/instances/{iid}/add_signer", json={"party": "roads", "comment": "x"}
        ).status_code
        == 409
    )


def test_api_countersign_and_withdraw(make_instance, api, sessions, load):
    iid = make_instance(steps=AT_DEPTS)
    supervisor = api("county_a")
    r = supervisor.post(f"/api/v1/instances/{iid}/add_signer", json={"party": "roads", "comment": "涉及道路"})
    assert r.status_code == 200 and r.get_json()["version"] == load(iid).version_id
    r = supervisor.post(f"/api/v1/instances/{iid}/remove_signer", json={"party": 5, "comment": "x"})
    assert r.status_code == 422
    r = supervisor.post(
        f"/api/v1/instances/{iid}/remove_signer", json={"party": "finance", "comment": "无关"}
    )
    assert r.status_code == 200
    assert sorted(t.party for t in open_tasks(sessions, iid)) == ["agri", "roads"]
    submitted = make_instance(steps=[("submit", "applicant_a1")])
    assert api("applicant_a1").post(f"/api/v1/instances/{submitted}/withdraw").get_json()["state"] == "draft"


def test_api_session_post_needs_the_csrf_header(make_instance, browser, sessions):
    iid = make_instance()
    (task,) = open_tasks(sessions, iid)
    b = browser("town_a1")
    assert b.client.post(f"/api/v1/tasks/{task.id}/claim").status_code == 400
    r = b.client.post(f"/api/v1/tasks/{task.id}/claim", headers={"X-CSRFToken": b.token()})
    assert r.status_code == 200
