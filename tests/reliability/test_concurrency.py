"""Concurrency: many writers on one instance, and many instances at once (issue 8).

The same transition fired at the same moment (a barrier) by N threads of one process or by N
separate processes: exactly one wins, the rest are refused with a precise error, and nothing
is written twice. Four workers driving 28 instances through the whole grant flow, fighting
over some of them: no deadlock, no lost update, every audit chain whole.
"""

from __future__ import annotations

import queue
import threading

import pytest
from sqlalchemy import event, func, select

from engine import audit
from engine.errors import EngineError
from engine.store.db import make_engine, session_factory
from engine.store.models import AuditEvent, Instance
from tests.engine.sample import make_runtime
from tests.reliability.concurrency_worker import (
    CHAIN_FIRES,
    LATER,
    actor_for,
    chain_worker,
    counts,
    process_context,
    race_one,
    seed,
)

RACERS = 8
WORKERS = 4
OWN_PER_WORKER = 6
SHARED = 4
JOIN_TIMEOUT = 120


def run_all(mode: str, target, argsets: list[tuple]) -> list:
    """Run ``target(*args, barrier, results)`` once per argset in threads or processes; return the results."""
    if mode == "threads":
        barrier, results = threading.Barrier(len(argsets)), queue.Queue()
        runners = [threading.Thread(target=target, args=(*a, barrier, results)) for a in argsets]
    else:
        ctx = process_context()
        barrier, results = ctx.Barrier(len(argsets)), ctx.Queue()
        runners = [ctx.Process(target=target, args=(*a, barrier, results)) for a in argsets]
    for r in runners:
        r.start()
    out = [results.get(timeout=JOIN_TIMEOUT) for _ in runners]
    for r in runners:
        r.join(timeout=JOIN_TIMEOUT)
    assert not any(r.is_alive() for r in runners), "a worker is still running: deadlock or hang"
    return out


def assert_chains_whole(sessions) -> None:
    with sessions() as s:
        assert audit.verify(s) == []


@pytest.mark.parametrize("mode", ["threads", "processes"])
def test_same_transition_at_once_exactly_one_wins(db_url, sessions, mode):
    """N racers fire 'approve' on one version: one commits, N-1 get Conflict, nothing happens twice."""
    world = seed(db_url, 1)
    iid = world.instances[0]
    before = counts(sessions, iid)
    assert before["state"] == "township_review"
    deciders = ["town_a1", "town_a1_b"] * (RACERS // 2)
    outcomes = run_all(
        mode,
        race_one,
        [(db_url, iid, "approve", who, world.users, before["version"]) for who in deciders],
    )
    kinds = [kind for kind, _ in outcomes]
    assert kinds.count("ok") == 1, outcomes
    assert set(kinds) - {"ok"} == {"Conflict"}, outcomes
    assert ("ok", before["version"] + 1) in outcomes
    assert counts(sessions, iid) == {
        "state": "dept_review",
        "version": before["version"] + 1,
        "open_tasks": [("dept_review", "agri", 1), ("dept_review", "finance", 1)],
        "tasks_made": sorted(
            before["tasks_made"] + [("dept_review", "agri", 1), ("dept_review", "finance", 1)]
        ),
        "pending_clocks": 0,
        "events": before["events"] + 1,
    }
    with sessions() as s:
        approvals = s.scalar(
            select(func.count()).where(AuditEvent.instance_id == iid, AuditEvent.trigger == "approve")
        )
    assert approvals == 1
    assert_chains_whole(sessions)


def test_racers_without_expected_version_lose_to_the_new_state(db_url, sessions):
    """Without ``expected_version`` the losers wait for the instance's lock, then see the new state.

    ``FOR UPDATE`` on PostgreSQL, the database's write lock taken before reading on SQLite:
    either way every loser is refused as 'not possible now' (NotPossible).
    """
    world = seed(db_url, 1, steps=())
    iid = world.instances[0]
    before = counts(sessions, iid)
    outcomes = run_all(
        "threads", race_one, [(db_url, iid, "submit", "applicant_a1", world.users, None)] * RACERS
    )
    kinds = [kind for kind, _ in outcomes]
    assert kinds.count("ok") == 1, outcomes
    assert set(kinds) - {"ok"} == {"NotPossible"}, outcomes
    after = counts(sessions, iid)
    assert (after["state"], after["version"], after["events"]) == (
        "notice",
        before["version"] + 1,
        before["events"] + 1,
    )
    assert after["open_tasks"] == []
    assert after["tasks_made"] == before["tasks_made"] == [("draft", "", 1)]
    assert after["pending_clocks"] == 1
    assert_chains_whole(sessions)


def test_many_instances_in_parallel_no_deadlock_no_lost_update(db_url, sessions):
    """4 workers drive 6 own and 4 shared instances each to 'granted' at once.

    Threads on SQLite, separate processes on PostgreSQL. Every worker ends (bounded joins: no
    deadlock); each instance took exactly five successful fires in total and its version rose by
    exactly that many (no lost update); audit events match the fires, no step holds a task twice,
    and every chain verifies.
    """
    world = seed(db_url, WORKERS * OWN_PER_WORKER + SHARED, steps=())
    shared = world.instances[:SHARED]
    own = world.instances[SHARED:]
    before = {iid: counts(sessions, iid) for iid in world.instances}
    reports = run_all(
        "threads" if db_url.startswith("sqlite") else "processes",
        chain_worker,
        [
            (db_url, w, own[w * OWN_PER_WORKER : (w + 1) * OWN_PER_WORKER] + shared, world.users)
            for w in range(WORKERS)
        ],
    )
    assert [unexpected for _, _, _, unexpected in reports] == [[]] * WORKERS
    fired = {iid: sum(r[1].get(iid, 0) for r in reports) for iid in world.instances}
    assert fired == {iid: CHAIN_FIRES for iid in world.instances}
    refused = sum(sum(r[2].values()) for r in reports)
    assert refused > 0, "the shared instances were never contended"
    for iid in world.instances:
        assert counts(sessions, iid) == {
            "state": "granted",
            "version": before[iid]["version"] + CHAIN_FIRES,
            "open_tasks": [],
            "tasks_made": [
                ("dept_review", "agri", 1),
                ("dept_review", "finance", 1),
                ("draft", "", 1),
                ("township_review", "", 1),
            ],
            "pending_clocks": 0,
            "events": before[iid]["events"] + CHAIN_FIRES,
        }, iid
    with sessions() as s:
        statuses = set(s.scalars(select(Instance.status)))
    assert statuses == {"completed"}
    assert_chains_whole(sessions)


def test_reader_of_the_old_version_is_told_conflict(db_url, sessions):
    """A racer that has read the instance when the other racer fires: one wins, the other gets Conflict.

    The interleaving is forced: racer A stops right after reading the instance, racer B fires
    meanwhile, then A goes on (once B is done, or after a short wait if B is blocked by A's lock,
    as on PostgreSQL). Whoever commits first wins; the other must hear Conflict, never another refusal.
    """
    world = seed(db_url, 1)
    iid = world.instances[0]
    runtime = make_runtime()
    version = counts(sessions, iid)["version"]
    actors = {u: actor_for(sessions, world.users, u, LATER) for u in ("town_a1", "town_a1_b")}
    a_has_read, b_done = threading.Event(), threading.Event()
    a_engine = make_engine(db_url)

    @event.listens_for(a_engine, "after_cursor_execute")
    def pause_after_instance_read(conn, cursor, statement, *args):
        if statement.startswith("SELECT workflow_instance.") and not a_has_read.is_set():
            a_has_read.set()
            b_done.wait(timeout=1)

    outcomes: dict[str, object] = {}

    def racer(name, factory, user):
        try:
            with factory.begin() as s:
                outcomes[name] = runtime.fire(
                    s, iid, "approve", actors[user], now=LATER, expected_version=version
                )
        except EngineError as exc:
            outcomes[name] = exc
        finally:
            if name == "B":
                b_done.set()

    racer_a = threading.Thread(target=racer, args=("A", session_factory(a_engine), "town_a1_b"))
    racer_a.start()
    if not a_has_read.wait(timeout=30):
        pytest.fail("racer A never read the instance: the interleaving was not forced")
    racer_b = threading.Thread(target=racer, args=("B", sessions, "town_a1"))
    racer_b.start()
    for t in (racer_a, racer_b):
        t.join(timeout=JOIN_TIMEOUT)
    a_engine.dispose()
    if racer_a.is_alive() or racer_b.is_alive():
        pytest.fail("a racer hangs")
    assert counts(sessions, iid)["version"] == version + 1
    assert sorted(type(o).__name__ for o in outcomes.values()) == ["Conflict", "FireResult"], outcomes
