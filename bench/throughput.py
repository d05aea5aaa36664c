"""One approval step through ``Runtime.fire``, against the same rows written by a raw driver.

A 乡镇审核 approves: authorisation (the open task of the step's role at the actor's township),
the checklist guard, the state change with its optimistic ``version_id``, the township task
closed and its clocks cancelled, a county task opened with its reminder and breach clocks,
the assignment notice (outbox row) and the hash-chained audit event, all in one committed
transaction, one transaction per step as a web request makes it. The database is pre-filled
in bulk (``executemany`` on SQLite, ``COPY`` on PostgreSQL, secondary indexes built after the
load) with 100k and then 1M instances on SQLite, each with its task, audit stream, audit event
and outbox row, a fifth still running with an open task and a pending clock.

The baseline is the raw driver (``sqlite3`` with the engine's own PRAGMAs, ``psycopg``)
issuing, in one transaction per step, the minimal reads (instance, open task, audit stream
head, the step role's holders) and exactly the INSERT/UPDATE statements a fire issues
(captured with an SQLAlchemy ``before_cursor_execute`` listener and compared), computing the
same SHA-256 chain. After the run both halves are checked to have written the same rows, and
every chain verifies. Engine and raw steps alternate in rounds, so load from other processes
falls on both; PostgreSQL runs 1, 2 and 4 worker processes on disjoint instances.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import event, func, select

from bench.common import Target, database, ratio
from engine import audit
from engine.clock import UTC
from engine.deadlines import due_at
from engine.definitions import Deadline, Field, Guard, Role, State, T, Workflow
from engine.machine import Registry
from engine.runtime import Runtime
from engine.scope import load_actor
from engine.store.db import make_engine, session_factory
from engine.store.models import AuditEvent, DeadlineRow, Instance, Notification, Task

TITLE = "Transition throughput vs the database limit"
SIZES = {
    "full": {"prefills": (100_000, 1_000_000), "steps": 1200, "pg_prefill": 100_000, "pg_steps": 800,
             "workers": (1, 2, 4), "rounds": 5},
    "quick": {"prefills": (300, 600), "steps": 16, "pg_prefill": 300, "pg_steps": 16,
              "workers": (1, 2), "rounds": 2},
}

NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
FIRE_AT = NOW + timedelta(hours=3)
ACTIVE_SHARE = 5
"""One prefilled instance in this many is still running."""
ROLES = (
    Role("applicant", "申报人", "village"),
    Role("township_reviewer", "乡镇审核", "township"),
    Role("county_reviewer", "县级审核", "county"),
)
HAS_PLAN = Guard("has_plan", "有实施方案", lambda c: [] if c.data.get("plan") else ["没有实施方案 (no plan)"])
COUNTY_CLOCK = Deadline(days=15, remind=(3,), escalate_to="county_reviewer")
REVIEW = Workflow(
    key="review",
    version=1,
    title="项目审核",
    start_role="applicant",
    title_field="name",
    start_fields=(Field("name", "名称"), Field("amount", "金额", kind="money", min_value=1),
                  Field("plan", "实施方案", required=False)),
    states=(
        State("draft", "拟定", actor="applicant"),
        State("township_review", "乡镇审核", actor="township_reviewer", checklist=(HAS_PLAN,),
              deadline=Deadline(days=10, remind=(2,), escalate_to="county_reviewer")),
        State("county_review", "县级审核", actor="county_reviewer", deadline=COUNTY_CLOCK),
        State("approved", "已批准", final=True),
        State("rejected", "不予批准", final=True),
    ),
    transitions=(
        T("submit", "draft", "township_review"),
        T("approve", "township_review", "county_review", checked=True),
        T("approve", "county_review", "approved"),
        T("reject", ("township_review", "county_review"), "rejected", needs_comment=True),
    ),
    trigger_labels={"submit": "提交", "approve": "通过", "reject": "不予批准"},
)
SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
COUNTIES, TOWNSHIPS, VILLAGES = 4, 5, 5
"""Counties, townships per county, villages per township."""


def make_runtime() -> Runtime:
    registry = Registry(ROLES)
    registry.register(REVIEW)
    return Runtime(registry)


# ---- bulk loading --------------------------------------------------------------------------

COLUMNS = {
    "org_unit": ("id", "code", "name", "kind", "dept", "parent_id", "path"),
    "user_account": ("id", "username", "display_name", "password_hash", "active", "failed_logins", "locale"),
    "role_membership": ("id", "user_id", "role", "org_unit_id"),
    "workflow_instance": (
        "id", "workflow_key", "workflow_version", "state", "status", "title", "org_unit_id", "org_path",
        "data", "started_by_id", "created_at", "updated_at", "entered_at", "previous_state", "version_id",
    ),
    "task": ("id", "instance_id", "state", "kind", "role", "org_unit_id", "org_path", "status", "outcome",
             "urge_count", "created_at", "due_at", "closed_at"),
    "deadline": ("id", "instance_id", "state", "kind", "due_at", "status", "escalate_to", "days_before",
                 "created_at", "attempts"),
    "audit_stream": ("id", "key", "length", "head_hash"),
    "audit_event": ("id", "stream_id", "seq", "instance_id", "at", "action", "actor_id", "actor_name",
                    "role", "to_state", "detail", "prev_hash", "hash"),
    "notification": ("id", "channel", "user_id", "instance_id", "kind", "subject", "body", "dedupe_key",
                     "created_at", "attempts"),
}
LOAD_ORDER = tuple(COLUMNS)


def sqlite_time(at: datetime) -> str:
    """A UTC time as SQLAlchemy stores it in SQLite."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


@dataclass
class Tree:
    """The org tree, its users, and where the next bulk-loaded row id starts per table."""

    units: list[tuple]
    users: list[tuple]
    memberships: list[tuple]
    villages: list[tuple[int, str, int, int]]
    """(village id, path, township id, applicant user id)"""
    reviewers: dict[int, int]
    """township id -> its reviewer's user id"""
    county_of: dict[int, int]
    county_reviewer: dict[int, int]
    next_id: dict[str, int]


def org_tree() -> Tree:
    """province → 4 counties → 5 townships each → 5 villages each; one user per role per unit."""
    units, users, members, villages = [], [], [], []
    reviewers, county_of, county_reviewer = {}, {}, {}

    def unit(code: str, kind: str, parent: tuple | None) -> tuple:
        uid = len(units) + 1
        row = (uid, code, code, kind, None, parent[0] if parent else None, f"{parent[6] if parent else '/'}{uid}/")
        units.append(row)
        return row

    def user(name: str, role: str, at: tuple) -> int:
        uid = len(users) + 1
        users.append((uid, name, name, "!", True, 0, "zh"))
        members.append((len(members) + 1, uid, role, at[0]))
        return uid

    province = unit("p", "province", None)
    for c in range(COUNTIES):
        county = unit(f"c{c}", "county", province)
        county_reviewer[county[0]] = user(f"county{c}", "county_reviewer", county)
        for t in range(TOWNSHIPS):
            town = unit(f"c{c}t{t}", "township", county)
            reviewers[town[0]] = user(f"town{c}_{t}", "township_reviewer", town)
            for v in range(VILLAGES):
                village = unit(f"c{c}t{t}v{v}", "village", town)
                county_of[village[0]] = county[0]
                villages.append((village[0], village[6], town[0], user(f"app{c}_{t}_{v}", "applicant", village)))
    next_id = dict.fromkeys(LOAD_ORDER, 1)
    next_id.update(org_unit=len(units) + 1, user_account=len(users) + 1, role_membership=len(members) + 1)
    return Tree(units, users, members, villages, reviewers, county_of, county_reviewer, next_id)


def _form(i: int) -> dict[str, Any]:
    return {"name": f"项目{i}", "amount": 500_000 + i % 97 * 10_000, "plan": "方案"}


def background_rows(tree: Tree, n: int, backend: str) -> dict[str, Iterator[tuple]]:
    """``n`` instances as the runtime leaves them: most approved, every fifth waiting at the county.

    Values are ready for the driver (times already as SQLite text), so that a million rows load fast.
    """
    first = {t: tree.next_id[t] for t in LOAD_ORDER}
    running = sum(1 for i in range(n) if i % ACTIVE_SHARE == 0)
    for table, count in (("workflow_instance", n), ("task", n), ("audit_stream", n), ("audit_event", n),
                         ("notification", n), ("deadline", running)):
        tree.next_id[table] += count
    when = NOW - timedelta(days=30)
    at, due = (sqlite_time(t) if backend == "sqlite" else t for t in (when, due_at(COUNTY_CLOCK, when)))
    forms = [json.dumps(_form(i)) for i in range(97)]
    places = [(vid, path, applicant, tree.county_of[vid], tree.county_reviewer[tree.county_of[vid]])
              for vid, path, _, applicant in tree.villages]
    at_village = [places[i % len(places)] for i in range(len(places) * ACTIVE_SHARE)]
    cycle = len(at_village)
    iid, tid, sid, eid, nid, did = (first[t] for t in ("workflow_instance", "task", "audit_stream", "audit_event",
                                                        "notification", "deadline"))
    zero = "0" * 64

    def instances() -> Iterator[tuple]:
        for i in range(n):
            vid, path, applicant, _, _ = at_village[i % cycle]
            live = i % ACTIVE_SHARE == 0
            yield (iid + i, "review", 1, "county_review" if live else "approved", "active" if live else "completed",
                   "项目", vid, path, forms[i % 97], applicant, at, at, at, "township_review", 3)

    def task_rows() -> Iterator[tuple]:
        for i in range(n):
            county = at_village[i % cycle][3]
            if i % ACTIVE_SHARE == 0:
                yield (tid + i, iid + i, "county_review", "step", "county_reviewer", county, f"/1/{county}/",
                       "open", None, 0, at, due, None)
            else:
                yield (tid + i, iid + i, "county_review", "step", "county_reviewer", county, f"/1/{county}/",
                       "done", "approve", 0, at, due, at)

    def deadlines() -> Iterator[tuple]:
        for k, i in enumerate(range(0, n, ACTIVE_SHARE)):
            yield (did + k, iid + i, "county_review", "breach", due, "pending", "county_reviewer", None, at, 0)

    def streams() -> Iterator[tuple]:
        for i in range(n):
            yield (sid + i, f"instance:{iid + i}", 1, f"{i:064x}")

    def events() -> Iterator[tuple]:
        for i in range(n):
            yield (eid + i, sid + i, 1, iid + i, at, "start", at_village[i % cycle][2], "app", "applicant", "draft",
                   "{}", zero, f"{i:064x}")

    def notes() -> Iterator[tuple]:
        for i in range(n):
            yield (nid + i, "inapp", at_village[i % cycle][4], iid + i, "assigned", "新待办: 项目", "",
                   f"assigned:{tid + i}", at, 0)

    return {"workflow_instance": instances(), "task": task_rows(), "deadline": deadlines(),
            "audit_stream": streams(), "audit_event": events(), "notification": notes()}


def target_rows(tree: Tree, n: int) -> tuple[list[tuple[int, int]], dict[str, list[tuple]]]:
    """``n`` instances waiting at 乡镇审核, each with its open task, clocks and a verifiable chain.

    Returns ((instance id, township id), ...) and the rows per table.
    """
    rows: dict[str, list[tuple]] = {t: [] for t in ("workflow_instance", "task", "deadline", "audit_stream",
                                                     "audit_event")}
    targets = []
    at = NOW
    clock = REVIEW.state("township_review").deadline
    due = due_at(clock, at)
    for i in range(n):
        vid, path, town, applicant = tree.villages[i % len(tree.villages)]
        iid, tid, sid, eid = (tree.next_id[t] for t in ("workflow_instance", "task", "audit_stream", "audit_event"))
        form = _form(i)
        rows["workflow_instance"].append((iid, "review", 1, "township_review", "active", form["name"], vid, path,
                                          json.dumps(form), applicant, at, at, at, "draft", 2))
        rows["task"].append((tid, iid, "township_review", "step", "township_reviewer", town,
                             path.rsplit("/", 2)[0] + "/", "open", None, 0, at, due, None))
        for days in clock.remind:
            rows["deadline"].append((tree.next_id["deadline"], iid, "township_review", "remind",
                                     due - timedelta(days=days), "pending", None, days, at, 0))
            tree.next_id["deadline"] += 1
        rows["deadline"].append((tree.next_id["deadline"], iid, "township_review", "breach", due, "pending",
                                 "county_reviewer", None, at, 0))
        tree.next_id["deadline"] += 1
        key = audit.instance_stream(iid)
        fields = {"seq": 1, "instance_id": iid, "action": "start", "actor_id": applicant, "actor_name": "app",
                  "role": "applicant", "to_state": "draft", "detail": {}}
        digest = audit.event_hash(key, audit.GENESIS, at, fields)
        rows["audit_stream"].append((sid, key, 1, digest))
        rows["audit_event"].append((eid, sid, 1, iid, at, "start", applicant, "app", "applicant", "draft", "{}",
                                    audit.GENESIS, digest))
        for t in ("workflow_instance", "task", "audit_stream", "audit_event"):
            tree.next_id[t] += 1
        targets.append((iid, town))
    return targets, rows


def _sqlite_value(v: Any) -> Any:
    return sqlite_time(v) if isinstance(v, datetime) else v


def load(url: str, backend: str, tables: dict[str, Iterable[tuple]], *, bulk: bool = False) -> None:
    """Write rows table by table in one transaction.

    ``bulk``: the rows are ready for the driver, and secondary indexes are dropped and rebuilt.
    """
    if backend == "sqlite":
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("PRAGMA cache_size=-400000")
        conn.execute("PRAGMA synchronous=OFF")
        indexes = []
        if bulk:
            indexes = conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL AND tbl_name IN "
                f"({','.join('?' * len(tables))})", tuple(tables)).fetchall()
        conn.execute("BEGIN")
        for name, _ in indexes:
            conn.execute(f"DROP INDEX {name}")
        for table in LOAD_ORDER:
            if table not in tables:
                continue
            cols = COLUMNS[table]
            sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
            rows = tables[table]
            conn.executemany(sql, rows if bulk else (tuple(_sqlite_value(v) for v in row) for row in rows))
        for _, sql in indexes:
            conn.execute(sql)
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        return
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        with conn.cursor() as cur:
            for table in LOAD_ORDER:
                if table not in tables:
                    continue
                cols = COLUMNS[table]
                with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                    for row in tables[table]:
                        copy.write_row(row)
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE")


# ---- one step, engine and raw --------------------------------------------------------------

@dataclass
class Raw:
    """The raw driver connection and how to write one step with it."""

    conn: Any
    postgres: bool
    record: list[str] | None = None

    def ex(self, sql: str, params: tuple = ()) -> Any:
        if self.postgres:
            sql = sql.replace("?", "%s")
        if self.record is not None:
            self.record.append(sql)
        return self.conn.execute(sql, params)

    def t(self, at: datetime) -> Any:
        return at if self.postgres else sqlite_time(at)


def connect_raw(url: str) -> Raw:
    """A raw connection with the settings the engine's own connections get."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        engine = make_engine(url)
        with engine.connect() as c:
            pragmas = {p: c.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("synchronous", "foreign_keys")}
        engine.dispose()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=10000")
        for p, v in pragmas.items():
            conn.execute(f"PRAGMA {p}={v}")
        return Raw(conn, False)
    return Raw(psycopg.connect(url.replace("postgresql+psycopg", "postgresql")), True)


def raw_step(raw: Raw, iid: int, actor_id: int, actor_name: str, now: datetime) -> None:
    """The minimal reads and exactly the writes of one ``approve`` fire, in one transaction."""
    lock = " FOR UPDATE" if raw.postgres else ""
    if not raw.postgres:
        raw.ex("BEGIN")
    state, version, path, data = raw.ex(
        f"SELECT state, version_id, org_path, data FROM workflow_instance WHERE id = ?{lock}", (iid,)
    ).fetchone()
    data = data if isinstance(data, dict) else json.loads(data)
    task_id, town = raw.ex(
        "SELECT id, org_unit_id FROM task WHERE instance_id = ? AND status = 'open' AND role = ?",
        (iid, "township_reviewer"),
    ).fetchone()
    key = audit.instance_stream(iid)
    sid, length, head = raw.ex(f"SELECT id, length, head_hash FROM audit_stream WHERE key = ?{lock}", (key,)).fetchone()
    county = int(path.strip("/").split("/")[1])
    holders = [r[0] for r in raw.ex(
        "SELECT user_id FROM role_membership WHERE role = ? AND org_unit_id = ?", ("county_reviewer", county))]
    raw.ex("UPDATE task SET status = ?, outcome = ?, comment = ?, closed_at = ?, closed_by_id = ? WHERE id = ?",
           ("done", "approve", "同意", raw.t(now), actor_id, task_id))
    raw.ex("UPDATE deadline SET status = ? WHERE instance_id = ? AND status = ?", ("cancelled", iid, "pending"))
    raw.ex(
        "UPDATE workflow_instance SET state = ?, updated_at = ?, entered_at = ?, previous_state = ?, "
        "previous_actor_id = ?, version_id = ? WHERE id = ? AND version_id = ?",
        ("county_review", raw.t(now), raw.t(now), state, actor_id, version + 1, iid, version),
    )
    detail = {"form_diff": {}, "attachments": [], "task_id": task_id}
    fields = {"action": "transition", "actor_name": actor_name, "detail": detail, "instance_id": iid,
              "trigger": "approve", "from_state": state, "to_state": "county_review", "comment": "同意",
              "idempotency_key": None, "actor_id": actor_id, "role": "township_reviewer", "org_unit_id": town,
              "on_behalf_of_id": None, "on_behalf_of_name": None, "seq": length + 1}
    digest = audit.event_hash(key, head, now, fields)
    raw.ex(
        "INSERT INTO audit_event (stream_id, seq, instance_id, at, action, actor_id, actor_name, role, "
        "org_unit_id, \"trigger\", from_state, to_state, comment, detail, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (sid, length + 1, iid, raw.t(now), "transition", actor_id, actor_name, "township_reviewer", town, "approve",
         state, "county_review", "同意", json.dumps(detail), head, digest),
    )
    raw.ex("UPDATE audit_stream SET length = ?, head_hash = ? WHERE id = ?", (length + 1, digest, sid))
    due = due_at(COUNTY_CLOCK, now)
    for days in COUNTY_CLOCK.remind:
        raw.ex("INSERT INTO deadline (instance_id, state, kind, due_at, status, days_before, created_at, attempts) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               (iid, "county_review", "remind", raw.t(due - timedelta(days=days)), "pending", days, raw.t(now), 0))
    raw.ex("INSERT INTO deadline (instance_id, state, kind, due_at, status, escalate_to, created_at, attempts) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
           (iid, "county_review", "breach", raw.t(due), "pending", "county_reviewer", raw.t(now), 0))
    new_task = raw.ex(
        "INSERT INTO task (instance_id, state, kind, role, org_unit_id, org_path, status, urge_count, created_at, "
        "due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (iid, "county_review", "step", "county_reviewer", county, f"/1/{county}/", "open", 0, raw.t(now),
         raw.t(due)),
    ).fetchone()[0]
    for user_id in holders:
        raw.ex("INSERT INTO notification (channel, user_id, instance_id, kind, subject, body, dedupe_key, "
               "created_at, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
               ("inapp", user_id, iid, "assigned", f"新待办: {data['name']}", "",
                f"assigned:{new_task}:{user_id}", raw.t(now), 0))
    if raw.postgres:
        raw.conn.commit()
    else:
        raw.ex("COMMIT")


_WRITE = re.compile(r"^\s*(INSERT INTO|UPDATE)\s+\"?(\w+)", re.I)


def writes(statements: Iterable[str]) -> list[str]:
    """The sorted distinct (verb table) of the write statements among ``statements``."""
    return sorted({f"{m[1].split()[0].upper()} {m[2]}" for s in statements if (m := _WRITE.match(s))})


# ---- workers ----------------------------------------------------------------------------------

@dataclass
class Job:
    """One worker's share: per round, the engine's targets and the raw driver's targets."""

    url: str
    engine_ids: list[list[tuple[int, int]]]
    raw_ids: list[list[tuple[int, int]]]
    reviewers: dict[int, int]


def _worker(job: Job, barrier: Any, errors: Any) -> None:
    try:
        runtime = make_runtime()
        engine = make_engine(job.url)
        sessions = session_factory(engine)
        with sessions() as s:
            actors = {town: load_actor(s, uid, NOW) for town, uid in job.reviewers.items()}
        raw = connect_raw(job.url)
        for engine_ids, raw_ids in zip(job.engine_ids, job.raw_ids, strict=True):
            barrier.wait()
            for iid, town in engine_ids:
                with sessions.begin() as s:
                    runtime.fire(s, iid, "approve", actors[town], now=FIRE_AT, comment="同意")
            barrier.wait()
            barrier.wait()
            for iid, town in raw_ids:
                actor = actors[town]
                raw_step(raw, iid, actor.user_id, actor.name, FIRE_AT)
            barrier.wait()
        raw.conn.close()
        engine.dispose()
    except BaseException as exc:  # reported to the parent, which then raises
        errors.put(f"{type(exc).__name__}: {exc}")
        barrier.abort()


def measure(url: str, tree: Tree, engine_ids: list, raw_ids: list, workers: int, rounds: int) -> dict[str, Any]:
    """Run ``workers`` processes over disjoint targets; wall time of the engine and the raw halves."""
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(workers + 1, timeout=600)
    errors = ctx.Queue()

    def share(ids: list, w: int) -> list[list]:
        mine = ids[w::workers]
        return [mine[r::rounds] for r in range(rounds)]

    procs = [
        ctx.Process(target=_worker, args=(Job(url, share(engine_ids, w), share(raw_ids, w), tree.reviewers),
                                          barrier, errors))
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    spent = {"engine": 0.0, "raw": 0.0}
    try:
        for _ in range(rounds):
            for kind in ("engine", "raw"):
                barrier.wait()
                t0 = time.perf_counter()
                barrier.wait()
                spent[kind] += time.perf_counter() - t0
    except Exception:
        raise RuntimeError(errors.get(timeout=10)) from None
    finally:
        for p in procs:
            p.join(timeout=60)
    engine_rate, raw_rate = len(engine_ids) / spent["engine"], len(raw_ids) / spent["raw"]
    return {
        "workers": workers,
        "steps": len(engine_ids),
        "engine_per_s": round(engine_rate, 1),
        "raw_per_s": round(raw_rate, 1),
        "engine_vs_raw": ratio(engine_rate, raw_rate),
    }


def captured(url: str, tree: Tree, engine_id: tuple[int, int], raw_id: tuple[int, int]) -> dict[str, Any]:
    """The statements of one fire (SQLAlchemy listener) and of one raw step, and their writes."""
    runtime = make_runtime()
    engine = make_engine(url)
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, stmt, *_: seen.append(stmt))
    sessions = session_factory(engine)
    with sessions() as s:
        actor = load_actor(s, tree.reviewers[engine_id[1]], NOW)
    with sessions.begin() as s:
        runtime.fire(s, engine_id[0], "approve", actor, now=FIRE_AT, comment="同意")
    engine.dispose()
    raw = connect_raw(url)
    raw.record = []
    raw_step(raw, raw_id[0], actor.user_id, actor.name, FIRE_AT)
    raw.conn.close()
    engine_columns, raw_columns = filled(url, engine_id[0]), filled(url, raw_id[0])
    statements = [s for s in seen if s.split()[0].upper() not in ("BEGIN", "COMMIT", "PRAGMA")]
    return {
        "engine_statements": len(statements),
        "raw_statements": len([s for s in raw.record if s not in ("BEGIN", "COMMIT")]),
        "engine_writes": writes(statements),
        "raw_writes": writes(raw.record),
        "same_columns": engine_columns == raw_columns,
        "columns": engine_columns,
    }


def filled(url: str, iid: int) -> dict[str, list[list[str]]]:
    """Per table, the non-NULL columns of each row of instance ``iid``: what a step wrote, shape for shape."""
    engine = make_engine(url)
    out = {}
    with engine.connect() as c:
        for table, column in (("workflow_instance", "id"), ("task", "instance_id"), ("deadline", "instance_id"),
                              ("audit_event", "instance_id"), ("notification", "instance_id")):
            rows = c.exec_driver_sql(f"SELECT * FROM {table} WHERE {column} = {int(iid)} ORDER BY id").mappings()
            out[table] = [sorted(k for k, v in row.items() if v is not None) for row in rows]
    engine.dispose()
    return out


def outcome(url: str, ids: list[tuple[int, int]]) -> dict[str, Any]:
    """What the steps left: instance states and versions, rows per table, and whether every chain verifies."""
    engine = make_engine(url)
    iids = [i for i, _ in ids]
    with session_factory(engine)() as s:
        def counts(*cols) -> dict[str, int]:
            """Rows of the targets' instances per value of ``cols[:2]`` (``cols[2]`` is the instance column)."""
            out: Counter[str] = Counter()
            for at in range(0, len(iids), 500):
                query = select(cols[0], cols[1], func.count()).where(cols[2].in_(iids[at:at + 500]))
                out.update({f"{a}/{b}": n for a, b, n in s.execute(query.group_by(cols[0], cols[1]))})
            return dict(sorted(out.items()))

        result = {
            "instances": counts(Instance.state, Instance.version_id, Instance.id),
            "tasks": counts(Task.state, Task.status, Task.instance_id),
            "deadlines": counts(DeadlineRow.kind, DeadlineRow.status, DeadlineRow.instance_id),
            "events": counts(AuditEvent.action, AuditEvent.seq, AuditEvent.instance_id),
            "notifications": counts(Notification.kind, Notification.channel, Notification.instance_id),
            "broken_chains": sum(len(audit.verify(s, audit.instance_stream(i))) for i in iids),
        }
    engine.dispose()
    return result


# ---- the section ------------------------------------------------------------------------------

def next_ids(url: str, tree: Tree) -> None:
    """Continue each table's ids after the rows the steps have added since the last load."""
    engine = make_engine(url)
    with engine.connect() as c:
        for table in LOAD_ORDER:
            tree.next_id[table] = c.exec_driver_sql(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").scalar()
    engine.dispose()


def _half(url: str, tree: Tree, n: int) -> tuple[list, list]:
    """Load ``2n`` targets; every other one goes to the engine, the rest to the raw driver."""
    targets, rows = target_rows(tree, 2 * n)
    load(url, "postgresql" if url.startswith("postgresql") else "sqlite", rows)
    return targets[0::2], targets[1::2]


def _checked(url: str, engine_ids: list, raw_ids: list) -> dict[str, Any]:
    mine, theirs = outcome(url, engine_ids), outcome(url, raw_ids)
    return {
        "engine_rows": mine,
        "raw_rows": theirs,
        "rows_match": mine == theirs,
        "broken_chains": mine["broken_chains"] + theirs["broken_chains"],
    }


def run(backends: Iterable[str], prefills: tuple[int, ...], steps: int, pg_prefill: int, pg_steps: int,
        workers: tuple[int, ...], rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for backend in backends:
        with database(backend) as url:
            tree = org_tree()
            load(url, backend, {"org_unit": tree.units, "user_account": tree.users,
                                "role_membership": tree.memberships})
            if backend == "sqlite":
                probe = make_engine(url)
                with probe.connect() as c:
                    settings = {"journal_mode": c.exec_driver_sql("PRAGMA journal_mode").scalar(),
                                "synchronous": SYNCHRONOUS[c.exec_driver_sql("PRAGMA synchronous").scalar()]}
                probe.dispose()
                plan = [(size, size - previous, 1) for size, previous in zip(prefills, (0, *prefills), strict=False)]
            else:
                settings = {}
                plan = [(pg_prefill, pg_prefill if i == 0 else 0, w) for i, w in enumerate(workers)]
            runs = []
            for size, more, w in plan:
                next_ids(url, tree)
                t0 = time.perf_counter()
                if more:
                    load(url, backend, background_rows(tree, more, backend), bulk=True)
                loaded = time.perf_counter() - t0
                engine_ids, raw_ids = _half(url, tree, (steps if backend == "sqlite" else pg_steps) + 1)
                capture = captured(url, tree, engine_ids[0], raw_ids[0])
                figures = measure(url, tree, engine_ids[1:], raw_ids[1:], w, rounds)
                runs.append({"prefill": size, "load_s": round(loaded, 1), **figures, **capture,
                             **_checked(url, engine_ids, raw_ids)})
            out[backend] = {"settings": settings, "runs": runs}
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = []
    for backend, res in result.items():
        settings = ", ".join(f"{k}={v}" for k, v in res["settings"].items())
        lines += [f"**{backend}**" + (f" ({settings})" if settings else ""), "",
                  "| prefilled instances | workers | steps | engine steps/s | raw steps/s | engine / raw | "
                  "statements (engine / raw) | same rows | chains broken |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in res["runs"]:
            lines.append(
                f"| {r['prefill']:,} | {r['workers']} | {r['steps']} | {r['engine_per_s']} | {r['raw_per_s']} | "
                f"×{r['engine_vs_raw']} | {r['engine_statements']} / {r['raw_statements']} | "
                f"{'yes' if r['rows_match'] and r['same_columns'] else '**no**'} | {r['broken_chains']} |"
            )
        first = res["runs"][0]
        lines += ["", f"Writes of a fire: {', '.join(first['engine_writes'])}; of a raw step: "
                  f"{', '.join(first['raw_writes'])}.", ""]
    return "\n".join(lines)


def targets(result: dict[str, Any]) -> list[Target]:
    out = []
    for r in result.get("sqlite", {}).get("runs", []):
        out.append(Target(f"fire vs raw sqlite3, {r['prefill']:,} instances", f"×{r['engine_vs_raw']}", "≥ ×0.6",
                          r["engine_vs_raw"] >= 0.6))
    pg = result.get("postgresql", {}).get("runs", [])
    if pg:
        r = max(pg, key=lambda r: r["workers"])
        out.append(Target(f"fire vs raw psycopg, {r['workers']} workers", f"×{r['engine_vs_raw']}", "≥ ×0.6",
                          r["engine_vs_raw"] >= 0.6))
    return out
