"""The JSON API: bearer tokens or session (with CSRF), and every refusal as JSON with its status."""

from __future__ import annotations

import itertools
import re


def test_bad_token_is_401(app):
    client = app.test_client()
    r = client.get("/api/v1/tasks", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401


def test_tasks_lists_the_users_open_tasks(api, make_instance):
    iid = make_instance()
    body = api("town_a1").get("/api/v1/tasks").get_json()
    assert body["total"] == 1 and body["items"][0]["instance_id"] == iid
    assert body["items"][0]["state"] == "township_review" and body["items"][0]["due_at"].endswith("+00:00")
    assert api("town_a2").get("/api/v1/tasks").get_json()["total"] == 0


def test_start_then_fire_with_expected_version(api, world):
    client = api("applicant_a1")
    form = {"name": "API项目", "amount": "20", "plan": "p", "target": "t", "depts": ["agri"]}
    r = client.post(
        "/api/v1/instances", json={"workflow": "grant", "org_unit_id": world.units["A1v"].id, "form": form}
    )
    assert r.status_code == 201
    inst = r.get_json()
    assert inst["data"]["amount"] == 20_000_000 and inst["state"] == "draft"
    assert [a["trigger"] for a in inst["actions"] if a["allowed"]] == ["submit"]
    r = client.post(
        f"/api/v1/instances/{inst['id']}/fire",
        json={"trigger": "submit", "expected_version": inst["version"]},
    )
    assert r.status_code == 200 and r.get_json()["to_state"] == "notice"


def test_start_with_bad_fields_is_422_per_field(api, world):
    r = api("applicant_a1").post(
        "/api/v1/instances",
        json={"workflow": "grant", "org_unit_id": world.units["A1v"].id, "form": {"amount": "x"}},
    )
    assert r.status_code == 422
    assert set(r.get_json()["fields"]) == {"name", "amount", "depts"}


def test_fire_refusals(api, make_instance, load):
    iid = make_instance(plan="")
    client = api("town_a1")
    version = load(iid).version_id

    r = client.post(
        f"/api/v1/instances/{iid}/fire", json={"trigger": "approve", "expected_version": version - 1}
    )
    assert r.status_code == 409 and r.get_json()["current_version"] == version

    r = client.post(f"/api/v1/instances/{iid}/fire", json={"trigger": "approve", "expected_version": version})
    assert r.status_code == 422 and r.get_json()["reasons"] == ["有实施方案: 没有实施方案 (no plan)"]

    r = client.post(f"/api/v1/instances/{iid}/fire", json={"trigger": "submit"})
    assert r.status_code == 409 and r.get_json()["error"] == "not_possible"

    r = api("applicant_a1").post(f"/api/v1/instances/{iid}/fire", json={"trigger": "approve"})
    assert r.status_code == 403 and r.get_json()["error"] == "forbidden"

    r = api("town_b1").post(f"/api/v1/instances/{iid}/fire", json={"trigger": "approve"})
    assert r.status_code == 404 and r.get_json()["error"] == "not_found"

    r = client.post(f"/api/v1/instances/{iid}/fire", json={"trigger": "approve", "expected_version": "1"})
    assert r.status_code == 422 and "expected_version" in r.get_json()["fields"]

    r = client.post(f"/api/v1/instances/{iid}/fire", data="not json", content_type="application/json")
    assert r.status_code == 422 and "body" in r.get_json()["fields"]
    assert load(iid).version_id == version


def test_session_auth_needs_the_csrf_header_on_post(browser, make_instance, load):
    iid = make_instance()
    b = browser("town_a1")
    url = f"/api/v1/instances/{iid}/fire"
    assert b.client.post(url, json={"trigger": "approve"}).status_code == 400
    assert load(iid).state == "township_review"
    r = b.client.post(url, json={"trigger": "approve"}, headers={"X-CSRFToken": b.token()})
    assert r.status_code == 200 and load(iid).state == "dept_review"


def test_audit_is_verified_and_chained(api, make_instance):
    iid = make_instance()
    body = api("auditor_a").get(f"/api/v1/instances/{iid}/audit").get_json()
    assert body["verified"] is True and body["breaks"] == []
    seqs = body["events"]
    assert [e["action"] for e in seqs] == ["start", "transition", "transition"]
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(seqs))


def test_openapi_describes_every_api_route(app):
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    routes = {
        re.sub(r"<int:\w+>", "{id}", rule.rule.removeprefix("/api/v1"))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1")
    }
    assert routes == set(spec["paths"])
    for path, ops in spec["paths"].items():
        for method in ops:
            rules = [r for r in app.url_map.iter_rules() if r.rule.startswith("/api/v1")]
            assert any(
                re.sub(r"<int:\w+>", "{id}", r.rule.removeprefix("/api/v1")) == path
                and method.upper() in r.methods
                for r in rules
            ), (method, path)
