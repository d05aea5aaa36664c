"""批量办理 in 我的待办: only transitions marked ``bulk``; each instance in its own transaction."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine.machine import Registry
from engine.runtime import Runtime
from tests.engine.sample import GRANT, ROLES


def bulk_runtime() -> Runtime:
    """The sample workflow with 乡镇审核's 通过 marked bulk (it asks for no fields and no reason)."""
    transitions = tuple(
        replace(t, bulk=True) if t.trigger == "approve" and "township_review" in t.sources else t
        for t in GRANT.transitions
    )
    registry = Registry(ROLES)
    registry.register(replace(GRANT, transitions=transitions))
    return Runtime(registry)


@pytest.fixture
def app(app):
    app.extensions["shuangti"]["runtime"] = bulk_runtime()
    return app


def test_queue_offers_bulk_only_where_the_action_is_bulk(make_instance, browser):
    make_instance(name="甲")
    html = browser("town_a1").get("/tasks/").get_data(as_text=True)
    assert 'id="bulk"' in html and 'name="item"' in html and ":approve" in html
    assert 'id="bulk"' not in browser("applicant_a1").get("/tasks/").get_data(as_text=True)


def test_bulk_fires_each_and_lists_each_result(make_instance, browser, load):
    good = make_instance(name="甲项目")
    no_plan = make_instance(name="乙项目", plan="")
    other = make_instance(name="丙项目")
    b = browser("town_a1")
    r = b.post("/tasks/bulk", {"item": [f"{good}:approve", f"{no_plan}:approve", f"{good}:reject", "x:y"]})
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "成功 1 件，未办理 2 件" in html
    assert "甲项目" in html and "没有实施方案" in html and "此操作不能批量办理" in html
    assert load(good).state == "dept_review" and load(no_plan).state == "township_review"
    r = browser("town_b1").post("/tasks/bulk", {"item": [f"{other}:approve"]})
    assert "丙项目" not in r.get_data(as_text=True) and "未办理 1 件" in r.get_data(as_text=True)
    assert load(other).state == "township_review"
    assert b.post("/tasks/bulk", {}).status_code == 302
    assert b.client.post("/tasks/bulk", data={"item": f"{good}:approve"}).status_code == 400
