"""Crash worker: fire one transition in a child process and SIGKILL it at a chosen point.

The fault is injected without touching the engine: SQLAlchemy events on the child's own
engine count the statements the fire sends and kill the process before the k-th one
(``before_cursor_execute``), just before COMMIT (the connection's ``commit`` event) or just
after the transaction has committed. With ``kill_at=None`` the fire completes and the child
reports how many statements it sent, which is how the test learns the kill points.
"""

from __future__ import annotations

import os
import signal

from sqlalchemy import event, select

from engine.scope import load_actor
from engine.store.db import make_engine, session_factory
from engine.store.models import AuditEvent, AuditStream, DeadlineRow, Instance, Notification, Task
from tests.engine.sample import make_runtime
from tests.reliability.concurrency_worker import LATER

BEFORE_COMMIT = "before-commit"
AFTER_COMMIT = "after-commit"
TRIGGER = "approve"
"""The fire under test: township approval of a 50万 grant (closes a task and a clock, opens a
two-party countersign with its notifications, appends an audit event)."""


def die(*_args) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def fire_and_die(url: str, iid: int, user_id: int, kill_at, results) -> None:
    """Fire ``TRIGGER`` on ``iid``; die at ``kill_at`` (statement number, BEFORE_COMMIT, AFTER_COMMIT).

    If it lives (``kill_at=None``), put ``(statements sent by the fire, new version)`` on ``results``.
    """
    engine = make_engine(url)
    sessions = session_factory(engine)
    runtime = make_runtime()
    with sessions() as s:
        who = load_actor(s, user_id, LATER)
    sent = 0

    @event.listens_for(engine, "before_cursor_execute")
    def count(*_args):
        nonlocal sent
        sent += 1
        if sent == kill_at:
            die()

    if kill_at == BEFORE_COMMIT:
        event.listen(engine, "commit", die)
    with sessions.begin() as s:
        result = runtime.fire(s, iid, TRIGGER, who, now=LATER, comment="同意")
    if kill_at == AFTER_COMMIT:
        die()
    results.put((sent, result.version))
    engine.dispose()


def snapshot(sessions, iid: int) -> dict[str, object]:
    """Everything a fire may change about one instance, without row ids (comparable across instances)."""
    with sessions() as s:
        inst = s.get(Instance, iid)
        stream = s.scalars(select(AuditStream).where(AuditStream.key == f"instance:{iid}")).one()

        def rows(*columns, where):
            return sorted((tuple(r) for r in s.execute(select(*columns).where(where))), key=repr)

        return {
            "instance": (
                inst.state,
                inst.status,
                inst.version_id,
                inst.previous_state,
                inst.returned_from,
                inst.entered_at,
                inst.updated_at,
                inst.data,
            ),
            "tasks": rows(
                Task.state,
                Task.party,
                Task.role,
                Task.status,
                Task.outcome,
                Task.comment,
                Task.due_at,
                Task.closed_at,
                where=Task.instance_id == iid,
            ),
            "clocks": rows(
                DeadlineRow.state,
                DeadlineRow.kind,
                DeadlineRow.status,
                DeadlineRow.due_at,
                where=DeadlineRow.instance_id == iid,
            ),
            "audit": rows(
                AuditEvent.seq,
                AuditEvent.action,
                AuditEvent.trigger,
                AuditEvent.from_state,
                AuditEvent.to_state,
                where=AuditEvent.instance_id == iid,
            ),
            "audit_stream_length": stream.length,
            "notifications": rows(
                Notification.user_id, Notification.kind, where=Notification.instance_id == iid
            ),
        }
