"""The notification outbox (通知): rows written inside the state-change transaction.

Delivery happens after commit, by :mod:`engine.delivery`; a row's ``dedupe_key`` is unique,
so the same event never queues twice.
"""

from __future__ import annotations

from datetime import datetime

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
