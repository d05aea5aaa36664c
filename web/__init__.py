"""The Flask web app (网页端): an app factory, one ``init_app`` per extension, blueprints per area.

Data flows one way: a view loads the actor, calls ``engine.runtime`` (or ``engine.directory``)
inside the request's one transaction, and renders. The web never writes rows itself.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask

from engine.clock import utcnow
from web import admin, api, approvals, auth, dashboards, db, i18n, instances, messages, reports, tasks, views

DEFAULT_DB = "sqlite:///instance/shuangti.db"


def _secret_key(instance_path: str) -> str:
    """SHUANGTI_SECRET_KEY, or a key made once and kept in the instance folder (shared by workers)."""
    if os.environ.get("SHUANGTI_SECRET_KEY"):
        return os.environ["SHUANGTI_SECRET_KEY"]
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app. ``config`` overrides the defaults (tests pass SHUANGTI_DB, RUNTIME_FACTORY, CLOCK)."""
    app = Flask(__name__, instance_relative_config=True)
    config = dict(config or {})
    app.config.from_mapping(
        SHUANGTI_DB=os.environ.get("SHUANGTI_DB", DEFAULT_DB),
        RUNTIME_FACTORY="workflows:build_runtime",
        CLOCK=utcnow,
        UPLOAD_DIR=os.path.join(app.instance_path, "attachments"),
        MAX_CONTENT_LENGTH=32 * 1024 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=None,
        LOCKOUT_ATTEMPTS=5,
        LOCKOUT_MINUTES=15,
    )
    app.config.update(config)
    if "SECRET_KEY" not in config:
        app.config["SECRET_KEY"] = _secret_key(app.instance_path)
    db.init_app(app)
    auth.init_app(app)
    i18n.init_app(app)
    views.init_app(app)
    for module in (auth, tasks, instances, approvals, messages, reports, dashboards, admin, api):
        app.register_blueprint(module.bp)
    return app
