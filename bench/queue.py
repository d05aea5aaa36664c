"""我的待办 at scale: :func:`engine.tasks.task_queue` over bulk-loaded instances.

The org tree is Ganzi-shaped: a province, the prefecture with its departments, 18
counties each with ten departments, 12–24 townships per county and 6–12 villages per
township (about 320 townships and 2,900 villages). Instances and their tasks are loaded
in bulk (COPY on PostgreSQL, ``executemany`` on SQLite), not through the runtime: the
rows have the shape the runtime writes (materialised org paths, one open task per active
instance, three for a countersign step, two closed tasks per ended instance).

The tree and the actors do not depend on the number of instances, so the same queries
run against a small and a large database; a third run drops the composite indexes
(``ix_task_queue``, ``ix_instance_scope``) from the large one.
"""

from __future__ import annotations

import json
import random
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import Engine

from bench.common import database, ratio, timed
from engine.clock import UTC
from engine.scope import Actor, load_actor
from engine.store.db import make_engine, session_factory
from engine.tasks import task_queue
from workflows import REGISTRY
from workflows.roles import DEPARTMENTS

NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
ACTIVE_SHARE = 0.2
"""Share of instances still running; the rest ended (completed, or rejected) with closed tasks."""
COMPOSITE = ("ix_task_queue", "ix_instance_scope")
PATTERN_OPS = (
    "CREATE INDEX ix_task_queue_pattern ON task (status, role, org_path varchar_pattern_ops, due_at)"
)
"""ix_task_queue as it would have to be for PostgreSQL to match ``org_path LIKE 'prefix%'`` in a non-C collation."""
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


# ---- the actors --------------------------------------------------------------------------

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


def queries(tree: Tree) -> dict[str, dict[str, dict[str, Any]]]:
    """Per actor: the first page, a filtered page and a deep page of 我的待办."""
    county = tree.counties[3]
    township = memberships(tree)["township"][0][1]
    return {
        "township": {
            "first": {},
            "filtered": {"workflow": "project_library", "overdue_at": NOW},
            "deep": {"page": 10},
        },
        "county_dept": {
            "first": {},
            "filtered": {"state": "department_review", "org_path": township.path},
            "deep": {"page": 10},
        },
        "prefecture": {
            "first": {},
            "filtered": {"workflow": "project_library", "org_path": county.path},
            "deep": {"page": 50},
        },
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


def directory_rows(tree: Tree) -> dict[str, tuple[tuple[str, ...], list[tuple]]]:
    users, members = [], []
    for uid, name in enumerate(USERS, start=1):
        users.append((uid, f"bench_{name}", name, "x", True, 0, "zh"))
    for uid, name in enumerate(USERS, start=1):
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


def _task(
    tid: int,
    iid: int,
    state: str,
    party: str | None,
    role: str,
    unit: Unit,
    assignee: int | None,
    status: str,
    created: datetime,
    due: datetime | None,
    closed: datetime | None = None,
) -> tuple:
    return (
        tid,
        iid,
        state,
        "step",
        party,
        role,
        unit.id,
        unit.path,
        assignee,
        status,
        0,
        created,
        due,
        closed,
    )


def work_rows(tree: Tree, n: int, seed: int = 11) -> tuple[Iterator[tuple], list[tuple]]:
    """``n`` instances (as a generator) and their tasks (filled in as the instances are generated)."""
    rng = random.Random(seed)
    steps = _steps()
    mix = [(role, where) for role, _, where in ROLE_MIX]
    weights = [w for _, w, _ in ROLE_MIX]
    tasks: list[tuple] = []
    started = NOW - timedelta(days=3 * 365)

    def instances() -> Iterator[tuple]:
        for iid in range(1, n + 1):
            village = rng.choice(tree.villages)
            created = started + timedelta(seconds=rng.randrange(3 * 365 * 86400))
            data = json.dumps({"amount": rng.randrange(10_000, 50_000_000)})
            if rng.random() < ACTIVE_SHARE:
                role, where = rng.choices(mix, weights)[0]
                key, version, state = rng.choice(steps[role])
                entered = NOW - timedelta(seconds=rng.randrange(60 * 86400))
                due = None if rng.random() < 0.1 else entered + timedelta(days=rng.randint(5, 20))
                for unit, party in _offer_units(tree, where, village, rng):
                    assignee = 1 if rng.random() < 0.05 else None
                    tasks.append(
                        _task(len(tasks) + 1, iid, state, party, role, unit, assignee, "open", entered, due)
                    )
                status = "active"
            else:
                key, version, state = rng.choice(steps["township_reviewer"])
                entered = created + timedelta(days=rng.randint(1, 60))
                township = tree.township_of[village.id]
                for role, unit, at in (
                    ("village_applicant", village, created),
                    ("township_reviewer", township, entered),
                ):
                    closed = at + timedelta(days=2)
                    tasks.append(
                        _task(
                            len(tasks) + 1,
                            iid,
                            state,
                            None,
                            role,
                            unit,
                            None,
                            "done",
                            at,
                            at + timedelta(days=10),
                            closed,
                        )
                    )
                state, status = "done", "completed"
            yield (
                iid,
                key,
                version,
                state,
                status,
                f"项目 {iid}",
                village.id,
                village.path,
                data,
                created,
                entered,
                entered,
                1,
            )

    return instances(), tasks


# ---- loading -----------------------------------------------------------------------------


def _secondary_indexes(conn, backend: str, tables: tuple[str, ...]) -> list[tuple[str, str]]:
    if backend == "sqlite":
        marks = ",".join("?" * len(tables))
        return conn.execute(
            f"SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL AND tbl_name IN ({marks})",
            tables,
        ).fetchall()
    return conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) "
        "AND indexname NOT IN (SELECT conname FROM pg_constraint)",
        (list(tables),),
    ).fetchall()


def _sqlite_value(v: Any) -> Any:
    return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v


def _write(conn, backend: str, table: str, cols: tuple[str, ...], rows: Iterable[tuple]) -> None:
    names = ", ".join(cols)
    if backend == "sqlite":
        marks = ", ".join("?" * len(cols))
        conn.executemany(
            f"INSERT INTO {table} ({names}) VALUES ({marks})",
            (tuple(_sqlite_value(v) for v in row) for row in rows),
        )
        return
    with conn.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def load(url: str, backend: str, tree: Tree, n: int) -> dict[str, float]:
    """Bulk-load the tree, the bench users and ``n`` instances; indexes rebuilt after, then ANALYZE."""
    if backend == "sqlite":
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("PRAGMA synchronous=OFF")
    else:
        conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1))
        conn.execute("SET session_replication_role = replica")
        conn.execute("SET maintenance_work_mem = '256MB'")
        conn.execute("SET synchronous_commit = off")
    try:
        indexes = _secondary_indexes(conn, backend, ("workflow_instance", "task"))
        for name, _ in indexes:
            conn.execute(f"DROP INDEX {name}")
        for table, (cols, rows) in directory_rows(tree).items():
            _write(conn, backend, table, cols, rows)
        instances, tasks = work_rows(tree, n)
        _write(conn, backend, "workflow_instance", INSTANCE_COLS, instances)
        _write(conn, backend, "task", TASK_COLS, tasks)
        for _, sql in indexes:
            conn.execute(sql)
        conn.execute("ANALYZE")
        conn.commit()
        open_tasks = sum(1 for t in tasks if t[9] == "open")
        return {"instances": n, "tasks": len(tasks), "open_tasks": open_tasks}
    finally:
        conn.close()


def _ddl(url: str, *statements: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        for sql in (*statements, "ANALYZE"):
            conn.exec_driver_sql(sql)
    engine.dispose()


# ---- measuring ---------------------------------------------------------------------------


def _captured(engine: Engine, fn: Callable[[], object]) -> list[tuple[str, Any]]:
    statements: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return statements


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


def explain(engine: Engine, backend: str, fn: Callable[[], object]) -> list[dict[str, Any]]:
    """The plan of every statement ``fn`` runs (EXPLAIN ANALYZE on PostgreSQL)."""
    prefix = "EXPLAIN QUERY PLAN " if backend == "sqlite" else "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "
    plans = []
    with engine.connect() as conn:
        for statement, parameters in _captured(engine, fn):
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            rows = conn.exec_driver_sql(prefix + statement, parameters).all()
            plan = [str(r[-1]) for r in rows]
            entry = {"sql": statement.split("\n", 1)[0][:60], "plan": plan, "scans": index_use(plan)}
            executed = [float(m.group(1)) for line in plan if (m := EXECUTION.match(line))]
            if executed:
                entry["execution_ms"] = executed[0]
            plans.append(entry)
    return plans


def measure(url: str, backend: str, tree: Tree, repeats: int, with_plans: bool) -> dict[str, Any]:
    engine = make_engine(url)
    sessions = session_factory(engine)
    actors: dict[str, Actor] = {}
    with sessions() as s:
        for uid, name in enumerate(USERS, start=1):
            actors[name] = load_actor(s, uid, NOW)
    out: dict[str, Any] = {}
    for who, pages in queries(tree).items():
        for label, kw in pages.items():

            def call(actor=actors[who], kw=kw):
                with sessions() as s:
                    return task_queue(s, actor, **kw)

            result = call()
            entry = {"total": result.total, "rows": len(result.items), **timed(call, repeats)}
            if with_plans:
                entry["plans"] = explain(engine, backend, call)
            out[f"{who}/{label}"] = entry
    engine.dispose()
    return out


def run(backend: str, small: int, large: int, repeats: int, baseline_repeats: int) -> dict[str, Any]:
    """The same queries at ``small`` and ``large`` instances, and at ``large`` without the composite indexes."""
    tree = org_tree()
    result: dict[str, Any] = {
        "backend": backend,
        "org_units": len(tree.units),
        "villages": len(tree.villages),
        "townships": sum(1 for u in tree.units if u.kind == "township"),
    }
    for label, n in (("small", small), ("large", large)):
        with database(backend) as url:
            result[f"{label}_rows"] = load(url, backend, tree, n)
            result[label] = measure(url, backend, tree, repeats, with_plans=label == "large")
            if label != "large":
                continue
            if backend == "postgresql":
                _ddl(url, "DROP INDEX ix_task_queue", PATTERN_OPS)
                result["large_pattern_ops"] = measure(url, backend, tree, repeats, with_plans=True)
                _ddl(url, "DROP INDEX ix_task_queue_pattern", "DROP INDEX ix_instance_scope")
            else:
                _ddl(url, *(f"DROP INDEX {name}" for name in COMPOSITE))
            result["large_no_composite"] = measure(url, backend, tree, baseline_repeats, with_plans=True)
    large = result["large"]
    result["ratios"] = {
        q: {
            "large_vs_small": ratio(large[q]["median_ms"], result["small"][q]["median_ms"]),
            "no_index_vs_indexed": ratio(result["large_no_composite"][q]["median_ms"], large[q]["median_ms"]),
        }
        for q in large
    }
    if "large_pattern_ops" in result:
        for q, r in result["ratios"].items():
            r["pattern_ops_vs_indexed"] = ratio(
                result["large_pattern_ops"][q]["median_ms"], large[q]["median_ms"]
            )
    return result
