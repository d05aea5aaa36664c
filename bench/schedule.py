"""The scheduler: :func:`engine.scheduler.run_due` over due deadline rows, rows per second.

Rows of the sample grant workflow, a third of each kind, loaded in bulk (not through the
runtime) with the shape the runtime gives them: 提醒 ``remind`` and 超期 ``breach`` rows of
instances at 乡镇审核 with the township's open task, and ``timer`` rows of instances at
村内公示 whose notice period is over. Each kind falls due in its own window, so one
``run_due`` per kind gives a rate per kind: a reminder notifies the task's holders and
audits; a breach also opens a 督办 task at the county; a timer fires ``notice_ended``
through the runtime, which opens the township's task and its clocks.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlalchemy import func, insert, select

from bench.common import database
from engine.deadlines import load_year
from engine.scheduler import run_due
from engine.store.db import make_engine, session_factory
from engine.store.models import DeadlineRow, Instance, Task
from tests.conftest import T0
from tests.engine.sample import build_world, make_runtime

KINDS = ("remind", "breach", "timer")
DUE = {kind: T0 + timedelta(days=10 + i) for i, kind in enumerate(KINDS)}
STATE = {"remind": "township_review", "breach": "township_review", "timer": "notice"}


def _seed(sessions, world, n: int) -> dict[str, int]:
    village, township = world.units["A1v"], world.units["A1"]
    data = {"name": "合作社", "amount": 5_000_000, "plan": "方案", "target": "增收", "depts": ["agri"]}
    counts = {kind: n // 3 + (1 if i < n % 3 else 0) for i, kind in enumerate(KINDS)}
    with sessions.begin() as s:
        for kind, count in counts.items():
            state = STATE[kind]
            ids = s.scalars(
                insert(Instance.__table__).returning(Instance.id, sort_by_parameter_order=True),
                [
                    {
                        "workflow_key": "grant",
                        "workflow_version": 1,
                        "state": state,
                        "status": "active",
                        "title": f"合作社 {kind} {i}",
                        "org_unit_id": village.id,
                        "org_path": village.path,
                        "data": data,
                        "created_at": T0,
                        "updated_at": T0,
                        "entered_at": T0,
                        "version_id": 1,
                    }
                    for i in range(count)
                ],
            ).all()
            if state == "township_review":
                s.execute(
                    insert(Task.__table__),
                    [
                        {
                            "instance_id": iid,
                            "state": state,
                            "kind": "step",
                            "role": "township_reviewer",
                            "org_unit_id": township.id,
                            "org_path": township.path,
                            "status": "open",
                            "urge_count": 0,
                            "created_at": T0,
                            "due_at": DUE["breach"],
                        }
                        for iid in ids
                    ],
                )
            s.execute(
                insert(DeadlineRow.__table__),
                [
                    {
                        "instance_id": iid,
                        "state": state,
                        "kind": kind,
                        "due_at": DUE[kind],
                        "status": "pending",
                        "trigger": "notice_ended" if kind == "timer" else None,
                        "escalate_to": "county_reviewer" if kind == "breach" else None,
                        "days_before": 2 if kind == "remind" else None,
                        "created_at": T0,
                        "attempts": 0,
                    }
                    for iid in ids
                ],
            )
    return counts


def run(backend: str, n: int) -> dict[str, Any]:
    runtime = make_runtime()
    out: dict[str, Any] = {"backend": backend, "rows": n}
    with database(backend) as url:
        engine = make_engine(url)
        sessions = session_factory(engine)
        with sessions.begin() as s:
            load_year(s, T0.year)
            world = build_world(s)
        counts = _seed(sessions, world, n)
        total_rows, total_s = 0, 0.0
        for kind in KINDS:
            t0 = time.perf_counter()
            acted = run_due(sessions, runtime, DUE[kind] + timedelta(hours=1))
            elapsed = time.perf_counter() - t0
            out[kind] = {"rows": counts[kind], "acted": acted, "rows_per_s": round(acted / elapsed, 1)}
            total_rows, total_s = total_rows + acted, total_s + elapsed
        with sessions() as s:
            out["pending_after"] = s.scalar(
                select(func.count()).select_from(DeadlineRow).where(DeadlineRow.status == "pending")
            )
        out["all"] = {"acted": total_rows, "rows_per_s": round(total_rows / total_s, 1)}
        engine.dispose()
    return out
