"""我的待办: the user's open tasks with local due times, overdue marks, filters, pages and 签收."""

from __future__ import annotations

import re

from sqlalchemy import select

from engine.store.models import Task


def rows(html: str) -> list[str]:
    return re.findall(r'<tr class="[^"]*">.*?</tr>', html, re.S)


def test_queue_shows_own_tasks_with_due_time_in_shanghai(make_instance, browser, sessions):
    iid = make_instance(name="牦牛养殖")
    with sessions() as s:
        due = s.scalars(select(Task.due_at).where(Task.instance_id == iid, Task.status == "open")).one()
    html = browser("town_a1").get("/tasks/").get_data(as_text=True)
    assert f"/instances/{iid}" in html and "牦牛养殖" in html and "乡镇审核" in html
    assert "2025-05-13 23:59" in html, due
    assert "已逾期" not in html and "即将到期" not in html
    assert "牦牛养殖" not in browser("town_a2").get("/tasks/").get_data(as_text=True)


def test_overdue_and_due_soon_are_marked(make_instance, browser, clock):
    make_instance()
    b = browser("town_a1")
    clock.advance(days=6)
    html = b.get("/tasks/").get_data(as_text=True)
    assert "即将到期" in html and 'class="due-soon"' in html
    clock.advance(days=2)
    html = b.get("/tasks/").get_data(as_text=True)
    assert "已逾期" in html and 'class="overdue"' in html


def test_filters(make_instance, browser, clock, world):
    make_instance(name="甲项目")
    clock.advance(days=8)
    make_instance(name="乙项目")
    b = browser("county_a")
    assert b.get("/tasks/").get_data(as_text=True).count("项目</a>") == 0
    b = browser("town_a1")
    assert b.get("/tasks/").get_data(as_text=True).count("项目</a>") == 2
    overdue = b.get("/tasks/?overdue=1").get_data(as_text=True)
    assert "甲项目" in overdue and "乙项目" not in overdue
    soon = b.get("/tasks/?due_days=1").get_data(as_text=True)
    assert "甲项目" in soon and "乙项目" not in soon
    state = b.get("/tasks/?workflow=grant&state=county_review").get_data(as_text=True)
    assert "甲项目" not in state and "乙项目" not in state
    other = b.get(f"/tasks/?org={world.units['B'].id}").get_data(as_text=True)
    assert "甲项目" in other, "a unit out of sight is not a filter: it is ignored"


def test_pages_of_twenty(make_instance, browser):
    for i in range(21):
        make_instance(name=f"项目{i:02d}")
    b = browser("town_a1")
    first = b.get("/tasks/").get_data(as_text=True)
    assert len(rows(first)) == 20 and "第 1 / 2 页" in first and "?page=2" in first
    second = b.get("/tasks/?page=2").get_data(as_text=True)
    assert len(rows(second)) == 1


def test_claim_makes_the_task_someone_elses(make_instance, browser, sessions, load):
    iid = make_instance()
    with sessions() as s:
        task_id = s.scalars(select(Task.id).where(Task.instance_id == iid, Task.status == "open")).one()
    me = browser("town_a1")
    assert me.post(f"/tasks/{task_id}/claim").status_code == 302
    assert "我已签收" in me.get("/tasks/").get_data(as_text=True)
    colleague = browser("town_a1_b")
    assert "town_a1 已签收" in colleague.get("/tasks/").get_data(as_text=True)
    r = colleague.post(
        f"/instances/{iid}/fire", {"trigger": "approve", "expected_version": str(load(iid).version_id)}
    )
    assert r.status_code == 403
    assert colleague.post(f"/tasks/{task_id}/claim").status_code in (403, 409)
    assert browser("town_b1").post(f"/tasks/{task_id}/claim").status_code == 404
    assert me.post(f"/tasks/{task_id}/unclaim").status_code == 302
    assert "未签收" in colleague.get("/tasks/").get_data(as_text=True)
