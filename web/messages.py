"""我的消息: the user's in-app notifications, the unread count in the header, mark read.

Reading uses ``engine.notify.inbox``; marking read goes through ``engine.notify.mark_read``
in the request's transaction and touches only the user's own notifications.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from engine import notify
from engine.errors import NotFound
from engine.store.models import Notification
from web import db

bp = Blueprint("messages", __name__, url_prefix="/messages")
LIMIT = 100


@bp.app_context_processor
def unread():
    """``unread_messages()`` for the header: counted only when a page asks and someone is logged in."""

    def count() -> int:
        return notify.unread_count(db.session(), db.user_id()) if current_user.is_authenticated else 0

    return {"unread_messages": count}


@bp.get("/")
@login_required
def inbox():
    return render_template("messages.html", notes=notify.inbox(db.session(), db.user_id(), limit=LIMIT))


@bp.post("/<int:note_id>/read")
@login_required
def read(note_id: int):
    with db.transaction() as s:
        note = s.get(Notification, note_id)
        if note is None or note.user_id != db.user_id() or note.channel != "inapp":
            raise NotFound(f"消息不存在 (notification {note_id} not found)")
        notify.mark_read(s, db.user_id(), [note.id], now=db.now())
    return redirect(url_for("messages.inbox"))


@bp.post("/read-all")
@login_required
def read_all():
    with db.transaction() as s:
        count = notify.mark_read(s, db.user_id(), None, now=db.now())
    flash(_("已将 %(n)s 条消息标为已读", n=count))
    return redirect(url_for("messages.inbox"))
