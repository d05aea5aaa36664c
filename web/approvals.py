"""Approval actions from the instance page (审批操作): 转办, 委派, 交回, 催办, 撤回, 挂起/恢复, 加签/减签.

Each POST calls one ``Runtime`` method inside the request's transaction. A refusal shows the
instance page again with the engine's message (403, 409 or 422); anything out of scope is 404.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import login_required

from engine.errors import EngineError, InvalidForm, NotFound
from engine.store.models import Task
from web import db
from web.instances import instance_view
from web.views import status_of

bp = Blueprint("approvals", __name__)


def _comment() -> str | None:
    return request.form.get("comment", "").strip() or None


def _to_user() -> int:
    raw = request.form.get("to_user", "")
    if not raw.isdigit():
        raise InvalidForm({"to_user": "请选择人员 (choose a person)"})
    return int(raw)


def _act(inst_id: int, call: Callable, message: str):
    """Run ``call(session, actor, now)`` in the request's transaction; refusals re-render the page."""
    try:
        with db.transaction() as s:
            call(s, db.actor(s), db.now())
    except NotFound:
        raise
    except EngineError as exc:
        return instance_view(inst_id, error=exc, status=status_of(exc))
    flash(message)
    return redirect(url_for("instances.show", inst_id=inst_id))


def _task_of(s, inst_id: int, task_id: int) -> int:
    """The task's id if it belongs to the instance in the URL; otherwise NotFound."""
    task = s.get(Task, task_id)
    if task is None or task.instance_id != inst_id:
        raise NotFound(f"任务不存在 (task {task_id} not found)")
    return task.id


def _task_route(name: str, call: Callable, message: str) -> None:
    def view(inst_id: int, task_id: int):
        def run(s, actor, now):
            return call(s, _task_of(s, inst_id, task_id), actor, now)

        return _act(inst_id, run, message())

    view.__name__ = name
    bp.post(f"/instances/<int:inst_id>/tasks/<int:task_id>/{name}")(login_required(view))


def _instance_route(name: str, call: Callable, message: str) -> None:
    def view(inst_id: int):
        return _act(inst_id, lambda s, actor, now: call(s, inst_id, actor, now), message())

    view.__name__ = name
    bp.post(f"/instances/<int:inst_id>/{name}")(login_required(view))


def _runtime():
    return db.runtime()


_task_route("claim", lambda s, t, a, n: _runtime().claim(s, t, a, n), lambda: _("已签收"))
_task_route("unclaim", lambda s, t, a, n: _runtime().unclaim(s, t, a, n), lambda: _("已取消签收"))
_task_route(
    "reassign",
    lambda s, t, a, n: _runtime().reassign(s, t, a, _to_user(), n, _comment()),
    lambda: _("已转办"),
)
_task_route(
    "delegate",
    lambda s, t, a, n: _runtime().delegate(s, t, a, _to_user(), n, _comment()),
    lambda: _("已委派"),
)
_task_route("hand_back", lambda s, t, a, n: _runtime().hand_back(s, t, a, n, _comment()), lambda: _("已交回"))
_task_route("urge", lambda s, t, a, n: _runtime().urge(s, t, a, n, _comment()), lambda: _("已催办"))
_instance_route(
    "withdraw", lambda s, i, a, n: _runtime().withdraw(s, i, a, n, _comment()), lambda: _("已撤回")
)
_instance_route("suspend", lambda s, i, a, n: _runtime().suspend(s, i, a, n, _comment()), lambda: _("已挂起"))
_instance_route("resume", lambda s, i, a, n: _runtime().resume(s, i, a, n, _comment()), lambda: _("已恢复"))
_instance_route(
    "add_signer",
    lambda s, i, a, n: _runtime().add_signer(s, i, request.form.get("party", ""), a, n, _comment()),
    lambda: _("已加签"),
)
_instance_route(
    "remove_signer",
    lambda s, i, a, n: _runtime().remove_signer(s, i, request.form.get("party", ""), a, n, _comment()),
    lambda: _("已减签"),
)
