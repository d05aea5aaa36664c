"""The notification outbox (通知): rows written inside the state-change transaction.

Delivery happens after commit, by :mod:`engine.delivery`; a row's ``dedupe_key`` is unique,
so the same event never queues twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from engine.store.models import Notification


def queue(
    session: Session,
    *,
    user_id: int | None,
    kind: str,
    subject: str,
    now: datetime,
    instance_id: int | None = None,
    body: str = "",
    dedupe_key: str | None = None,
) -> Notification:
    """Queue one in-app notification for ``user_id``."""
    note = Notification(
        channel="inapp",
        user_id=user_id,
        instance_id=instance_id,
        kind=kind,
        subject=subject[:255],
        body=body,
        dedupe_key=dedupe_key,
        created_at=now,
    )
    session.add(note)
    return note


_NOTES = insert(Notification.__table__)


def queue_all(
    session: Session,
    user_ids: Iterable[int],
    *,
    kind: str,
    subject: str,
    now: datetime,
    instance_id: int | None,
    dedupe_prefix: str,
) -> None:
    """Queue one in-app notification per user (dedupe key ``<prefix>:<user id>``), in one statement."""
    rows = [
        {"channel": "inapp", "user_id": uid, "instance_id": instance_id, "kind": kind, "subject": subject[:255],
         "body": "", "dedupe_key": f"{dedupe_prefix}:{uid}", "created_at": now}
        for uid in user_ids
    ]
    if rows:
        session.connection().execute(_NOTES, rows)


def inbox(session: Session, user_id: int, *, limit: int = 50) -> list[Notification]:
    """我的消息: the user's in-app notifications, newest first."""
    return list(
        session.scalars(
            select(Notification)
            .where(Notification.channel == "inapp", Notification.user_id == user_id)
            .order_by(Notification.id.desc())
            .limit(limit)
        )
    )


def unread_count(session: Session, user_id: int) -> int:
    return session.scalar(
        select(func.count()).where(
            Notification.channel == "inapp", Notification.user_id == user_id, Notification.read_at.is_(None)
        )
    )


def mark_read(session: Session, user_id: int, ids: list[int] | None, *, now: datetime) -> int:
    """Mark the user's own notifications read (all of them when ``ids`` is None); returns how many."""
    query = update(Notification).where(
        Notification.channel == "inapp", Notification.user_id == user_id, Notification.read_at.is_(None)
    )
    if ids is not None:
        query = query.where(Notification.id.in_(ids))
    return session.execute(query.values(read_at=now)).rowcount
