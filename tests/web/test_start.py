"""Start forms: generated from Workflow.start_fields, validated field by field, nothing saved on error."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from engine.store.models import Instance


def count(sessions) -> int:
    with sessions() as s:
        return s.scalar(select(func.count(Instance.id)))


def test_form_lists_every_start_field(browser):
    html = browser("applicant_a1").get("/start/grant").get_data(as_text=True)
    for name in ("name", "amount", "plan", "target"):
        assert f'name="{name}"' in html
    assert html.count('name="depts"') == 3
    assert "金额 (万元)" in html


def test_start_list_offers_only_what_the_user_may_start(browser):
    assert "/start/grant" in browser("applicant_a1").get("/start/").get_data(as_text=True)
    assert "/start/grant" not in browser("town_a1").get("/start/").get_data(as_text=True)


def test_bad_fields_each_get_their_error_and_keep_their_values(browser, world, sessions):
    b = browser("applicant_a1")
    form = {"org_unit_id": str(world.units["A1v"].id), "name": "", "amount": "12.3456789", "plan": "已有方案"}
    r = b.post("/start/grant", form)
    html = r.get_data(as_text=True)
    assert r.status_code == 422
    errors = dict(re.findall(r'id="error-(\w+)">([^<]+)<', html))
    assert set(errors) == {"name", "amount", "depts"}
    assert "必填" in errors["name"] and "精度" in errors["amount"]
    assert 'value="12.3456789"' in html and "已有方案" in html
    assert count(sessions) == 0


def test_valid_form_starts_and_stores_money_in_fen(browser, world, sessions):
    b = browser("applicant_a1")
    form = {
        "org_unit_id": str(world.units["A1v"].id),
        "name": "青稞加工",
        "amount": "88.5",
        "depts": ["agri", "roads"],
    }
    r = b.post("/start/grant", form)
    assert r.status_code == 302
    with sessions() as s:
        inst = s.scalars(select(Instance)).one()
    assert r.location == f"/instances/{inst.id}"
    assert inst.data["amount"] == 88_500_000 and inst.data["depts"] == ["agri", "roads"]
    assert "88.5 万元" in b.get(r.location).get_data(as_text=True)


def test_starting_without_the_role_is_403(browser, world, sessions):
    r = browser("town_a1").post("/start/grant", {"org_unit_id": str(world.units["A1v"].id), "name": "x"})
    assert r.status_code == 403 and count(sessions) == 0


def test_starting_at_a_unit_out_of_scope_is_404(browser, world, sessions):
    r = browser("applicant_a1").post(
        "/start/grant",
        {"org_unit_id": str(world.units["A2v"].id), "name": "x", "amount": "1", "depts": "agri"},
    )
    assert r.status_code == 404 and count(sessions) == 0


def test_unknown_workflow_is_404(browser):
    assert browser("applicant_a1").get("/start/nothing").status_code == 404
