"""Notifications leave after commit, by a real SMTP server and a real HTTP endpoint on loopback."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from engine.delivery import Channels, SmtpSettings, WebhookSettings, deliver
from engine.store.models import Notification, User
from tests.conftest import T0
from tests.engine.helpers import start_grant, walk

LATER = T0 + timedelta(days=1)


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp():
    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, SmtpSettings(host="127.0.0.1", port=port, sender="noreply@shuangti.test")
    controller.stop()


@pytest.fixture
def webhook():
    received, status = [], {"code": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.headers["Idempotency-Key"], json.loads(body)))
            self.send_response(status["code"])
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield received, status, WebhookSettings(url=f"http://127.0.0.1:{server.server_port}/hook")
    server.shutdown()


@pytest.fixture
def assigned(runtime, sessions, actor, world):
    """A submitted and opened township task: in-app rows for both township reviewers."""
    with sessions.begin() as s:
        s.execute(update(User).where(User.username == "town_a1").values(email="town_a1@shuangti.test"))
    iid = start_grant(runtime, sessions, actor, world)
    walk(runtime, sessions, actor, iid, [("submit", "applicant_a1"), ("notice_ended", None)])
    return iid


def test_email_goes_once_to_users_with_an_address(sessions, smtp, assigned):
    inbox, settings = smtp
    assert deliver(sessions, Channels(smtp=settings), LATER) == 1
    assert deliver(sessions, Channels(smtp=settings), LATER) == 0
    assert [m.rcpt_tos for m in inbox.messages] == [["town_a1@shuangti.test"]]
    parsed = email.message_from_bytes(inbox.messages[0].content, policy=email.policy.default)
    assert parsed["Subject"].startswith("新待办")
    with sessions() as s:
        assert s.scalars(select(Notification.sent_at).where(Notification.channel == "email")).all() == [LATER]


def test_email_is_off_by_default(sessions, assigned):
    assert deliver(sessions, Channels(), LATER) == 0
    with sessions() as s:
        assert s.scalars(select(Notification).where(Notification.channel != "inapp")).all() == []


def test_webhook_retried_after_failure_never_duplicated(sessions, webhook, assigned):
    received, status, settings = webhook
    status["code"] = 500
    channels = Channels(webhook=settings)
    with sessions() as s:
        in_app = len(s.scalars(select(Notification.id).where(Notification.channel == "inapp")).all())
    assert in_app >= 2
    assert deliver(sessions, channels, LATER) == in_app
    with sessions() as s:
        failed = s.scalars(select(Notification).where(Notification.channel == "webhook")).all()
        assert [(n.attempts, n.sent_at is None) for n in failed] == [(1, True)] * in_app
        assert all("500" in n.last_error for n in failed)
    status["code"] = 200
    deliver(sessions, channels, LATER)
    deliver(sessions, channels, LATER)
    delivered = [key for key, _ in received[in_app:]]
    assert sorted(delivered) == sorted({key for key, _ in received[:in_app]})
    assert len(delivered) == in_app


def test_gives_up_after_max_attempts(sessions, webhook, assigned):
    received, status, settings = webhook
    status["code"] = 503
    channels = Channels(webhook=settings, max_attempts=2)
    for _ in range(4):
        deliver(sessions, channels, LATER)
    with sessions() as s:
        in_app = len(s.scalars(select(Notification.id).where(Notification.channel == "inapp")).all())
    assert len(received) == 2 * in_app
    with sessions() as s:
        assert {
            n.attempts for n in s.scalars(select(Notification).where(Notification.channel == "webhook"))
        } == {2}


def test_inbox_and_mark_read_touch_only_the_users_own(sessions, assigned, world):
    from engine import notify

    me, other = world.u["town_a1"].id, world.u["town_a1_b"].id
    with sessions() as s:
        mine = notify.inbox(s, me)
        assert mine and all(n.user_id == me for n in mine)
        assert notify.unread_count(s, me) == len(mine)
    with sessions.begin() as s:
        theirs = [n.id for n in notify.inbox(s, other)]
        assert notify.mark_read(s, me, theirs, now=LATER) == 0
        assert notify.mark_read(s, me, None, now=LATER) == len(mine)
    with sessions() as s:
        assert notify.unread_count(s, me) == 0 and notify.unread_count(s, other) == len(theirs)
