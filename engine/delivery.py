"""Delivery of the notification outbox after commit (通知投递): e-mail and webhook.

The runtime only ever writes in-app rows, inside the state change's transaction.
:func:`deliver` runs later (in the scheduler process):

1. **Fan out.** Each in-app row not yet fanned out gets one row per enabled external
   channel (``email`` for users with an address, ``webhook``), in one transaction with
   marking the in-app row; the child's ``dedupe_key`` (``<channel>:<id>``) is unique, so
   a row is never fanned out twice.
2. **Send.** Each pending channel row is claimed (``FOR UPDATE SKIP LOCKED`` on PostgreSQL)
   in its own transaction, sent, and marked sent before commit. A failure records the
   attempt and error; the row is retried on later runs (once per run) up to ``max_attempts``. A crash
   between sending and commit can resend once: the e-mail's Message-ID and the webhook's
   ``Idempotency-Key`` header carry the row's key so receivers can drop the repeat.

E-mail is off unless SMTP settings are given.
"""

from __future__ import annotations

import json
import logging
import smtplib
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.store.db import is_postgres
from engine.store.models import Notification, User

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0


@dataclass(frozen=True)
class WebhookSettings:
    url: str
    timeout: float = 10.0


@dataclass(frozen=True)
class Channels:
    """Which external channels are on. With neither, :func:`deliver` does nothing."""

    smtp: SmtpSettings | None = None
    webhook: WebhookSettings | None = None
    max_attempts: int = 5


def _fan_out(sessions: sessionmaker[Session], channels: Channels, now: datetime, batch: int) -> int:
    made = 0
    with sessions.begin() as s:
        query = (
            select(Notification)
            .where(Notification.channel == "inapp", Notification.sent_at.is_(None))
            .order_by(Notification.id)
            .limit(batch)
        )
        if is_postgres(s):
            query = query.with_for_update(skip_locked=True)
        for note in s.scalars(query):
            user = s.get(User, note.user_id) if note.user_id else None
            targets = []
            if channels.smtp is not None and user is not None and user.email:
                targets.append("email")
            if channels.webhook is not None:
                targets.append("webhook")
            for channel in targets:
                s.add(
                    Notification(
                        channel=channel,
                        user_id=note.user_id,
                        instance_id=note.instance_id,
                        kind=note.kind,
                        subject=note.subject,
                        body=note.body,
                        dedupe_key=f"{channel}:{note.id}",
                        created_at=now,
                    )
                )
                made += 1
            note.sent_at = now
    return made


def _send_email(smtp: SmtpSettings, note: Notification, to: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = smtp.sender, to, note.subject
    msg["Message-ID"] = f"<shuangti-{note.dedupe_key.replace(':', '-')}@{smtp.sender.split('@')[-1]}>"
    msg.set_content(note.body or note.subject)
    with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout) as client:
        if smtp.starttls:
            client.starttls()
        if smtp.username:
            client.login(smtp.username, smtp.password or "")
        client.send_message(msg)


def _send_webhook(hook: WebhookSettings, note: Notification) -> None:
    payload = {
        "id": note.id,
        "kind": note.kind,
        "subject": note.subject,
        "body": note.body,
        "user_id": note.user_id,
        "instance_id": note.instance_id,
    }
    request = urllib.request.Request(
        hook.url,
        data=json.dumps(payload, ensure_ascii=False).encode(),
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": note.dedupe_key},
    )
    with urllib.request.urlopen(request, timeout=hook.timeout) as response:
        if response.status >= 300:
            raise OSError(f"webhook answered {response.status}")


def _send_one(sessions: sessionmaker[Session], channels: Channels, now: datetime, tried: set[int]) -> bool:
    """Claim, send and mark one pending row not yet tried in this run; False when none is left."""
    with sessions.begin() as s:
        query = (
            select(Notification)
            .where(
                Notification.channel.in_(("email", "webhook")),
                Notification.sent_at.is_(None),
                Notification.attempts < channels.max_attempts,
                Notification.id.not_in(tried),
            )
            .order_by(Notification.id)
            .limit(1)
        )
        if is_postgres(s):
            query = query.with_for_update(skip_locked=True)
        note = s.scalars(query).first()
        if note is None:
            return False
        note.attempts += 1
        tried.add(note.id)
        try:
            if note.channel == "email":
                _send_email(channels.smtp, note, s.get(User, note.user_id).email)
            else:
                _send_webhook(channels.webhook, note)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("delivery of notification %s failed: %s", note.id, exc)
            note.last_error = f"{type(exc).__name__}: {exc}"[:1000]
            return True
        note.sent_at, note.last_error = now, None
    return True


def deliver(sessions: sessionmaker[Session], channels: Channels, now: datetime, *, batch: int = 100) -> int:
    """Fan out new in-app rows to the enabled channels and send what is pending; returns rows handled."""
    if channels.smtp is None and channels.webhook is None:
        return 0
    _fan_out(sessions, channels, now, batch)
    handled, tried = 0, set()
    while handled < batch and _send_one(sessions, channels, now, tried):
        handled += 1
    return handled
