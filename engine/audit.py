"""The audit trail (审计留痕): append-only events, SHA-256 chained per stream.

Every instance has its own stream (``instance:<id>``); administration writes to named
streams. Each event's hash covers its content and the previous event's hash, and the
stream head records the length and last hash, so an edited, deleted, reordered or
truncated event is found by :func:`verify`. The database refuses UPDATE and DELETE on
``audit_event`` (a trigger made by the first migration).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.clock import UTC
from engine.store.models import AuditEvent, AuditStream

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
    stream = session.execute(
        select(AuditStream).where(AuditStream.key == stream_key).with_for_update()
    ).scalar_one_or_none()
    if stream is None:
        stream = AuditStream(key=stream_key, length=0, head_hash=GENESIS)
        session.add(stream)
        session.flush()
    values = {"action": action, "actor_name": actor_name, "detail": {}, **fields, "seq": stream.length + 1}
    digest = event_hash(stream_key, stream.head_hash, at, values)
    event = AuditEvent(stream_id=stream.id, at=at, prev_hash=stream.head_hash, hash=digest, **values)
    session.add(event)
    stream.length = values["seq"]
    stream.head_hash = digest
    session.flush()
    return event


@dataclass(frozen=True)
class Break:
    """The first place a stream's chain is broken, and why."""

    stream: str
    seq: int
    event_id: int | None
    reason: str

    def __str__(self) -> str:
        return f"{self.stream} event #{self.seq} (id {self.event_id}): {self.reason}"


def verify_stream(session: Session, stream: AuditStream) -> Break | None:
    """Walk one stream from its first event; return the first break, or None if it is whole."""
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.stream_id == stream.id).order_by(AuditEvent.seq)
    ).all()
    prev = GENESIS
    for expected_seq, ev in enumerate(events, start=1):
        if ev.seq != expected_seq:
            return Break(stream.key, expected_seq, None, f"event #{expected_seq} is missing (deleted)")
        if ev.prev_hash != prev:
            return Break(
                stream.key, ev.seq, ev.id, "does not follow the event before it (reordered or inserted)"
            )
        fields = {k: getattr(ev, k) for k in _HASHED}
        if event_hash(stream.key, prev, ev.at, fields) != ev.hash:
            return Break(stream.key, ev.seq, ev.id, "content does not match its hash (edited)")
        prev = ev.hash
    if len(events) != stream.length or prev != stream.head_hash:
        return Break(
            stream.key,
            len(events) + 1,
            None,
            f"stream records {stream.length} events, found {len(events)} (deleted at the end)",
        )
    return None


def verify(session: Session, stream_key: str | None = None) -> list[Break]:
    """Verify one stream, or every stream; return the first break of each broken stream."""
    query = select(AuditStream).order_by(AuditStream.id)
    if stream_key is not None:
        query = query.where(AuditStream.key == stream_key)
    return [b for s in session.scalars(query) if (b := verify_stream(session, s)) is not None]
