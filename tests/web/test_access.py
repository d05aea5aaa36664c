"""Who sees what: every instance page and endpoint checks org scope (out of scope is 404)."""

from __future__ import annotations

import pytest

INSTANCE_PATHS = (
    "/instances/{id}",
    "/instances/{id}/diagram.svg",
    "/instances/{id}/audit.csv",
    "/instances/{id}/audit.xlsx",
    "/api/v1/instances/{id}",
    "/api/v1/instances/{id}/audit",
    "/api/v1/instances/{id}/diagram.svg",
)
SEES = ("applicant_a1", "town_a1", "county_a", "dept_finance", "auditor_a")
BLIND = ("applicant_a2", "town_a2", "town_b1", "county_b")


@pytest.fixture
def iid(make_instance):
    return make_instance()


@pytest.mark.parametrize("user", SEES + BLIND)
def test_instance_scope(user, iid, browser):
    """Each user, over every instance path: 200 within their org scope, 404 outside it."""
    b = browser(user)
    got = {path: b.get(path.format(id=iid)).status_code for path in INSTANCE_PATHS}
    assert got == dict.fromkeys(INSTANCE_PATHS, 200 if user in SEES else 404)


def test_missing_instance_is_404(browser):
    b = browser("auditor_a")
    got = {path: b.get(path.format(id=987654)).status_code for path in INSTANCE_PATHS}
    assert got == dict.fromkeys(INSTANCE_PATHS, 404)


PAGES = (
    "/tasks/",
    "/instances/",
    "/start/",
    "/start/grant",
    "/dashboards/deadlines",
    "/admin/",
    "/instances/{id}",
)
API = ("/api/v1/tasks", "/api/v1/instances/{id}", "/api/v1/instances/{id}/audit")
ADMIN_PAGES = (
    "/admin/",
    "/admin/workflows",
    "/admin/workflows/grant/1",
    "/admin/workflows/grant/1/diagram.svg",
)
ADMIN_POSTS = ("/admin/users", "/admin/memberships", "/admin/units", "/admin/substitutes")


def test_pages_need_login_and_the_api_credentials(iid, browser):
    b = browser()
    for path in PAGES:
        r = b.get(path.format(id=iid))
        assert (r.status_code, r.location.split("?")[0]) == (302, "/login"), path
    for path in API:
        r = b.get(path.format(id=iid))
        assert (r.status_code, r.get_json()["error"]) == (401, "unauthorized"), path


@pytest.mark.parametrize("user", ["town_a1", "auditor_a"])
def test_admin_is_forbidden_to_others(user, browser):
    b = browser(user)
    got = {p: b.get(p).status_code for p in ADMIN_PAGES} | {p: b.post(p, {}).status_code for p in ADMIN_POSTS}
    assert got == dict.fromkeys(ADMIN_PAGES + ADMIN_POSTS, 403)
