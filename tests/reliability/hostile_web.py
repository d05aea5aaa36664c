"""Shared pieces of the hostile-input web tests: the tests/web fixtures, an API client, row counts."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine import directory
from engine.store.models import AuditEvent, Instance, Task, User
from tests.conftest import T0
from tests.web.conftest import ROUTE, actor, app, browser, clock, make_instance, runtime, world

__all__ = ["ROUTE", "actor", "api", "app", "browser", "clock", "make_instance", "runtime", "stored", "world"]


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


def stored(sessions) -> tuple[int, int, int]:
    """How many instances, tasks and audit events the database holds."""
    with sessions() as s:
        return tuple(s.scalar(select(func.count()).select_from(m)) for m in (Instance, Task, AuditEvent))
