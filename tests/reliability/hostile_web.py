"""Shared pieces of the hostile-input web tests: the tests/web fixtures, an API client, row counts."""

from __future__ import annotations

from sqlalchemy import func, select

from engine.store.models import AuditEvent, Instance, Task
from tests.web.conftest import ROUTE, actor, api, app, browser, clock, make_instance, runtime, world

__all__ = ["ROUTE", "actor", "api", "app", "browser", "clock", "make_instance", "runtime", "stored", "world"]



def stored(sessions) -> tuple[int, int, int]:
    """How many instances, tasks and audit events the database holds."""
    with sessions() as s:
        return tuple(s.scalar(select(func.count()).select_from(m)) for m in (Instance, Task, AuditEvent))
