"""Dashboards (督办看板): open, due-soon and overdue tasks per county and per step.

Counts only what the viewer may see (their org scope), at the request's ``now``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from flask import Blueprint, render_template
from flask_login import login_required
from sqlalchemy import case, func, select

from engine.store.models import Instance, Task
from engine.tasks import OPEN
from web import db
from web.tasks import DUE_SOON, scope_units

bp = Blueprint("dashboards", __name__, url_prefix="/dashboards")


def _zero() -> dict[str, int]:
    return {"open": 0, "due_soon": 0, "overdue": 0}


@bp.get("/deadlines")
@login_required
def deadlines():
    s, runtime, now = db.session(), db.runtime(), db.now()
    actor = db.actor(s)
    overdue = func.sum(case((Task.due_at < now, 1), else_=0))
    due_soon = func.sum(case(((Task.due_at >= now) & (Task.due_at < now + DUE_SOON), 1), else_=0))
    groups = s.execute(
        select(
            Instance.org_path,
            Instance.workflow_key,
            Instance.workflow_version,
            Task.state,
            func.count(Task.id),
            due_soon,
            overdue,
        )
        .join(Instance, Task.instance_id == Instance.id)
        .where(Task.status == OPEN, Instance.status == "active", actor.scope_filter(Instance.org_path))
        .group_by(Instance.org_path, Instance.workflow_key, Instance.workflow_version, Task.state)
    ).all()
    counties = scope_units(s, actor, kinds=("county",))
    by_county: dict[str, dict[str, int]] = defaultdict(_zero)
    by_step: dict[tuple[str, str], dict[str, int]] = defaultdict(_zero)
    for path, key, version, state, n_open, n_soon, n_over in groups:
        county = next((c.name for c in counties if path.startswith(c.path)), "—")
        wf = runtime.registry.get(key, version).workflow
        for bucket in (by_county[county], by_step[(wf.title, wf.state(state).label)]):
            bucket["open"] += n_open
            bucket["due_soon"] += n_soon or 0
            bucket["overdue"] += n_over or 0
    return render_template(
        "dashboard_deadlines.html",
        by_county=sorted(by_county.items()),
        by_step=sorted(by_step.items()),
        now=now,
        soon_days=DUE_SOON // timedelta(days=1),
    )
