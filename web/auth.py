"""Log in and out (登录): hashed passwords, lockout after repeated failures, CSRF everywhere.

After ``LOCKOUT_ATTEMPTS`` wrong passwords in a row an account is locked for
``LOCKOUT_MINUTES``; while locked even the right password is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user, logout_user
from flask_wtf.csrf import CSRFProtect

from engine import directory
from engine.store.models import User
from web import db

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
csrf = CSRFProtect()


@dataclass
class WebUser(UserMixin):
    """The logged-in person as Flask-Login sees them: plain data, no database session attached."""

    id: int
    username: str
    display_name: str
    session_epoch: int

    def get_id(self) -> str:
        """The session's user id with the epoch it was issued in (``"7.2"``); see ``User.session_epoch``."""
        return f"{self.id}.{self.session_epoch}"


def init_app(app) -> None:
    login_manager.init_app(app)
    login_manager.session_protection = "strong"
    login_manager.login_view = "auth.login"
    login_manager.login_message = None
    csrf.init_app(app)


@login_manager.user_loader
def load_user(session_id: str) -> WebUser | None:
    """The user of a session, unless they were deactivated or logged out since it was issued."""
    user_id, _, epoch = session_id.partition(".")
    if not (user_id.isdigit() and epoch.isdigit()):
        return None
    with db.sessions()() as s:
        user = s.get(User, int(user_id))
        if user is None or not user.active or user.session_epoch != int(epoch):
            return None
        return WebUser(user.id, user.username, user.display_name, user.session_epoch)


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("tasks.queue")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        return render_template("login.html", username="")
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    error, status, web_user, locale = None, 401, None, None
    with db.transaction() as s:
        result = directory.authenticate(
            s,
            username,
            password,
            now=db.now(),
            max_failures=current_app.config["LOCKOUT_ATTEMPTS"],
            lock_minutes=current_app.config["LOCKOUT_MINUTES"],
        )
        if result.user is not None:
            web_user = WebUser(
                result.user.id, result.user.username, result.user.display_name, result.user.session_epoch
            )
            locale = result.user.locale
        elif result.locked:
            error, status = _("账户已锁定，请15分钟后再试"), 423
        else:
            error = _("用户名或密码错误")
    if web_user is None:
        return render_template("login.html", username=username, error=error), status
    language = locale or session.get("lang")
    session.clear()  # nothing planted in the session before login survives it (session fixation, CSRF secret)
    login_user(web_user)
    if language:
        session["lang"] = language
    return redirect(_safe_next(request.args.get("next")))


@bp.post("/logout")
@login_required
def logout():
    with db.transaction() as s:
        directory.end_sessions(s, s.get(User, current_user.id), now=db.now())
    logout_user()
    flash(_("已退出登录"))
    return redirect(url_for("auth.login"))
