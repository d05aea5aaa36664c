"""我的待办: the user's open tasks, soonest due first, with filters and pages; 签收, 取消签收, 批量办理.

批量办理 fires a transition marked ``bulk`` on each checked instance, each in its own
transaction, and lists what happened to each.

Due times are shown in Asia/Shanghai; a task past due is marked 已逾期, one due within
``DUE_SOON`` is marked 即将到期.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required
from sqlalchemy import select

from engine.errors import EngineError
from engine.runtime import Runtime
from engine.scope import Actor
from engine.store.models import OrgUnit
from engine.tasks import QueueItem, task_queue
from web import db

bp = Blueprint("tasks", __name__, url_prefix="/tasks")
DUE_SOON = timedelta(days=2)
PER_PAGE = 20
BULK_MAX = 100


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


def _bulk_trigger(runtime: Runtime, task: QueueItem, actor: Actor) -> tuple[str, str] | None:
    """The (trigger, label) the queue may fire on this task's instance in bulk, if the user works it."""
    if task.delegated_by_id is not None or task.assignee_id not in (None, actor.user_id):
        return None
    wf = runtime.registry.get(task.workflow_key, task.workflow_version).workflow
    for trigger in dict.fromkeys(t.trigger for t in wf.transitions_from(task.state)):
        if all(b.bulk and b.by is None for b in wf.transitions_from(task.state, trigger)):
            return trigger, wf.label_of(trigger)
    return None


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
            "bulk": _bulk_trigger(runtime, t, actor),
            "workflow": runtime.registry.get(t.workflow_key, t.workflow_version).workflow,
            "step": runtime.registry.get(t.workflow_key, t.workflow_version).workflow.state(t.state).label,
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


@bp.post("/bulk")
@login_required
def bulk():
    """Fire each checked ``instance:trigger`` in its own transaction; show one result per item."""
    runtime, comment = db.runtime(), request.form.get("comment", "").strip() or None
    items = [raw.partition(":") for raw in request.form.getlist("item")[:BULK_MAX]]
    results = []
    for inst_id, _sep, trigger in items:
        if not inst_id.isdigit():
            continue
        title, ok, message = f"#{inst_id}", False, ""
        try:
            with db.transaction() as s:
                actor = db.actor(s)
                inst = runtime.instance(s, int(inst_id), actor)
                title = inst.title
                wf = runtime.definition(inst).workflow
                branches = wf.transitions_from(inst.state, trigger)
                if not branches or not all(b.bulk for b in branches):
                    message = _("此操作不能批量办理")
                else:
                    runtime.fire(s, inst.id, trigger, actor, now=db.now(), comment=comment)
                    ok, message = True, _("已办理：%(action)s", action=wf.label_of(trigger))
        except EngineError as exc:
            message = exc.message
        results.append({"id": int(inst_id), "title": title, "ok": ok, "message": message})
    if not results:
        flash(_("请勾选要批量办理的事项"))
        return redirect(url_for("tasks.queue"))
    return render_template("tasks_bulk.html", results=results)
