"""Administration: users, roles, units and acting officers through engine.directory, within scope."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from engine import directory
from engine.clock import local
from engine.store.models import AuditEvent, OrgUnit, Substitute, User
from tests.conftest import T0
from tests.engine.sample import PASSWORD


@pytest.fixture
def admins(sessions, world):
    """``root`` administers the province; ``admin_a`` only county A."""
    with sessions.begin() as s:
        for name, unit in (("root", "prov"), ("admin_a", "A")):
            user = directory.add_user(s, username=name, display_name=name, password=PASSWORD, now=T0)
            directory.grant(s, user, "admin", s.get(OrgUnit, world.units[unit].id), now=T0)


def test_admin_page_lists_users_and_units_in_scope(admins, browser):
    html = browser("admin_a").get("/admin/").get_data(as_text=True)
    assert "town_a1" in html and "town_b1" not in html
    assert "A1v" in html and "B1v" not in html
    assert "town_b1" in browser("root").get("/admin/").get_data(as_text=True)


def test_add_user_who_can_then_log_in(admins, browser, world, sessions):
    b = browser("admin_a")
    form = {
        "username": "town_a1_new",
        "display_name": "新审核员",
        "password": "new-password-1",
        "role": "township_reviewer",
        "org_unit_id": str(world.units["A1"].id),
    }
    assert b.post("/admin/users", form).status_code == 302
    assert browser().login("town_a1_new", "new-password-1").status_code == 302
    with sessions() as s:
        event = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "add_user").order_by(AuditEvent.id.desc())
        ).first()
        assert event.actor_name == "admin_a" and event.detail == {"username": "town_a1_new"}


def test_bad_user_form_is_422_and_saves_nothing(admins, browser, world, sessions):
    b = browser("admin_a")
    form = {
        "username": "x1",
        "password": "short",
        "role": "township_reviewer",
        "org_unit_id": str(world.units["A1"].id),
    }
    r = b.post("/admin/users", form)
    assert r.status_code == 422 and "至少8位" in r.get_data(as_text=True)
    form.update(password="long-enough-1")
    r = b.post("/admin/users", {**form, "username": "town_a1"})
    assert r.status_code == 422 and "already exists" in r.get_data(as_text=True)
    r = b.post("/admin/users", {**form, "role": "emperor"})
    assert r.status_code == 422 and "未知角色" in r.get_data(as_text=True)
    with sessions() as s:
        assert s.scalars(select(User).where(User.username == "x1")).first() is None


def test_units_and_grants_outside_the_admins_scope_are_refused(admins, browser, world):
    b = browser("admin_a")
    r = b.post(
        "/admin/units",
        {"code": "B9", "name": "B9", "kind": "township", "parent_id": str(world.units["B"].id)},
    )
    assert r.status_code == 422 and "管辖范围" in r.get_data(as_text=True)
    r = b.post(
        "/admin/memberships",
        {
            "user_id": str(world.u["town_b1"].id),
            "role": "township_reviewer",
            "org_unit_id": str(world.units["A1"].id),
        },
    )
    assert r.status_code == 404
    r = b.post(
        "/admin/units",
        {"code": "A3", "name": "新乡", "kind": "township", "parent_id": str(world.units["A"].id)},
    )
    assert r.status_code == 302
    assert "新乡" in b.get("/admin/").get_data(as_text=True)


def test_acting_officer_acts_on_behalf_and_the_trail_says_so(
    admins, browser, world, make_instance, load, clock
):
    iid = make_instance()
    b = browser("admin_a")
    start = local(clock.now - timedelta(hours=1))
    form = {
        "user_id": str(world.u["town_a1"].id),
        "substitute_id": str(world.u["town_a2"].id),
        "starts_at": start.strftime("%Y-%m-%dT%H:%M"),
        "ends_at": (start + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M"),
    }
    assert b.post("/admin/substitutes", form).status_code == 302
    acting = browser("town_a2")
    r = acting.post(
        f"/instances/{iid}/fire", {"trigger": "approve", "expected_version": str(load(iid).version_id)}
    )
    assert r.status_code == 302
    html = acting.get(f"/instances/{iid}").get_data(as_text=True)
    assert re.search(r"town_a2 <small>\(代 town_a1\)</small>", html)
    bad = b.post("/admin/substitutes", {**form, "ends_at": form["starts_at"]})
    assert bad.status_code == 422 and "结束时间须晚于开始时间" in bad.get_data(as_text=True)


def test_workflow_definitions_are_shown_read_only(admins, browser):
    b = browser("root")
    assert "/admin/workflows/grant/1" in b.get("/admin/workflows").get_data(as_text=True)
    html = b.get("/admin/workflows/grant/1").get_data(as_text=True)
    assert "乡镇审核" in html and "5个工作日" in html and "有实施方案" in html
    svg = b.get("/admin/workflows/grant/1/diagram.svg")
    assert svg.mimetype == "image/svg+xml" and "村内公示" in svg.get_data(as_text=True)
    assert b.get("/admin/workflows/grant/9").status_code == 404
    assert b.get("/admin/workflows/nothing/1").status_code == 404


def test_revoke_a_role_within_scope(admins, browser, sessions, world):
    with sessions() as s:
        user = s.get(User, world.u["town_a1"].id)
        (mine,) = [m.id for m in user.memberships]
        (theirs,) = [m.id for m in s.get(User, world.u["town_b1"].id).memberships]
    b = browser("admin_a")
    assert f"/admin/memberships/{mine}/revoke" in b.get("/admin/").get_data(as_text=True)
    assert b.client.post(f"/admin/memberships/{mine}/revoke").status_code == 400, "no CSRF token"
    assert b.post(f"/admin/memberships/{theirs}/revoke").status_code == 404
    assert browser("town_a2").post(f"/admin/memberships/{mine}/revoke").status_code == 403
    assert b.post(f"/admin/memberships/{mine}/revoke").status_code == 302
    with sessions() as s:
        assert s.get(User, world.u["town_a1"].id).memberships == []
        assert (
            s.scalars(select(AuditEvent).where(AuditEvent.action == "revoke")).one().actor_name == "admin_a"
        )


def test_deactivate_a_user_who_then_cannot_log_in(admins, browser, world, sessions):
    b = browser("admin_a")
    assert b.post(f"/admin/users/{world.u['town_b1'].id}/deactivate").status_code == 404
    with sessions() as s:
        admin_id = s.scalars(select(User.id).where(User.username == "admin_a")).one()
    assert b.post(f"/admin/users/{admin_id}/deactivate").status_code == 409
    assert b.post(f"/admin/users/{world.u['town_a1'].id}/deactivate").status_code == 302
    assert browser().login("town_a1").status_code == 401
    assert "停用" in b.get("/admin/").get_data(as_text=True)


def test_end_an_acting_period(admins, browser, world, sessions, clock):
    with sessions.begin() as s:
        row = directory.name_substitute(
            s,
            s.get(User, world.u["town_a1"].id),
            s.get(User, world.u["town_a1_b"].id),
            starts_at=T0,
            ends_at=T0 + timedelta(days=5),
            now=T0,
        )
        row_id = row.id
    assert browser("root").post(f"/admin/substitutes/{row_id}/end").status_code == 302
    with sessions() as s:
        assert s.get(Substitute, row_id).ends_at == clock.now
    r = browser("root").post(f"/admin/substitutes/{row_id}/end")
    assert r.status_code == 422 and "代理已结束" in r.get_data(as_text=True)
    assert browser("root").post("/admin/substitutes/999999/end").status_code == 404


def test_issue_an_api_token_shown_once(admins, app, browser, world, sessions):
    b = browser("admin_a")
    assert b.post(f"/admin/users/{world.u['town_b1'].id}/token").status_code == 404
    r = b.post(f"/admin/users/{world.u['town_a1'].id}/token")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    token = re.search(r'<code id="token">([^<]+)</code>', r.get_data(as_text=True)).group(1)
    api = app.test_client().get("/api/v1/tasks", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 200
    assert token not in b.get("/admin/").get_data(as_text=True)
    with sessions() as s:
        assert s.get(User, world.u["town_a1"].id).api_token_hash == directory.token_hash(token)


def test_only_admins_see_the_admin_link(admins, browser):
    assert 'href="/admin/"' in browser("admin_a").get("/tasks/").get_data(as_text=True)
    assert 'href="/admin/"' not in browser("town_a1").get("/tasks/").get_data(as_text=True)
    assert browser("town_a1").get("/admin/").status_code == 403
