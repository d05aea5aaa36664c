"""Tampering with the audit table directly: ``shuangti audit verify`` fails and names the first bad event.

Each case edits ``audit_event`` (or ``audit_stream``) with SQL, as someone with the database
owner's rights could, and runs the CLI's ``main``: it must exit 1 and print the stream, the
seq and, where the row still exists, the id of the first bad event. On PostgreSQL the
application's role cannot do any of this: UPDATE, DELETE and TRUNCATE are refused by the
append-only trigger, and only a superuser (or the table owner) can switch the trigger off,
which these tests do first (``session_replication_role = replica``). The basic edit, delete
and reorder cases on the engine's API are in ``tests/engine/test_audit.py``.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError

from engine import audit
from engine.deadlines import load_year
from engine.scope import load_actor
from engine.store.db import make_engine, session_factory
from engine.store.models import AuditEvent, AuditStream
from tests.conftest import T0
from tests.engine.helpers import TO_TOWNSHIP, start_grant, walk
from tests.engine.sample import build_world, make_runtime
from web import cli


def _make_trail(sessions):
    """Two instances with five chained events each; return the first one's stream, which tests tamper with."""
    runtime = make_runtime()
    with sessions.begin() as s:
        for year in (2025, 2026):
            load_year(s, year)
        world = build_world(s)

    def actor(name, now=T0):
        with sessions() as s:
            return load_actor(s, world.u[name].id, now)

    streams = []
    for _ in range(2):
        iid = start_grant(runtime, sessions, actor, world)
        walk(runtime, sessions, actor, iid, [*TO_TOWNSHIP, ("approve", "town_a1"), ("return", "dept_agri")])
        streams.append(audit.instance_stream(iid))
    return streams[0]


@pytest.fixture
def trail(sessions):
    return _make_trail(sessions)


@pytest.fixture
def pg_sessions(pg_url):
    engine = make_engine(pg_url)
    yield session_factory(engine)
    engine.dispose()


def _events(s, key):
    stream = s.scalars(select(AuditStream).where(AuditStream.key == key)).one()
    return s.scalars(
        select(AuditEvent).where(AuditEvent.stream_id == stream.id).order_by(AuditEvent.seq)
    ).all()


def _sql(s, sql, **params):
    """Run ``sql`` with the append-only trigger out of the way (superuser on PostgreSQL)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SET session_replication_role = replica"))
        s.execute(text(sql), params)
        s.execute(text("SET session_replication_role = DEFAULT"))
    else:
        s.execute(text("DROP TRIGGER IF EXISTS audit_event_no_update"))
        s.execute(text("DROP TRIGGER IF EXISTS audit_event_no_delete"))
        s.execute(text(sql), params)


def _rehash(s, key, ev, prev_hash):
    """Give ``ev`` (as it now reads in the database) a correct hash chained to ``prev_hash``."""
    s.expire_all()
    ev = s.get(AuditEvent, ev.id)
    digest = audit.event_hash(key, prev_hash, ev.at, {k: getattr(ev, k) for k in audit._HASHED})
    _sql(
        s, "UPDATE audit_event SET prev_hash = :p, hash = :h WHERE id = :id", p=prev_hash, h=digest, id=ev.id
    )
    return digest


def _forge(s, key, like, seq, prev_hash):
    """INSERT a forged event at ``seq``, a copy of ``like`` with another comment, correctly hashed."""
    fields = {k: getattr(like, k) for k in audit._HASHED} | {
        "seq": seq,
        "comment": "伪造 (forged)",
        "idempotency_key": None,
    }
    at = like.at + timedelta(minutes=1)
    forged = AuditEvent(
        stream_id=like.stream_id,
        at=at,
        prev_hash=prev_hash,
        hash=audit.event_hash(key, prev_hash, at, fields),
        **fields,
    )
    s.add(forged)
    s.flush()
    return forged


def edit(field, value):
    def tamper(s, key, ev):
        _sql(s, f"UPDATE audit_event SET {field} = :v WHERE id = :id", v=value, id=ev[2].id)
        return 3, ev[2].id, "edited"

    return tamper


def delete_middle(s, key, ev):
    _sql(s, "DELETE FROM audit_event WHERE id = :id", id=ev[1].id)
    return 2, None, "missing (deleted)"


def delete_middle_and_renumber(s, key, ev):
    _sql(s, "DELETE FROM audit_event WHERE id = :id", id=ev[1].id)
    for e in ev[2:]:
        _sql(s, "UPDATE audit_event SET seq = seq - 1 WHERE id = :id", id=e.id)
    return 2, ev[2].id, "does not follow"


def delete_last(s, key, ev):
    _sql(s, "DELETE FROM audit_event WHERE id = :id", id=ev[4].id)
    return 5, None, "deleted at the end"


def delete_first(s, key, ev):
    _sql(s, "DELETE FROM audit_event WHERE id = :id", id=ev[0].id)
    return 1, None, "missing (deleted)"


def swap_seq(s, key, ev):
    a, b = ev[2], ev[3]
    _sql(s, "UPDATE audit_event SET seq = -1 WHERE id = :id", id=a.id)
    _sql(s, "UPDATE audit_event SET seq = :seq WHERE id = :id", seq=a.seq, id=b.id)
    _sql(s, "UPDATE audit_event SET seq = :seq WHERE id = :id", seq=b.seq, id=a.id)
    return 3, b.id, "reordered"


def swap_rows(s, key, ev):
    """Swap two rows' ids as well as their seqs, so the id order still matches the seq order."""
    a, b = ev[2], ev[3]
    spare = max(e.id for e in ev) + 1000
    _sql(s, "UPDATE audit_event SET id = :spare, seq = -1 WHERE id = :id", spare=spare, id=a.id)
    _sql(s, "UPDATE audit_event SET id = :to, seq = :seq WHERE id = :id", to=a.id, seq=a.seq, id=b.id)
    _sql(s, "UPDATE audit_event SET id = :to, seq = :seq WHERE id = :id", to=b.id, seq=b.seq, id=spare)
    return 3, a.id, "reordered"


def insert_middle(s, key, ev):
    for e in reversed(ev[2:]):
        _sql(s, "UPDATE audit_event SET seq = seq + 1 WHERE id = :id", id=e.id)
    forged = _forge(s, key, ev[2], 3, ev[1].hash)
    return 3, forged.id, "inserted"


def insert_end(s, key, ev):
    forged = _forge(s, key, ev[4], 6, ev[4].hash)
    return 6, forged.id, "beyond the stream head"


def insert_end_and_count_it(s, key, ev):
    forged = _forge(s, key, ev[4], 6, ev[4].hash)
    s.execute(text("UPDATE audit_stream SET length = 6 WHERE key = :k"), {"k": key})
    return 6, forged.id, "stream head"


def rehash_middle(s, key, ev):
    _sql(s, "UPDATE audit_event SET comment = 'forged' WHERE id = :id", id=ev[2].id)
    _rehash(s, key, ev[2], ev[1].hash)
    return 3, ev[2].id, "re-hashed"


def rehash_last(s, key, ev):
    _sql(s, "UPDATE audit_event SET to_state = 'granted' WHERE id = :id", id=ev[4].id)
    _rehash(s, key, ev[4], ev[3].hash)
    return 5, ev[4].id, "stream head"


def rehash_chain_but_not_head(s, key, ev):
    """Rewrite event 3 and re-chain every event after it, but leave the stream head alone."""
    _sql(s, "UPDATE audit_event SET comment = 'forged' WHERE id = :id", id=ev[2].id)
    prev = ev[1].hash
    for e in ev[2:]:
        prev = _rehash(s, key, e, prev)
    return 5, ev[4].id, "stream head"


def delete_stream(s, key, ev):
    _sql(s, "DELETE FROM audit_event WHERE stream_id = :id", id=ev[0].stream_id)
    s.execute(text("DELETE FROM audit_stream WHERE key = :k"), {"k": key})
    return 1, None, "no audit stream"


CASES = {
    "edit comment": edit("comment", "改过的意见"),
    "edit actor_name": edit("actor_name", "someone else"),
    "edit to_state": edit("to_state", "granted"),
    "edit at": edit("at", T0 - timedelta(days=1)),
    "edit detail": edit("detail", '{"form_diff": {}}'),
    "delete first": delete_first,
    "delete middle": delete_middle,
    "delete middle, renumber the rest": delete_middle_and_renumber,
    "delete last": delete_last,
    "reorder (swap seq)": swap_seq,
    "reorder (swap ids and seq)": swap_rows,
    "insert forged in the middle": insert_middle,
    "insert forged at the end": insert_end,
    "insert forged at the end, stream length raised": insert_end_and_count_it,
    "edit + re-hash a middle event": rehash_middle,
    "edit + re-hash the last event": rehash_last,
    "edit + re-chain to the end, head untouched": rehash_chain_but_not_head,
    "delete the whole stream (events and head)": delete_stream,
}


@pytest.mark.parametrize("case", CASES)
def test_cli_names_the_first_bad_event(case, trail, sessions, db_url, capsys):
    assert cli.main(["--db", db_url, "audit", "verify"]) == 0
    capsys.readouterr()
    with sessions.begin() as s:
        seq, event_id, reason = CASES[case](s, trail, _events(s, trail))
    with sessions() as s:
        breaks = audit.verify(s)
    assert [(b.stream, b.seq, b.event_id) for b in breaks] == [(trail, seq, event_id)]
    assert reason in breaks[0].reason
    assert cli.main(["--db", db_url, "audit", "verify"]) == 1
    out = capsys.readouterr().out.splitlines()
    named = f"BROKEN {trail} event #{seq}" + (f" (id {event_id})" if event_id else "")
    assert len(out) == 1 and out[0].startswith(named)


def test_cli_names_only_the_stream_asked_for(trail, sessions, db_url, capsys):
    with sessions.begin() as s:
        edit("comment", "x")(s, trail, _events(s, trail))
    other = f"instance:{int(trail.split(':')[1]) + 1}"
    assert cli.main(["--db", db_url, "audit", "verify", "--stream", other]) == 0
    assert cli.main(["--db", db_url, "audit", "verify", "--stream", trail]) == 1
    assert f"BROKEN {trail} event #3" in capsys.readouterr().out


def test_an_emptied_table_breaks_every_stream(trail, sessions, db_url, capsys):
    """TRUNCATE on PostgreSQL (DELETE on SQLite) is refused by the trigger, and found out once forced."""
    empty = "TRUNCATE audit_event" if db_url.startswith("postgresql") else "DELETE FROM audit_event"
    with pytest.raises(DatabaseError, match="append-only"), sessions.begin() as s:
        s.execute(text(empty))
    with sessions.begin() as s:
        _sql(s, empty)
        streams = s.scalars(select(AuditStream.key).order_by(AuditStream.id)).all()
    assert cli.main(["--db", db_url, "audit", "verify"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line.split(" event #")[0] for line in out] == [f"BROKEN {key}" for key in streams]
    assert f"BROKEN {trail} event #1" in out[streams.index(trail)]
    assert all("deleted" in line for line in out)


@pytest.fixture
def app_role(pg_url, pg_sessions):
    """A login-less role with the application's table rights, neither owner nor superuser."""
    _make_trail(pg_sessions)
    name = f"shuangti_app_{secrets.token_hex(4)}"
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{name}" NOLOGIN')
        conn.execute(
            f'GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO "{name}"'
        )
        conn.execute(f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{name}"')
    yield name
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP OWNED BY "{name}"')
        conn.execute(f'DROP ROLE "{name}"')


@pytest.mark.parametrize(
    ("sql", "refusal"),
    [
        ("UPDATE audit_event SET comment = 'x'", "append-only"),
        ("DELETE FROM audit_event", "append-only"),
        ("TRUNCATE audit_event", "append-only"),
        ("SET session_replication_role = replica", "permission denied"),
        ("ALTER TABLE audit_event DISABLE TRIGGER audit_event_no_change", "must be owner"),
        ("DROP TRIGGER audit_event_no_change ON audit_event", "must be owner"),
    ],
)
def test_the_application_role_cannot_tamper_or_switch_the_trigger_off(pg_url, app_role, sql, refusal):
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(plain) as conn:
        conn.execute(f'SET ROLE "{app_role}"')
        with pytest.raises(psycopg.Error, match=refusal):
            conn.execute(sql)
