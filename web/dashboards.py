"""Dashboards (督办看板): open, due-soon, overdue and handled tasks per county and per step.

The figures are :func:`engine.timeliness.timeliness` for the viewer's org scope at the
request's ``now``; this module only labels and lays them out.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, render_template
from flask_login import login_required

from engine.timeliness import Timeliness, per_step, per_unit, timeliness
from web import db
from web.tasks import DUE_SOON

bp = Blueprint("dashboards", __name__, url_prefix="/dashboards")


def step_label(t: Timeliness) -> str:
    """'流程 · 环节' from the latest definition (the step's code if that version has no such step)."""
    wf = db.runtime().registry.get(t.workflow_key).workflow
    label = next((st.label for st in wf.states if st.name == t.state), t.state)
    return f"{wf.title} · {label}"


@bp.get("/deadlines")
@login_required
def deadlines():
    s, now = db.session(), db.now()
    soon_days = DUE_SOON // timedelta(days=1)
    rows = timeliness(s, db.actor(s), now, soon_days=soon_days)
    return render_template(
        "dashboard_deadlines.html",
        by_county=[(t.unit_name, t) for t in per_unit(rows)],
        by_step=[(step_label(t), t) for t in per_step(rows)],
        now=now,
        soon_days=soon_days,
    )
