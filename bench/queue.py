"""我的待办 at scale: :func:`engine.tasks.task_queue` and the overdue scan against their raw SQL.

The org tree is Ganzi-shaped: a province, the prefecture with its departments, 18
counties each with ten departments, 12–24 townships per county and 6–12 villages per
township (about 300 townships and 2,700 villages). Instances, tasks and deadline rows
are generated once and loaded in bulk into every backend (COPY on PostgreSQL,
``executemany`` on SQLite; secondary indexes dropped for the load and rebuilt from their
own definitions, then ``VACUUM``/``ANALYZE``), not through the runtime: the rows have the
shape the runtime writes (materialised org paths, one open task per active instance, three
for a countersign step, two closed tasks per ended instance, a breach row per open step).

Each query is timed ``repeats`` times after a warm-up: through the engine (a fresh session
per call, as a request has) and as raw SQL on a plain driver connection (``sqlite3`` or
``psycopg``) replaying the statements the engine sent, so that engine/raw is the cost of
the engine's Python. A naive hand-written statement (one ``SELECT … ORDER BY … LIMIT`` with
the memberships OR-ed) is timed too and must return the same ids in the same order.
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import Engine

from bench.common import Target, database, ratio
from engine.clock import UTC
from engine.scheduler import _candidates
from engine.scope import Actor, load_actor
from engine.store.db import make_engine, session_factory
from engine.tasks import task_queue
from workflows import REGISTRY
from workflows.roles import DEPARTMENTS

TITLE = "Task queue latency at scale (我的待办)"
SIZES = {
    "full": {"instances": 1_000_000, "repeats": 200, "naive_repeats": 15},
    "quick": {"instances": 2_000, "repeats": 5, "naive_repeats": 2},
}
NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
PER_PAGE = 50
SCAN_BATCH = 100
"""The scheduler's ``run_due`` default batch."""
LIMITS_MS = {"sqlite": 2.0, "postgresql": 5.0}
MAX_VS_RAW = 5.0
ACTIVE_SHARE = 0.2
"""Share of instances still running; the rest ended (completed) with closed tasks."""
CHUNK = 20_000
DEPTS = tuple(DEPARTMENTS)

# Where the open work of running instances lies: role, weight, and the unit it is offered at.
ROLE_MIX = (
    ("village_applicant", 30, "village"),
    ("village_party_branch", 4, "village"),
    ("village_committee", 4, "village"),
    ("township_reviewer", 22, "township"),
    ("county_department_reviewer", 15, "county_countersign"),
    ("county_approver", 10, "county:agriculture"),
    ("county_finance", 5, "county:finance"),
    ("prefecture_bureau", 7, "prefecture:agriculture"),
    ("third_party_expert", 2, "prefecture"),
    ("province_reviewer", 1, "province"),
)


@dataclass(frozen=True)
class Unit:
    id: int
    code: str
    kind: str
    dept: str | None
    parent_id: int | None
    path: str


@dataclass
class Tree:
    units: list[Unit]
    villages: list[Unit]
    county_of: dict[int, Unit]
    township_of: dict[int, Unit]
    dept: dict[tuple[int, str], Unit]
    province: Unit
    prefecture: Unit
    counties: list[Unit]


def org_tree(seed: int = 7) -> Tree:
    """The same tree for every database size (a fixed seed)."""
    rng = random.Random(seed)
    units: list[Unit] = []

    def add(code: str, kind: str, parent: Unit | None, dept: str | None = None) -> Unit:
        uid = len(units) + 1
        unit = Unit(
            uid, code, kind, dept, parent.id if parent else None, f"{parent.path if parent else '/'}{uid}/"
        )
        units.append(unit)
        return unit

    province = add("sc", "province", None)
    prefecture = add("gz", "prefecture", province)
    dept = {(prefecture.id, d): add(f"gz-{d}", "department", prefecture, d) for d in DEPTS}
    counties, villages, county_of, township_of = [], [], {}, {}
    for c in range(18):
        county = add(f"c{c}", "county", prefecture)
        counties.append(county)
        dept.update({(county.id, d): add(f"c{c}-{d}", "department", county, d) for d in DEPTS})
        for t in range(rng.randint(12, 24)):
            township = add(f"c{c}t{t}", "township", county)
            for v in range(rng.randint(6, 12)):
                village = add(f"c{c}t{t}v{v}", "village", township)
                villages.append(village)
                county_of[village.id], township_of[village.id] = county, township
    return Tree(units, villages, county_of, township_of, dept, province, prefecture, counties)


def _steps() -> dict[str, list[tuple[str, int, str]]]:
    """Per role, the (workflow, version, state) steps it works in the Ganzi workflows."""
    steps: dict[str, list[tuple[str, int, str]]] = {}
    for wf in REGISTRY.latest():
        for s in wf.states:
            if s.actor is not None:
                steps.setdefault(s.actor, []).append((wf.key, wf.version, s.name))
    return steps


# ---- the actors and their queries ----------------------------------------------------------

USERS = ("township", "county_dept", "prefecture")


def memberships(tree: Tree) -> dict[str, list[tuple[str, Unit]]]:
    """A township reviewer, a county finance department (two roles), the prefecture bureau."""
    county = tree.counties[3]
    township = next(u for u in tree.units if u.kind == "township" and u.parent_id == county.id)
    finance = tree.dept[(county.id, "finance")]
    return {
        "township": [("township_reviewer", township)],
        "county_dept": [("county_department_reviewer", finance), ("county_finance", finance)],
        "prefecture": [("prefecture_bureau", tree.dept[(tree.prefecture.id, "agriculture")])],
    }


TARGETED = ("township/first", "county_dept/first", "prefecture/first", "overdue scan")


def queries(tree: Tree) -> dict[str, tuple[str, dict[str, Any]]]:
    """Name → (user, keyword arguments of ``task_queue``); the first pages are the targets."""
    county = tree.counties[3]
    township = memberships(tree)["township"][0][1]
    return {
        "township/first": ("township", {}),
        "county_dept/first": ("county_dept", {}),
        "prefecture/first": ("prefecture", {}),
        "township/overdue": ("township", {"overdue_at": NOW}),
        "county_dept/filtered": ("county_dept", {"state": "department_review", "org_path": township.path}),
        "prefecture/filtered": ("prefecture", {"workflow": "project_library", "org_path": county.path}),
        "prefecture/page 10": ("prefecture", {"page": 10}),
    }


# ---- the rows ----------------------------------------------------------------------------

UNIT_COLS = ("id", "code", "name", "kind", "dept", "parent_id", "path")
USER_COLS = ("id", "username", "display_name", "password_hash", "active", "failed_logins", "locale")
MEMBER_COLS = ("id", "user_id", "role", "org_unit_id")
INSTANCE_COLS = (
    "id",
    "workflow_key",
    "workflow_version",
    "state",
    "status",
    "title",
    "org_unit_id",
    "org_path",
    "data",
    "created_at",
    "updated_at",
    "entered_at",
    "version_id",
)
TASK_COLS = (
    "id",
    "instance_id",
    "state",
    "kind",
    "party",
    "role",
    "org_unit_id",
    "org_path",
    "assignee_id",
    "status",
    "urge_count",
    "created_at",
    "due_at",
    "closed_at",
)
DEADLINE_COLS = ("id", "instance_id", "state", "kind", "due_at", "status", "escalate_to", "created_at")


def directory_rows(tree: Tree) -> dict[str, tuple[tuple[str, ...], list[tuple]]]:
    users, members = [], []
    for uid, name in enumerate(USERS, start=1):
        users.append((uid, f"bench_{name}", name, "x", True, 0, "zh"))
        for role, unit in memberships(tree)[name]:
            members.append((len(members) + 1, uid, role, unit.id))
    units = [(u.id, u.code, u.code, u.kind, u.dept, u.parent_id, u.path) for u in tree.units]
    return {
        "org_unit": (UNIT_COLS, units),
        "user_account": (USER_COLS, users),
        "role_membership": (MEMBER_COLS, members),
    }


def _offer_units(tree: Tree, where: str, village: Unit, rng: random.Random) -> list[tuple[Unit, str | None]]:
    county = tree.county_of[village.id]
    if where == "village":
        return [(village, None)]
    if where == "township":
        return [(tree.township_of[village.id], None)]
    if where == "county_countersign":
        return [(tree.dept[(county.id, d)], d) for d in rng.sample(DEPTS, 3)]
    if where == "province":
        return [(tree.province, None)]
    if where == "prefecture":
        return [(tree.prefecture, None)]
    level, dept = where.split(":")
    anchor = county if level == "county" else tree.prefecture
    return [(tree.dept[(anchor.id, dept)], None)]


def _ts(at: datetime) -> str:
    """A UTC time as SQLAlchemy stores it on SQLite (and as COPY reads it with TimeZone UTC)."""
    return at.isoformat(" ", "microseconds")


@dataclass
class Chunk:
    instances: list[tuple]
    tasks: list[tuple]
    deadlines: list[tuple]


def work_rows(tree: Tree, n: int, seed: int = 11) -> Iterator[Chunk]:
    """``n`` instances with their tasks and deadline rows, ``CHUNK`` instances at a time."""
    rng = random.Random(seed)
    steps = _steps()
    mix = [(role, where) for role, _, where in ROLE_MIX]
    weights = [w for _, w, _ in ROLE_MIX]
    now = NOW.replace(tzinfo=None)
    started = now - timedelta(days=3 * 365)
    ended_key, ended_version, ended_state = steps["township_reviewer"][0]
    task_id = deadline_id = 0
    chunk = Chunk([], [], [])
    for iid in range(1, n + 1):
        village = rng.choice(tree.villages)
        created = started + timedelta(seconds=rng.randrange(3 * 365 * 86400))
        data = json.dumps({"amount": rng.randrange(10_000, 50_000_000)})
        if rng.random() < ACTIVE_SHARE:
            role, where = rng.choices(mix, weights)[0]
            key, version, state = rng.choice(steps[role])
            entered = now - timedelta(seconds=rng.randrange(60 * 86400))
            due = None if rng.random() < 0.1 else entered + timedelta(days=rng.randint(5, 20))
            for unit, party in _offer_units(tree, where, village, rng):
                task_id += 1
                assignee = 1 if rng.random() < 0.05 else None
                chunk.tasks.append(
                    (
                        task_id,
                        iid,
                        state,
                        "step",
                        party,
                        role,
                        unit.id,
                        unit.path,
                        assignee,
                        "open",
                        0,
                        _ts(entered),
                        _ts(due) if due else None,
                        None,
                    )
                )
            if due is not None:
                deadline_id += 1
                chunk.deadlines.append(
                    (deadline_id, iid, state, "breach", _ts(due), "pending", None, _ts(entered))
                )
            status = "active"
        else:
            key, version, state = ended_key, ended_version, ended_state
            entered = created + timedelta(days=rng.randint(1, 60))
            for role, unit, at in (
                ("village_applicant", village, created),
                ("township_reviewer", tree.township_of[village.id], entered),
            ):
                task_id += 1
                chunk.tasks.append(
                    (
                        task_id,
                        iid,
                        state,
                        "step",
                        None,
                        role,
                        unit.id,
                        unit.path,
                        None,
                        "done",
                        0,
                        _ts(at),
                        _ts(at + timedelta(days=10)),
                        _ts(at + timedelta(days=2)),
                    )
                )
            state, status = "done", "completed"
        chunk.instances.append(
            (
                iid,
                key,
                version,
                state,
                status,
                f"项目 {iid}",
                village.id,
                village.path,
                data,
                _ts(created),
                _ts(entered),
                _ts(entered),
                1,
            )
        )
        if len(chunk.instances) == CHUNK:
            yield chunk
            chunk = Chunk([], [], [])
    if chunk.instances:
        yield chunk


# ---- loading -----------------------------------------------------------------------------

WORK_TABLES = ("workflow_instance", "task", "deadline")


def _raw(url: str, backend: str):
    """A plain driver connection to the benchmark database."""
    if backend == "sqlite":
        return sqlite3.connect(url.removeprefix("sqlite:///"))
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1))


def _secondary_indexes(conn, backend: str) -> list[tuple[str, str]]:
    if backend == "sqlite":
        marks = ",".join("?" * len(WORK_TABLES))
        return conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL "
            f"AND tbl_name IN ({marks})",
            WORK_TABLES,
        ).fetchall()
    return conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) "
        "AND indexname NOT IN (SELECT conname FROM pg_constraint)",
        (list(WORK_TABLES),),
    ).fetchall()


def _copy_line(row: tuple) -> bytes:
    return ("\t".join("\\N" if v is None else str(v) for v in row) + "\n").encode()


def _write(conn, backend: str, table: str, cols: tuple[str, ...], rows: list[tuple]) -> None:
    names = ", ".join(cols)
    if backend == "sqlite":
        conn.executemany(f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(cols))})", rows)
        return
    with conn.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        copy.write(b"".join(_copy_line(r) for r in rows))


def load(urls: dict[str, str], tree: Tree, n: int) -> dict[str, Any]:
    """Generate the rows once and bulk-load them into every backend; indexes rebuilt after."""
    conns = {b: _raw(url, b) for b, url in urls.items()}
    counts = {"instances": 0, "tasks": 0, "open_tasks": 0, "deadlines": 0}
    seconds: dict[str, float] = {b: 0.0 for b in conns}
    try:
        indexes = {}
        for backend, conn in conns.items():
            if backend == "sqlite":
                conn.execute("PRAGMA foreign_keys=OFF")
                conn.execute("PRAGMA synchronous=OFF")
            else:
                for sql in (
                    "SET session_replication_role = replica",
                    "SET maintenance_work_mem = '512MB'",
                    "SET synchronous_commit = off",
                    "SET TimeZone = 'UTC'",
                ):
                    conn.execute(sql)
            indexes[backend] = _secondary_indexes(conn, backend)
            for name, _ in indexes[backend]:
                conn.execute(f"DROP INDEX {name}")
            for table, (cols, rows) in directory_rows(tree).items():
                _write(conn, backend, table, cols, rows)
        for chunk in work_rows(tree, n):
            counts["instances"] += len(chunk.instances)
            counts["tasks"] += len(chunk.tasks)
            counts["open_tasks"] += sum(1 for t in chunk.tasks if t[9] == "open")
            counts["deadlines"] += len(chunk.deadlines)
            for backend, conn in conns.items():
                t0 = time.perf_counter()
                _write(conn, backend, "workflow_instance", INSTANCE_COLS, chunk.instances)
                _write(conn, backend, "task", TASK_COLS, chunk.tasks)
                _write(conn, backend, "deadline", DEADLINE_COLS, chunk.deadlines)
                seconds[backend] += time.perf_counter() - t0
        for backend, conn in conns.items():
            t0 = time.perf_counter()
            for _, sql in indexes[backend]:
                conn.execute(sql)
            conn.commit()
            if backend == "postgresql":
                conn.autocommit = True
                conn.execute("VACUUM ANALYZE")
            else:
                conn.execute("ANALYZE")
                conn.commit()
            seconds[backend] += time.perf_counter() - t0
    finally:
        for conn in conns.values():
            conn.close()
    return {**counts, "load_seconds": {b: round(s, 1) for b, s in seconds.items()}}


# ---- measuring ---------------------------------------------------------------------------


def sample(fn: Callable[[], object], repeats: int) -> dict[str, float]:
    """One warm-up call, then ``repeats`` timed calls: p50 and p99 in milliseconds."""
    fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    p99 = statistics.quantiles(samples, n=100, method="inclusive")[98] if len(samples) > 1 else samples[0]
    return {"p50_ms": round(statistics.median(samples), 3), "p99_ms": round(p99, 3), "repeats": repeats}


def captured(engine: Engine, fn: Callable[[], object]) -> list[tuple[str, Any]]:
    """The statements ``fn`` sends to the driver, with their parameters."""
    statements: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return statements


def replay(conn, statements: list[tuple[str, Any]]) -> Callable[[], object]:
    """Run the engine's statements on a plain driver connection, fetching every row."""

    def call() -> None:
        for sql, params in statements:
            conn.execute(sql, params).fetchall()
        conn.rollback()

    return call


PLAN_NODE = re.compile(
    r"(Index Only Scan|Index Scan|Bitmap Index Scan|Seq Scan)(?: Backward)?(?: using (\w+))? on (\w+)"
    r"|(SCAN|SEARCH) (\w+)(?: USING (?:COVERING |INTEGER PRIMARY KEY)?(?:INDEX )?(\w+)?)?"
)
EXECUTION = re.compile(r"Execution Time: ([\d.]+) ms")


def index_use(plan: list[str]) -> list[str]:
    """The scans of a plan, e.g. ``task: Index Scan ix_task_queue`` or ``task: SCAN``."""
    found = []
    for line in plan:
        for m in PLAN_NODE.finditer(line):
            if m.group(1):
                found.append(f"{m.group(3)}: {m.group(1)}{' ' + m.group(2) if m.group(2) else ''}")
            else:
                found.append(f"{m.group(5)}: {m.group(4)}{' ' + m.group(6) if m.group(6) else ''}")
    return list(dict.fromkeys(found))


def explain(conn, backend: str, statements: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """The plan of every SELECT (EXPLAIN ANALYZE on PostgreSQL, EXPLAIN QUERY PLAN on SQLite)."""
    prefix = "EXPLAIN QUERY PLAN " if backend == "sqlite" else "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "
    plans = []
    for sql, params in statements:
        if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
            continue
        plan = [str(r[-1]) for r in conn.execute(prefix + sql, params).fetchall()]
        entry: dict[str, Any] = {"sql": sql, "plan": plan, "scans": index_use(plan)}
        executed = [float(m.group(1)) for line in plan if (m := EXECUTION.match(line))]
        if executed:
            entry["execution_ms"] = executed[0]
        plans.append(entry)
    conn.rollback()
    return plans


def naive_sql(actor: Actor, backend: str, kw: dict[str, Any]) -> tuple[str, list[Any]]:
    """The page as one hand-written statement: memberships OR-ed, sorted, LIMIT/OFFSET."""
    reach, params = [], []
    for m in actor.memberships:
        reach.append("(t.role = ? AND t.org_path >= ? AND t.org_path < ?)")
        params += [m.role, m.org_path, m.org_path[:-1] + "0"]
    where = ["t.status = 'open'", "i.status = 'active'", f"({' OR '.join(reach)})"]
    if kw.get("workflow"):
        where.append("i.workflow_key = ?")
        params.append(kw["workflow"])
    if kw.get("state"):
        where.append("t.state = ?")
        params.append(kw["state"])
    if kw.get("org_path"):
        where.append("i.org_path >= ? AND i.org_path < ?")
        params += [kw["org_path"], kw["org_path"][:-1] + "0"]
    if kw.get("overdue_at"):
        where.append("t.due_at < ?")
        params.append(_param(kw["overdue_at"], backend))
    page = kw.get("page", 1)
    sql = (
        "SELECT t.id FROM task t JOIN workflow_instance i ON i.id = t.instance_id "
        f"WHERE {' AND '.join(where)} ORDER BY t.due_at IS NULL, t.due_at, t.id "
        f"LIMIT {PER_PAGE} OFFSET {(page - 1) * PER_PAGE}"
    )
    return (sql if backend == "sqlite" else sql.replace("?", "%s")), params


def naive_scan_sql(backend: str) -> tuple[str, list[Any]]:
    sql = (
        "SELECT d.id, d.due_at, d.kind FROM deadline d JOIN workflow_instance i ON i.id = d.instance_id "
        "WHERE d.status = 'pending' AND d.due_at <= ? AND i.status = 'active' "
        f"ORDER BY d.due_at, d.id LIMIT {SCAN_BATCH}"
    )
    return (sql if backend == "sqlite" else sql.replace("?", "%s")), [_param(NOW, backend)]


def _param(at: datetime, backend: str) -> Any:
    return _ts(at.astimezone(UTC).replace(tzinfo=None)) if backend == "sqlite" else at


def measure(url: str, backend: str, tree: Tree, repeats: int, naive_repeats: int) -> dict[str, Any]:
    """Every query through the engine, replayed raw, and as the naive statement; plans of the engine's SQL."""
    engine = make_engine(url)
    sessions = session_factory(engine)
    with sessions() as s:
        actors = {name: load_actor(s, uid, NOW) for uid, name in enumerate(USERS, start=1)}
    cases: dict[str, tuple[Callable[[], list[int]], tuple[str, list[Any]]]] = {}
    for name, (who, kw) in queries(tree).items():

        def page(actor=actors[who], kw=kw) -> list[int]:
            with sessions() as s:
                result = task_queue(s, actor, per_page=PER_PAGE, **kw)
                return [t.id for t in result.items], result.total, result.exact

        cases[name] = (page, naive_sql(actors[who], backend, kw))

    def scan() -> list[int]:
        return [row[0] for row in _candidates(sessions, NOW, None, SCAN_BATCH)], None, True

    cases["overdue scan"] = (scan, naive_scan_sql(backend))
    out: dict[str, Any] = {}
    conn = _raw(url, backend)
    try:
        for name, (call, (sql, params)) in cases.items():
            ids, total, exact = call()
            naive_ids = [r[0] for r in conn.execute(sql, params).fetchall()]
            conn.rollback()
            statements = captured(engine, call)
            entry = {
                "rows": len(ids),
                "total": total,
                "exact": exact,
                "same_as_naive": ids == naive_ids,
                "statements": len(statements),
                "engine": sample(call, repeats),
                "raw": sample(replay(conn, statements), repeats),
                "naive": sample(replay(conn, [(sql, params)]), naive_repeats),
                "plans": explain(conn, backend, statements),
            }
            entry["engine_vs_raw"] = ratio(entry["engine"]["p50_ms"], entry["raw"]["p50_ms"])
            out[name] = entry
    finally:
        conn.close()
        engine.dispose()
    return out


def run(backends: tuple[str, ...], instances: int, repeats: int, naive_repeats: int) -> dict[str, Any]:
    """Load ``instances`` into each backend at once, then time every query on each."""
    tree = org_tree()
    result: dict[str, Any] = {
        "instances": instances,
        "per_page": PER_PAGE,
        "org_units": len(tree.units),
        "villages": len(tree.villages),
        "townships": sum(1 for u in tree.units if u.kind == "township"),
        "backends": list(backends),
    }
    with ExitStack() as stack:
        urls = {b: stack.enter_context(database(b)) for b in backends}
        result["rows"] = load(urls, tree, instances)
        for backend, url in urls.items():
            result[backend] = measure(url, backend, tree, repeats, naive_repeats)
    return result


def markdown(result: dict[str, Any]) -> str:
    rows = result["rows"]
    lines = [
        f"{rows['instances']:,} instances, {rows['tasks']:,} tasks ({rows['open_tasks']:,} open), "
        f"{rows['deadlines']:,} deadline rows; {result['org_units']:,} org units. Page size "
        f"{result['per_page']}; the overdue scan reads {SCAN_BATCH} due rows (the scheduler's batch). "
        f"Load seconds: {', '.join(f'{b} {s}' for b, s in rows['load_seconds'].items())}.",
    ]
    for backend in result["backends"]:
        lines += [
            "",
            f"**{backend}** (ms; `seen` is the page's total, `+` when capped)",
            "",
            "| query | seen | engine p50 | engine p99 | raw p50 | raw p99 | engine / raw | naive SQL p50 | "
            "same ids | plan |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, e in result[backend].items():
            seen = "—" if e["total"] is None else f"{e['total']}{'' if e['exact'] else '+'}"
            scans = "; ".join(dict.fromkeys(s for p in e["plans"] for s in p["scans"]))
            lines.append(
                f"| {name} | {seen} | {e['engine']['p50_ms']:.2f} | {e['engine']['p99_ms']:.2f} | "
                f"{e['raw']['p50_ms']:.2f} | {e['raw']['p99_ms']:.2f} | ×{e['engine_vs_raw']} | "
                f"{e['naive']['p50_ms']:.2f} | {'yes' if e['same_as_naive'] else '**no**'} | {scans} |"
            )
    return "\n".join(lines)


def targets(result: dict[str, Any]) -> list[Target]:
    out = []
    n = f"{result['instances']:,}"
    for backend in result["backends"]:
        limit = LIMITS_MS[backend]
        for name in TARGETED:
            e = result[backend][name]
            out.append(
                Target(
                    f"{backend} {name} p50 at {n}",
                    f"{e['engine']['p50_ms']:.2f} ms",
                    f"≤ {limit:g} ms",
                    e["engine"]["p50_ms"] <= limit,
                )
            )
            out.append(
                Target(
                    f"{backend} {name} engine / raw",
                    f"×{e['engine_vs_raw']}",
                    f"≤ ×{MAX_VS_RAW:g}",
                    e["engine_vs_raw"] <= MAX_VS_RAW,
                )
            )
    return out
