"""What every page shares: display filters (万元, Asia/Shanghai), the home page, error pages.

Engine refusals map to HTTP precisely: NotFound 404 (also for anything out of scope),
Forbidden 403, NotPossible and Conflict 409, GuardFailed and InvalidForm 422. Under
``/api/`` the same refusals answer as JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from engine.clock import local
from engine.definitions import Field
from engine.errors import Conflict, EngineError, Forbidden, GuardFailed, InvalidForm, NotFound, NotPossible
from engine.forms import fen_to_wan

STATUS = {NotFound: 404, Forbidden: 403, NotPossible: 409, Conflict: 409, GuardFailed: 422, InvalidForm: 422}


def status_of(exc: EngineError) -> int:
    for kind, status in STATUS.items():
        if isinstance(exc, kind):
            return status
    return 400


def wan(fen: int | None) -> str:
    """Integer 分 → '1,234.5' (万元), exact."""
    if fen is None:
        return ""
    return f"{fen_to_wan(fen):,f}"


def shanghai(moment: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return local(moment).strftime(fmt) if moment else ""


def field_value(f: Field, value: Any) -> str:
    """A stored value as users read it: money in 万元, choices joined, yes/no."""
    if value is None:
        return ""
    if f.kind == "money":
        return f"{wan(value)} 万元"
    if f.kind == "multichoice":
        return "、".join(map(str, value))
    if f.kind == "bool":
        return _("是") if value else _("否")
    return str(value)


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _engine_error(exc: EngineError):
    status = status_of(exc)
    if _wants_json():
        return jsonify(exc.as_dict()), status
    if isinstance(exc, NotFound):
        return render_template("error.html", status=404, message=_("找不到该页面或对象")), 404
    return render_template("error.html", status=status, message=exc.message, error=exc), status


def _http_error(exc: HTTPException):
    if _wants_json():
        return jsonify({"error": exc.name.lower().replace(" ", "_"), "message": exc.description}), exc.code
    return render_template("error.html", status=exc.code, message=exc.description), exc.code


def _csrf_error(exc: CSRFError):
    if _wants_json():
        return jsonify({"error": "csrf", "message": exc.description}), 400
    return render_template("error.html", status=400, message=_("表单已失效，请刷新页面后重试")), 400


def index():
    return redirect(url_for("tasks.queue"))


def init_app(app) -> None:
    app.jinja_env.filters.update(wan=wan, shanghai=shanghai, field_value=field_value)
    app.register_error_handler(EngineError, _engine_error)
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.add_url_rule("/", "index", index)
