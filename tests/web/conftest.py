"""Web fixtures: the app on a fresh database (SQLite and PostgreSQL), the sample world, helpers.

The app runs the sample workflow of ``tests.engine.sample`` with a frozen, movable clock;
CSRF protection stays on, so every POST helper sends the token a real form would carry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from engine import directory
from engine.deadlines import load_year
from engine.scope import Actor, load_actor
from engine.store.models import Instance, User
from tests.conftest import T0
from tests.engine.sample import PASSWORD, build_world, grant_form
from web import create_app

SYSTEM = Actor.system()
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Clock:
    now: datetime

    def advance(self, **kw) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def world(sessions):
    with sessions.begin() as s:
        for year in (2025, 2026):
            load_year(s, year)
        return build_world(s)


@pytest.fixture
def app(db_url, world, clock, tmp_path):
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SHUANGTI_DB": db_url,
            "RUNTIME_FACTORY": "tests.engine.sample:make_runtime",
            "CLOCK": lambda: clock.now,
            "UPLOAD_DIR": str(tmp_path / "attachments"),
        }
    )
    yield app
    app.extensions["shuangti"]["engine"].dispose()


@pytest.fixture
def runtime(app):
    return app.extensions["shuangti"]["runtime"]


class Browser:
    """A test client that logs in as a sample user and sends the CSRF token with each form."""

    def __init__(self, client, password: str = PASSWORD):
        self.client = client
        self.password = password
        self._token = None

    def token(self) -> str:
        if self._token is None:
            self._token = CSRF.search(self.client.get("/login").get_data(as_text=True)).group(1)
        return self._token

    def login(self, username: str, password: str | None = None):
        response = self.client.post(
            "/login",
            data={"username": username, "password": password or self.password, "csrf_token": self.token()},
        )
        self._token = None  # login starts a new session with a new CSRF secret
        return response

    def get(self, path: str, **kw):
        return self.client.get(path, **kw)

    def post(self, path: str, data=None, **kw):
        return self.client.post(path, data={**(data or {}), "csrf_token": self.token()}, **kw)


@pytest.fixture
def browser(app):
    """``browser("town_a1")``: a logged-in client for a sample user (``None``: not logged in)."""

    def make(username: str | None = None) -> Browser:
        b = Browser(app.test_client())
        if username is not None:
            assert b.login(username).status_code == 302
        return b

    return make


@pytest.fixture
def actor(sessions, world, clock):
    def load(name: str) -> Actor:
        with sessions() as s:
            return load_actor(s, world.u[name].id, clock.now)

    return load


ROUTE = [("submit", "applicant_a1"), ("notice_ended", None)]


@pytest.fixture
def make_instance(runtime, sessions, world, actor, clock):
    """``make_instance(amount="50", steps=ROUTE, village="A1v", **form)``: an instance driven by the engine."""

    def make(
        amount: str = "50", steps=tuple(ROUTE), village: str = "A1v", applicant: str = "applicant_a1", **over
    ):
        with sessions.begin() as s:
            inst = runtime.start(
                s,
                "grant",
                actor(applicant),
                org_unit_id=world.units[village].id,
                form=grant_form(amount, **over),
                now=clock.now,
            )
            iid = inst.id
        for trigger, who in steps:
            who = applicant if who == "applicant_a1" else who
            with sessions.begin() as s:
                runtime.fire(
                    s, iid, trigger, SYSTEM if who is None else actor(who), now=clock.now, comment="理由"
                )
        return iid

    return make


@pytest.fixture
def load(sessions):
    """``load(iid)``: the instance as stored now."""

    def get(iid: int) -> Instance:
        with sessions() as s:
            return s.scalars(select(Instance).where(Instance.id == iid)).one()

    return get


@pytest.fixture
def api(app, world, sessions):
    """``api("town_a1")``: a test client sending that user's bearer token."""

    def make(name: str):
        with sessions.begin() as s:
            token = directory.issue_api_token(s, s.get(User, world.u[name].id), now=T0)
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return client

    return make
