"""The audit chain: every change is one chained event; tampering is found; the table is append-only."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError

from engine import audit
from engine.store.models import AuditEvent, AuditStream
from tests.engine.helpers import TO_TOWNSHIP, start_grant, walk


@pytest.fixture
def trail(runtime, sessions, actor, world):
    """An instance with five chained events: start, submit, notice_ended, approve, return."""
    iid = start_grant(runtime, sessions, actor, world)
    walk(runtime, sessions, actor, iid, [*TO_TOWNSHIP, ("approve", "town_a1"), ("return", "dept_agri")])
    return audit.instance_stream(iid)


def _events(session, stream_key):
    stream = session.scalars(select(AuditStream).where(AuditStream.key == stream_key)).one()
    return session.scalars(
        select(AuditEvent).where(AuditEvent.stream_id == stream.id).order_by(AuditEvent.seq)
    ).all()


def _tamper(session, sql, **params):
    """Bypass the append-only trigger, as a database owner with bad intent could."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET session_replication_role = replica"))
        session.execute(text(sql), params)
        session.execute(text("SET session_replication_role = DEFAULT"))
    else:
        session.execute(text("DROP TRIGGER IF EXISTS audit_event_no_update"))
        session.execute(text("DROP TRIGGER IF EXISTS audit_event_no_delete"))
        session.execute(text(sql), params)


def test_every_change_is_one_event_with_its_facts(trail, sessions, world):
    with sessions() as s:
        events = _events(s, trail)
        assert [e.action for e in events] == ["start", "transition", "transition", "transition", "transition"]
        assert [(e.from_state, e.to_state) for e in events] == [
            (None, "draft"),
            ("draft", "notice"),
            ("notice", "township_review"),
            ("township_review", "dept_review"),
            ("dept_review", "draft"),
        ]
        ret = events[-1]
        assert (ret.actor_name, ret.role, ret.org_unit_id, ret.comment) == (
            "dept_agri",
            "dept_reviewer",
            world.units["A-agri"].id,
            "理由",
        )
        assert events[2].role == "SYSTEM" and events[2].actor_id is None
        assert all(e.prev_hash == p.hash for p, e in itertools.pairwise(events))
        assert audit.verify(s) == []


def test_an_edited_event_is_found(trail, sessions):
    with sessions.begin() as s:
        victim = _events(s, trail)[2]
        _tamper(s, "UPDATE audit_event SET comment = 'forged' WHERE id = :id", id=victim.id)
    with sessions() as s:
        breaks = audit.verify(s)
    assert [(b.stream, b.seq) for b in breaks] == [(trail, 3)]
    assert "edited" in breaks[0].reason


def test_a_deleted_event_is_found(trail, sessions):
    with sessions.begin() as s:
        _tamper(s, "DELETE FROM audit_event WHERE id = :id", id=_events(s, trail)[1].id)
    with sessions() as s:
        breaks = audit.verify(s)
    assert [(b.stream, b.seq) for b in breaks] == [(trail, 2)] and "deleted" in breaks[0].reason


def test_a_deleted_last_event_is_found(trail, sessions):
    with sessions.begin() as s:
        _tamper(s, "DELETE FROM audit_event WHERE id = :id", id=_events(s, trail)[-1].id)
    with sessions() as s:
        breaks = audit.verify(s)
    assert [(b.stream, b.seq) for b in breaks] == [(trail, 5)] and "deleted at the end" in breaks[0].reason


def test_reordered_events_are_found(trail, sessions):
    with sessions.begin() as s:
        a, b = _events(s, trail)[2:4]
        _tamper(s, "UPDATE audit_event SET seq = -1 WHERE id = :id", id=a.id)
        _tamper(s, "UPDATE audit_event SET seq = :seq WHERE id = :id", seq=a.seq, id=b.id)
        _tamper(s, "UPDATE audit_event SET seq = :seq WHERE id = :id", seq=b.seq, id=a.id)
    with sessions() as s:
        breaks = audit.verify(s)
    assert [(b.stream, b.seq) for b in breaks] == [(trail, 3)] and "reordered" in breaks[0].reason


@pytest.mark.parametrize("sql", ["UPDATE audit_event SET comment = 'x'", "DELETE FROM audit_event"])
def test_the_database_refuses_changes_to_the_audit_table(trail, sessions, sql):
    with pytest.raises(DatabaseError, match="append-only"), sessions.begin() as s:
        s.execute(text(sql))


def test_cli_verify_names_the_first_broken_event(trail, sessions, db_url):
    ok = subprocess.run(
        [sys.executable, "-m", "web.cli", "--db", db_url, "audit", "verify"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0 and "verified" in ok.stdout
    with sessions.begin() as s:
        victim = _events(s, trail)[3]
        _tamper(s, "UPDATE audit_event SET actor_name = 'someone else' WHERE id = :id", id=victim.id)
    bad = subprocess.run(
        [sys.executable, "-m", "web.cli", "--db", db_url, "audit", "verify"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1
    assert f"BROKEN {trail} event #4 (id {victim.id})" in bad.stdout
