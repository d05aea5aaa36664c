"""The audit trail (审计留痕): append-only events, SHA-256 chained per stream.

Every instance has its own stream (``instance:<id>``); administration writes to named
streams. Each event's hash covers its content and the previous event's hash, and the
stream head records the length and last hash, so an edited, deleted, reordered,
inserted or truncated event is found by :func:`verify`, which names the first bad one.
The database refuses UPDATE and DELETE on ``audit_event`` (a trigger made by the first
migration; TRUNCATE too on PostgreSQL).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from engine.clock import UTC
from engine.store.models import AuditEvent, AuditStream, Instance

GENESIS = "0" * 64

_HASHED = (
    "seq",
    "instance_id",
    "action",
    "actor_id",
    "actor_name",
    "on_behalf_of_id",
    "on_behalf_of_name",
    "role",
    "org_unit_id",
    "trigger",
    "from_state",
    "to_state",
    "comment",
    "detail",
    "idempotency_key",
)


_STREAMS = AuditStream.__table__.c
_TAKE_HEAD = (
    update(AuditStream.__table__)
    .where(_STREAMS.key == bindparam("stream_key"))
    .values(length=_STREAMS.length + 1)
    .returning(_STREAMS.id, _STREAMS.length, _STREAMS.head_hash)
)
"""Lock a stream's head and take the next seq, returning the previous hash (built once, run on the connection)."""
_NEW_STREAM = (
    insert(AuditStream.__table__)
    .values(key=bindparam("stream_key"), length=1, head_hash=GENESIS)
    .returning(_STREAMS.id, _STREAMS.length, _STREAMS.head_hash)
)
_SET_HEAD = update(AuditStream.__table__).where(_STREAMS.id == bindparam("sid")).values(head_hash=bindparam("digest"))


def event_hash(stream_key: str, prev_hash: str, at: datetime, fields: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of one event, chained to ``prev_hash``."""
    body = {k: fields.get(k) for k in _HASHED}
    body.update(stream=stream_key, prev=prev_hash, at=at.astimezone(UTC).isoformat())
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def instance_stream(instance_id: int) -> str:
    return f"instance:{instance_id}"


def append(
    session: Session, stream_key: str, *, at: datetime, action: str, actor_name: str, **fields: Any
) -> AuditEvent:
    """Append one event to ``stream_key`` inside the caller's transaction."""
    session.flush()
    conn = session.connection()
    head = conn.execute(_TAKE_HEAD, {"stream_key": stream_key}).one_or_none()
    if head is None:
        head = conn.execute(_NEW_STREAM, {"stream_key": stream_key}).one()
    sid, seq, prev = head
    values = {"action": action, "actor_name": actor_name, "detail": {}, **fields, "seq": seq}
    digest = event_hash(stream_key, prev, at, values)
    event = AuditEvent(stream_id=sid, at=at, prev_hash=prev, hash=digest, **values)
    session.add(event)
    session.flush()
    conn.execute(_SET_HEAD, {"sid": sid, "digest": digest})
    loaded = session.identity_map.get(identity_key(AuditStream, sid))
    if loaded is not None:
        set_committed_value(loaded, "length", seq)
        set_committed_value(loaded, "head_hash", digest)
    return event


@dataclass(frozen=True)
class Break:
    """The first bad event of a stream (its seq, and its id while the row exists), and why."""

    stream: str
    seq: int
    event_id: int | None
    reason: str

    def __str__(self) -> str:
        where = f" (id {self.event_id})" if self.event_id is not None else ""
        return f"{self.stream} event #{self.seq}{where}: {self.reason}"


def _digest(stream_key: str, ev: AuditEvent, prev_hash: str) -> str:
    return event_hash(stream_key, prev_hash, ev.at, {k: getattr(ev, k) for k in _HASHED})


def _misplaced(key: str, events: list[AuditEvent], i: int) -> Break:
    """Event ``i`` is not chained to the one before it: blame the inserted, moved or re-hashed one."""
    ev = events[i]
    j = next((n for n, e in enumerate(events) if e.hash == ev.prev_hash), None)
    if j is not None and j < i - 1:
        forged = events[j + 1]
        return Break(
            key, forged.seq, forged.id, f"inserted: event #{ev.seq} follows #{events[j].seq}, not this one"
        )
    if j is not None and j > i:
        return Break(key, ev.seq, ev.id, f"reordered: it follows event #{events[j].seq}")
    if i > 0 and _digest(key, ev, ev.prev_hash) == ev.hash:
        before = events[i - 1]
        return Break(
            key,
            before.seq,
            before.id,
            f"edited and re-hashed: event #{ev.seq} was chained to another version of it",
        )
    return Break(key, ev.seq, ev.id, "does not follow the event before it (reordered, inserted or deleted)")


def verify_stream(session: Session, stream: AuditStream) -> Break | None:
    """Walk one stream from its first event; return its first bad event, or None if it is whole.

    Each event must have the next seq, the previous event's hash and a hash of its own content.
    Where the chain breaks, the event blamed is the inserted, moved, edited (re-hashed or not) or
    missing one; events beyond the stream head, and a head that disagrees with the last event,
    are found as well.
    """
    events = list(
        session.scalars(select(AuditEvent).where(AuditEvent.stream_id == stream.id).order_by(AuditEvent.seq))
    )
    key, prev = stream.key, GENESIS
    for i, ev in enumerate(events):
        if ev.seq != i + 1:
            return Break(key, i + 1, None, f"missing (deleted): the next event is #{ev.seq} (id {ev.id})")
        if ev.prev_hash != prev:
            return _misplaced(key, events, i)
        if _digest(key, ev, prev) != ev.hash:
            return Break(key, ev.seq, ev.id, "content does not match its hash (edited)")
        prev = ev.hash
    found = len(events)
    if found < stream.length:
        return Break(
            key, found + 1, None, f"stream records {stream.length} events, found {found} (deleted at the end)"
        )
    if found > stream.length:
        extra = events[stream.length]
        return Break(
            key,
            extra.seq,
            extra.id,
            f"beyond the stream head, which records {stream.length} events (appended outside the engine)",
        )
    if prev != stream.head_hash:
        last = events[-1]
        return Break(
            key,
            last.seq,
            last.id,
            "does not match the stream head (it, or one before it, was edited and the chain re-hashed)",
        )
    return None


def _streamless(session: Session, stream_key: str | None) -> list[Break]:
    """Instances whose whole audit stream (head and events) is gone."""
    streams = select(AuditStream.key)
    instances = select(Instance.id).order_by(Instance.id)
    if stream_key is None:
        streams = streams.where(AuditStream.key.startswith("instance:"))
    elif stream_key.startswith("instance:") and stream_key.removeprefix("instance:").isdigit():
        streams = streams.where(AuditStream.key == stream_key)
        instances = instances.where(Instance.id == int(stream_key.removeprefix("instance:")))
    else:
        return []
    have = set(session.scalars(streams))
    return [
        Break(key, 1, None, "the instance has no audit stream (deleted with all its events)")
        for iid in session.scalars(instances)
        if (key := instance_stream(iid)) not in have
    ]


def verify(session: Session, stream_key: str | None = None) -> list[Break]:
    """Verify one stream, or every stream; return the first bad event of each broken stream."""
    query = select(AuditStream).order_by(AuditStream.id)
    if stream_key is not None:
        query = query.where(AuditStream.key == stream_key)
    breaks = [b for s in session.scalars(query) if (b := verify_stream(session, s)) is not None]
    return breaks + _streamless(session, stream_key)
