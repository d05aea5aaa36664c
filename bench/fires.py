"""Runtime throughput: ``Runtime.fire`` per second, against a bare UPDATE of the same row.

The sample grant workflow of the engine tests: each instance is started through the
runtime (timed too), then fired ``submit`` (草稿 → 村内公示) by its applicant, one
transaction each, as a web request would. A fire locks and reads the instance, checks
scope, role and the open task, moves the compiled machine, closes the task, starts the
notice timer and appends the chained audit event. The baseline is one transaction per
row of ``UPDATE workflow_instance SET state, updated_at, version_id`` on the same rows:
the ratio is what authorisation, tasks, clocks and the audit chain cost on top of it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update

from bench.common import database, per_op, ratio
from engine.deadlines import load_year
from engine.scope import load_actor
from engine.store.db import make_engine, session_factory
from engine.store.models import Instance
from tests.conftest import T0
from tests.engine.sample import build_world, grant_form, make_runtime


def run(backend: str, n: int) -> dict[str, Any]:
    runtime = make_runtime()
    with database(backend) as url:
        engine = make_engine(url)
        sessions = session_factory(engine)
        with sessions.begin() as s:
            load_year(s, T0.year)
            world = build_world(s)
        with sessions() as s:
            applicant = load_actor(s, world.u["applicant_a1"].id, T0)
        village = world.units["A1v"].id
        ids: list[int] = []

        def start(_: int) -> None:
            with sessions.begin() as s:
                inst = runtime.start(s, "grant", applicant, org_unit_id=village, form=grant_form(), now=T0)
                s.flush()
                ids.append(inst.id)

        def fire(iid: int) -> None:
            with sessions.begin() as s:
                runtime.fire(s, iid, "submit", applicant, now=T0 + timedelta(hours=1))

        def bare(iid: int) -> None:
            with sessions.begin() as s:
                s.execute(
                    update(Instance)
                    .where(Instance.id == iid)
                    .values(
                        state="township_review",
                        updated_at=T0 + timedelta(hours=2),
                        version_id=Instance.version_id + 1,
                    )
                )

        starts = per_op(start, list(range(n)))
        fires = per_op(fire, ids)
        updates = per_op(bare, ids)
        engine.dispose()
    return {
        "backend": backend,
        "start": starts,
        "fire": fires,
        "bare_update": updates,
        "fire_vs_bare_update": ratio(fires["median_ms"], updates["median_ms"]),
    }
