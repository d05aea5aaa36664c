"""Authentication hardening: CSRF on every form and API write, session fixation, passwords never stored or logged.

The write endpoints come from the route table; each needs a rule in the access matrix's table,
which also gives the path and a role allowed to call it.
"""

from __future__ import annotations

import json
import logging

from sqlalchemy import JSON, String, Text, select

from engine import directory
from engine.store.models import Base, User
from tests.conftest import T0
from tests.reliability.access_world import ROLES, browser, fingerprint, world
from tests.reliability.test_access_matrix import ACCESS, Case, cases, values

__all__ = ["world"]

WRITES = {"POST", "PUT", "PATCH", "DELETE"}
CSRF_PAGE = "表单已失效"


def write_endpoints(app, api: bool) -> dict[str, set[str]]:
    """Endpoint → its write methods, for the HTML app (``api=False``) or the JSON API."""
    return {
        r.endpoint: r.methods & WRITES
        for r in app.url_map.iter_rules()
        if r.methods & WRITES and r.rule.startswith("/api/") == api
    }


def allowed_case(endpoint: str, method: str) -> Case:
    """The first case of the matrix where the caller may use the endpoint (anonymous only on public ones)."""
    assert endpoint in ACCESS, f"no access rule for endpoint {endpoint}"

    def allowed(c: Case) -> bool:
        if c.role == "anonymous":
            return c.rule.anon is not None
        return not c.hidden and c.expected != 403

    return next(c for c in cases() if c.endpoint == endpoint and c.rule.method == method and allowed(c))


def logged_in(w) -> dict:
    """One logged-in client per role, made once (each login is audited, so before any fingerprint)."""
    if "browsers" not in w.cache:
        w.cache["browsers"] = {role: browser(w, role) for role in ROLES}
    return w.cache["browsers"]


def request_of(w, case: Case) -> tuple[str, dict[str, str]]:
    ids = values(w, case)
    return case.rule.path.format(**ids), {k: v.format(**ids) for k, v in case.rule.data}


def test_every_html_write_needs_the_sessions_csrf_token(world):
    """Each HTML write, without a token or with another session's valid token: 400, nothing changes."""
    endpoints = write_endpoints(world.app, api=False)
    assert {
        "auth.login",
        "auth.logout",
        "instances.fire",
        "admin.add_user",
        "approvals.urge",
    } <= endpoints.keys()
    someone_elses, clients = browser(world, "anonymous").token(), logged_in(world)
    faults, before = [], fingerprint(world.sessions)
    for endpoint, methods in sorted(endpoints.items()):
        for method in sorted(methods):
            case = allowed_case(endpoint, method)
            path, data = request_of(world, case)
            client = clients[case.role].client
            for token in (None, someone_elses):
                form = data if token is None else {**data, "csrf_token": token}
                r = client.open(path, method=method, data=form)
                if r.status_code != 400 or CSRF_PAGE not in r.get_data(as_text=True):
                    faults.append(
                        f"{endpoint} {method} {path} as {case.role}, token {token!r}: {r.status_code}"
                    )
    assert not faults, "\n".join(faults)
    assert fingerprint(world.sessions) == before


def test_api_writes_on_a_session_cookie_need_the_csrf_header(world):
    """The API takes a bearer token, or the browser session with X-CSRFToken: a cookie alone writes nothing."""
    endpoints = write_endpoints(world.app, api=True)
    assert len(endpoints) >= 10
    someone_elses, clients = browser(world, "anonymous").token(), logged_in(world)
    faults, before = [], fingerprint(world.sessions)
    for endpoint, methods in sorted(endpoints.items()):
        for method in sorted(methods):
            case = allowed_case(endpoint, method)
            path, _data = request_of(world, case)
            client = clients[case.role].client
            for headers in ({}, {"X-CSRFToken": someone_elses}):
                r = client.open(path, method=method, json={}, headers=headers)
                if r.status_code != 400 or r.get_json()["error"] != "csrf":
                    faults.append(
                        f"{endpoint} {method} {path} as {case.role} with {headers}: {r.status_code}"
                    )
    assert not faults, "\n".join(faults)
    assert fingerprint(world.sessions) == before


def test_the_api_refuses_a_bad_bearer_token_even_beside_a_valid_session(world):
    """A wrong bearer token is 401 although the cookie is logged in; a deactivated holder's token too."""
    b = browser(world, "township")
    lq = world.instances["LQ"]
    assert b.client.get(f"/api/v1/instances/{lq}").status_code == 200
    assert (
        b.client.get(f"/api/v1/instances/{lq}", headers={"Authorization": "Bearer nope"}).status_code == 401
    )
    bearer = {"Authorization": f"Bearer {world.tokens['township']}"}
    assert world.app.test_client().get(f"/api/v1/instances/{lq}", headers=bearer).status_code == 200
    with world.sessions.begin() as s:
        spare = s.get(User, world.users["spare_kd"])
        token = directory.issue_api_token(s, spare, now=T0)
    spare_bearer = {"Authorization": f"Bearer {token}"}
    assert world.app.test_client().get("/api/v1/tasks", headers=spare_bearer).status_code == 200
    with world.sessions.begin() as s:
        directory.deactivate(s, s.get(User, world.users["spare_kd"]), now=T0)
    assert world.app.test_client().get("/api/v1/tasks", headers=spare_bearer).status_code == 401


def test_a_bearer_write_and_a_session_write_with_the_header_reach_the_engine(world):
    """The CSRF refusal above is the only thing stopping those writes: with credentials they are judged."""
    path = f"/api/v1/instances/{world.instances['LQ']}/fire"
    bearer = {"Authorization": f"Bearer {world.tokens['township']}"}
    r = world.app.test_client().post(path, json={"trigger": "nope"}, headers=bearer)
    assert r.status_code == 409, r.get_json()
    b = browser(world, "township")
    page = b.client.get(f"/instances/{world.instances['LQ']}").get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    r = b.client.post(path, json={"trigger": "nope"}, headers={"X-CSRFToken": token})
    assert r.status_code == 409, r.get_json()


def session_cookie(client) -> str:
    return client.get_cookie("session").value


def test_a_pre_login_session_cookie_is_not_the_logged_in_session(world):
    """Login issues a new session cookie; the cookie from before login, replayed afterwards, is not logged in."""
    b = browser(world, "anonymous")
    b.token()
    before = session_cookie(b.client)
    assert b.login(ROLES["township"]).status_code == 302
    after = session_cookie(b.client)
    assert after != before
    assert b.client.get("/tasks/").status_code == 200
    replay = world.app.test_client()
    replay.set_cookie("session", before)
    r = replay.get("/tasks/")
    assert (r.status_code, r.location.split("?")[0]) == (302, "/login")
    replay.set_cookie("session", after)
    assert replay.get("/tasks/").status_code == 200, "the control: the logged-in cookie itself works"


def test_a_csrf_token_from_before_login_is_refused_after_login(world):
    """Whoever planted the pre-login cookie knows its CSRF token; after login it must no longer be accepted."""
    b = browser(world, "anonymous")
    planted = b.token()
    assert b.login(ROLES["township"]).status_code == 302
    r = b.client.post("/lang", data={"lang": "zh", "csrf_token": planted})
    assert r.status_code == 400


def test_a_session_cookie_copied_before_logout_is_refused_after_it(world):
    """Logout ends every session of the user: a cookie copied from another browser stops working."""
    with world.sessions.begin() as s:
        directory.add_user(s, username="logout_probe", display_name="退出探针", password=PASSWORD_NEW, now=T0)
    b = browser(world, "anonymous")
    assert b.login("logout_probe", PASSWORD_NEW).status_code == 302
    copied = world.app.test_client()
    copied.set_cookie("session", session_cookie(b.client))
    assert copied.get("/tasks/").status_code == 200, "the control: a copied cookie works while logged in"

    assert b.post("/logout").status_code == 302

    r = copied.get("/tasks/")
    assert (r.status_code, r.location.split("?")[0]) == (302, "/login")
    again = browser(world, "anonymous")
    assert again.login("logout_probe", PASSWORD_NEW).status_code == 302
    assert again.client.get("/tasks/").status_code == 200, "a new login gets a working session"


PASSWORD_NEW = "Fresh-Pass-7361-xyz"
PASSWORD_WRONG = "Wrong-Guess-9152-abc"


def text_columns():
    """Every (table, column) that can hold text: strings, texts and JSON."""
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, String | Text | JSON):
                yield table, column


def test_passwords_are_hashed_and_never_stored_logged_or_audited(world, caplog):
    """Add a user, log in, fail a login: neither password is in any text column, log record or page."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    admin = browser(world, "admin")
    form = {
        "username": "pw_probe",
        "display_name": "口令探针",
        "password": PASSWORD_NEW,
        "role": "township_reviewer",
        "org_unit_id": str(world.units["51332202"]),
    }
    assert admin.post("/admin/users", form).status_code == 302
    assert browser(world, "anonymous").login("pw_probe", PASSWORD_NEW).status_code == 302
    for username in ("pw_probe", "nobody"):
        r = browser(world, "anonymous").login(username, PASSWORD_WRONG)
        assert r.status_code == 401 and PASSWORD_WRONG not in r.get_data(as_text=True)
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert "user_account" in logged, "the capture holds SQLAlchemy's statements"
    assert PASSWORD_NEW not in logged and PASSWORD_WRONG not in logged
    scanned, found = set(), []
    with world.sessions() as s:
        for table, column in text_columns():
            scanned.add(table.name)
            for value in s.execute(select(column)).scalars():
                text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                found += [f"{table.name}.{column.name}" for p in (PASSWORD_NEW, PASSWORD_WRONG) if p in text]
        stored = s.scalars(select(User.password_hash).where(User.username == "pw_probe")).one()
    assert {"user_account", "audit_event", "notification"} <= scanned
    assert not found
    assert stored.startswith(("scrypt:", "pbkdf2:")) and PASSWORD_NEW not in stored
