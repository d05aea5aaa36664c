"""我的待办: the user's open tasks, soonest due first, with filters and pages; 签收 and 取消签收.

Due times are shown in Asia/Shanghai; a task past due is marked 已逾期, one due within
``DUE_SOON`` is marked 即将到期.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required
from sqlalchemy import select

from engine.store.models import OrgUnit
from engine.tasks import task_queue
from web import db

bp = Blueprint("tasks", __name__, url_prefix="/tasks")
DUE_SOON = timedelta(days=2)
PER_PAGE = 20


def _int_arg(name: str, default: int | None = None) -> int | None:
    value = request.args.get(name, "")
    return int(value) if value.isdigit() else default


def scope_units(s, actor, kinds=("county", "township")) -> list[OrgUnit]:
    """The counties and townships within the actor's sight, for filters."""
    return list(
        s.scalars(
            select(OrgUnit)
            .where(actor.scope_filter(OrgUnit.path), OrgUnit.kind.in_(kinds))
            .order_by(OrgUnit.path)
        )
    )


@bp.get("/")
@login_required
def queue():
    s, runtime, now = db.session(), db.runtime(), db.now()
    actor = db.actor(s)
    units = scope_units(s, actor)
    unit = next((u for u in units if u.id == _int_arg("org")), None)
    due_days = _int_arg("due_days")
    workflows = runtime.registry.latest()
    workflow = request.args.get("workflow") or None
    if workflow not in {w.key for w in workflows}:
        workflow = None
    states = (
        [(st.name, st.label) for st in runtime.registry.get(workflow).workflow.states if st.actor]
        if workflow
        else []
    )
    state = request.args.get("state") or None
    if state not in {name for name, _ in states}:
        state = None
    page = task_queue(
        s,
        actor,
        workflow=workflow,
        state=state,
        org_path=unit.path if unit else None,
        due_before=now + timedelta(days=due_days) if due_days is not None else None,
        overdue_at=now if request.args.get("overdue") else None,
        page=_int_arg("page", 1),
        per_page=PER_PAGE,
    )
    rows = [
        {
            "task": t,
            "workflow": runtime.definition(t.instance).workflow,
            "step": runtime.definition(t.instance).workflow.state(t.state).label,
            "role": runtime.registry.roles[t.role].label if t.role in runtime.registry.roles else t.role,
            "overdue": t.due_at is not None and t.due_at < now,
            "due_soon": t.due_at is not None and now <= t.due_at < now + DUE_SOON,
        }
        for t in page.items
    ]
    args = {k: v for k, v in request.args.items() if k != "page"}
    return render_template(
        "tasks.html",
        page=page,
        rows=rows,
        units=units,
        workflows=workflows,
        states=states,
        filters={
            "workflow": workflow,
            "state": state,
            "org": unit.id if unit else None,
            "due_days": due_days,
        },
        args=args,
        now=now,
        me=db.user_id(),
    )


def _task_action(task_id: int, action: str, message: str):
    with db.transaction() as s:
        getattr(db.runtime(), action)(s, task_id, db.actor(s), db.now())
    flash(message)
    return redirect(url_for("tasks.queue", **request.args))


@bp.post("/<int:task_id>/claim")
@login_required
def claim(task_id: int):
    return _task_action(task_id, "claim", _("已签收"))


@bp.post("/<int:task_id>/unclaim")
@login_required
def unclaim(task_id: int):
    return _task_action(task_id, "unclaim", _("已取消签收"))
