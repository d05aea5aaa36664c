"""The scheduler: N deadlines fall due at once; time for :func:`engine.scheduler.run_due` to act on each once.

Rows of the sample grant workflow, a third of each kind, all due at the same moment, loaded
in bulk (not through the runtime) with the shape the runtime gives them, each instance with
its audit stream: 提醒 ``remind`` and 超期 ``breach`` rows of instances at 乡镇审核 with the
township's open task, and ``timer`` rows of instances at 村内公示 whose notice period is over.
A reminder notifies the task's holders and audits; a breach also opens a 督办 task at the
county; a timer fires ``notice_ended`` through the runtime, which opens the township's task
and its clocks. Each measured scan is a separate OS process (``python -m bench.schedule``)
calling ``run_due`` as of one hour after the due time; on PostgreSQL once with one process
and once with two started together on a copy of the same data (``CREATE DATABASE …
TEMPLATE``), on SQLite with one. Afterwards every row must be fired and every instance must
carry exactly one event from its row (a ``remind``, an ``overdue`` or the ``notice_ended``
transition), and there must be one 督办 task per breach. The baseline, on another copy of the
same rows: the bare ``UPDATE deadline SET status='fired' … RETURNING id`` of every due row in
one statement (psycopg; ``sqlite3``), i.e. the claim alone with no action.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import insert, text

from bench.common import PG_ADMIN, Target, database, pg_url, ratio
from engine import audit
from engine.deadlines import load_year
from engine.store.db import make_engine, session_factory
from engine.store.models import AuditStream, DeadlineRow, Instance, Task
from tests.conftest import T0
from tests.engine.sample import build_world

TITLE = "Scheduler: deadlines falling due at once (`bench/schedule.py`)"
SIZES = {"full": {"n": 20_000}, "quick": {"n": 300}}
ROOT = Path(__file__).resolve().parents[1]
KINDS = ("remind", "breach", "timer")
DUE = T0 + timedelta(days=10)
SCAN_AT = DUE + timedelta(hours=1)
ISSUE_N = 100_000
STATE = {"remind": "township_review", "breach": "township_review", "timer": "notice"}
CHUNK = 5_000


def _seed(url: str, n: int) -> dict[str, int]:
    """The sample org tree and ``n`` due rows, a third of each kind; the count of each kind."""
    engine = make_engine(url)
    sessions = session_factory(engine)
    with sessions.begin() as s:
        load_year(s, T0.year)
        world = build_world(s)
    village, township = world.units["A1v"], world.units["A1"]
    data = {"name": "合作社", "amount": 5_000_000, "plan": "方案", "target": "增收", "depts": ["agri"]}
    counts = {kind: n // 3 + (1 if i < n % 3 else 0) for i, kind in enumerate(KINDS)}
    for kind, count in counts.items():
        state = STATE[kind]
        for start in range(0, count, CHUNK):
            size = min(CHUNK, count - start)
            with sessions.begin() as s:
                ids = s.scalars(
                    insert(Instance.__table__).returning(Instance.id, sort_by_parameter_order=True),
                    [
                        {
                            "workflow_key": "grant",
                            "workflow_version": 1,
                            "state": state,
                            "status": "active",
                            "title": f"合作社 {kind} {start + i}",
                            "org_unit_id": village.id,
                            "org_path": village.path,
                            "data": data,
                            "created_at": T0,
                            "updated_at": T0,
                            "entered_at": T0,
                            "version_id": 1,
                        }
                        for i in range(size)
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
                                "due_at": DUE,
                            }
                            for iid in ids
                        ],
                    )
                s.execute(
                    insert(AuditStream.__table__),
                    [
                        {"key": audit.instance_stream(iid), "length": 0, "head_hash": audit.GENESIS}
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
                            "due_at": DUE,
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
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return counts


def _admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
        conn.execute(sql)


@contextmanager
def _pg_copy(url: str) -> Iterator[str]:
    """A copy of the PostgreSQL database at ``url`` (``CREATE DATABASE … TEMPLATE``), dropped afterwards."""
    source = url.rsplit("/", 1)[1]
    name = f"{source}_{secrets.token_hex(2)}"
    _admin(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
    try:
        yield pg_url(name)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def _sqlite_copy(url: str) -> Iterator[str]:
    source = Path(url.split("///", 1)[1])
    target = source.with_name(f"copy-{secrets.token_hex(2)}.db")
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    try:
        yield f"sqlite:///{target}"
    finally:
        target.unlink()


def _copy(backend: str, url: str):
    return _pg_copy(url) if backend == "postgresql" else _sqlite_copy(url)


def _raw(backend: str, url: str) -> dict[str, Any]:
    """The baseline: the bare claim of every due row, one UPDATE … RETURNING, timed."""
    sql = (
        "UPDATE deadline SET status = 'fired', fired_at = {p} "
        "WHERE status = 'pending' AND due_at <= {p} RETURNING id"
    )
    if backend == "postgresql":
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            t0 = time.perf_counter()
            rows = conn.execute(sql.format(p="%s"), (SCAN_AT, SCAN_AT)).fetchall()
            conn.commit()
            seconds = time.perf_counter() - t0
    else:
        with sqlite3.connect(url.split("///", 1)[1]) as conn:
            at = SCAN_AT.strftime("%Y-%m-%d %H:%M:%S.%f")
            t0 = time.perf_counter()
            rows = conn.execute(sql.format(p="?"), (at, at)).fetchall()
            conn.commit()
            seconds = time.perf_counter() - t0
    return {"rows": len(rows), "seconds": round(seconds, 3), "rows_per_s": round(len(rows) / seconds, 1)}


def _scan(url: str, processes: int) -> dict[str, Any]:
    """``processes`` OS processes each run ``run_due`` once, started together; wall time to the last."""
    start_at = time.time() + 3 + processes
    command = [sys.executable, "-m", "bench.schedule", url, SCAN_AT.isoformat(), str(start_at)]
    procs = [
        subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    reports = []
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"scheduler process failed: {err}")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    seconds = max(r["ended"] for r in reports) - start_at
    acted = sum(r["acted"] for r in reports)
    return {
        "processes": processes,
        "acted": acted,
        "acted_per_process": [r["acted"] for r in reports],
        "seconds": round(seconds, 2),
        "rows_per_s": round(acted / seconds, 1),
    }


def exactly_once(url: str, n: int) -> dict[str, Any]:
    """Every seeded row fired, and each instance has exactly one event from its row."""
    engine = make_engine(url)
    with engine.connect() as conn:
        fired = conn.scalar(text("SELECT count(*) FROM deadline WHERE due_at <= :at AND status = 'fired'"),
                            {"at": SCAN_AT})
        per_instance = conn.execute(
            text(
                "SELECT instance_id, count(*) FROM audit_event WHERE action IN ('remind', 'overdue') "
                "OR (action = 'transition' AND trigger = 'notice_ended') GROUP BY instance_id"
            )
        ).all()
        supervise = conn.scalar(text("SELECT count(*) FROM task WHERE kind = 'supervise'"))
    engine.dispose()
    events = sum(c for _, c in per_instance)
    once = fired == n and len(per_instance) == n and all(c == 1 for _, c in per_instance)
    return {"fired": fired, "events": events, "instances_with_events": len(per_instance),
            "supervise_tasks": supervise, "exactly_once": once}


def _measure(backend: str, url: str, n: int, processes: int, counts: dict[str, int]) -> dict[str, Any]:
    with _copy(backend, url) as copy:
        out = _scan(copy, processes)
        out.update(exactly_once(copy, n))
    out["exactly_once"] = out["exactly_once"] and out["supervise_tasks"] == counts["breach"]
    return out


def run(backends: tuple[str, ...], n: int) -> dict[str, Any]:
    result: dict[str, Any] = {"n": n}
    for backend in backends:
        with database(backend) as url:
            t0 = time.perf_counter()
            counts = _seed(url, n)
            out: dict[str, Any] = {"counts": counts, "seed_seconds": round(time.perf_counter() - t0, 1)}
            with _copy(backend, url) as copy:
                out["raw"] = _raw(backend, copy)
            runs = (1, 2) if backend == "postgresql" else (1,)
            for processes in runs:
                engine_run = _measure(backend, url, n, processes, counts)
                to_raw = engine_run["rows_per_s"] / out["raw"]["rows_per_s"]
                engine_run["engine_vs_raw"] = float(f"{to_raw:.3g}")
                out[f"processes_{processes}"] = engine_run
            if backend == "postgresql":
                two, one = out["processes_2"]["rows_per_s"], out["processes_1"]["rows_per_s"]
                out["speedup_2_vs_1"] = ratio(two, one)
            result[backend] = out
    return result


def _runs(result: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for backend in ("postgresql", "sqlite"):
        for processes in (1, 2):
            engine_run = result.get(backend, {}).get(f"processes_{processes}")
            if engine_run is not None:
                label = f"{'PostgreSQL' if backend == 'postgresql' else 'SQLite'}, {processes} process"
                yield backend, label + ("es" if processes > 1 else ""), engine_run


def markdown(result: dict[str, Any]) -> str:
    n = result["n"]
    lines = [f"N = {n:,} rows due at once, a third of each kind."]
    if n < ISSUE_N:
        lines += [
            "",
            f"The issue asks for {ISSUE_N:,}; the last column is what that would take at these rates. The",
            "full run's N keeps `make bench` within its 15 minutes on the shared 2-core machine",
            "(`--quick`: 300). The ratios do not depend on N (a scan is linear in its rows).",
        ]
    lines += [
        "",
        "| run | acted (per process) | seconds | engine rows/s | raw UPDATE rows/s | engine / raw "
        f"| exactly once | {ISSUE_N:,} rows would take |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for backend, label, r in _runs(result):
        raw = result[backend]["raw"]
        lines.append(
            f"| {label} | {r['acted']:,} ({' + '.join(f'{a:,}' for a in r['acted_per_process'])}) | "
            f"{r['seconds']} | {r['rows_per_s']:,} | {raw['rows_per_s']:,} | {r['engine_vs_raw']} | "
            f"{'yes' if r['exactly_once'] else '**no**'} | {ISSUE_N / r['rows_per_s'] / 60:.0f} min |"
        )
    if "postgresql" in result:
        lines += [
            "",
            f"Two processes against one on PostgreSQL: ×{result['postgresql']['speedup_2_vs_1']}. A scan is",
            "bound by Python on the client (the server's sessions wait in `ClientRead`), so a second process",
            "helps only when a core is free: read it against the load average in the header.",
        ]
    return "\n".join(lines)


def targets(result: dict[str, Any]) -> list[Target]:
    return [
        Target(
            f"{label}: every due row acted on exactly once (N = {result['n']:,})",
            f"{'yes' if r['exactly_once'] else 'no'}; engine/raw {r['engine_vs_raw']} "
            f"({r['rows_per_s']:,} rows/s)",
            "exactly once",
            r["exactly_once"],
        )
        for _, label, r in _runs(result)
    ]


def _worker(url: str, now: str, start_at: str) -> None:
    """One scheduler process: wait for the common start, run ``run_due`` once, print what it did."""
    from engine.scheduler import run_due
    from tests.engine.sample import make_runtime

    runtime = make_runtime()
    engine = make_engine(url)
    sessions = session_factory(engine)
    time.sleep(max(0.0, float(start_at) - time.time()))
    acted = run_due(sessions, runtime, datetime.fromisoformat(now))
    print(json.dumps({"acted": acted, "ended": time.time(), "pid": os.getpid()}))


if __name__ == "__main__":
    _worker(*sys.argv[1:4])
