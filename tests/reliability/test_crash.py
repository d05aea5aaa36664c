"""Crash safety: a process killed (SIGKILL) anywhere inside a fire leaves no half-done change.

A child process fires the township approval and is killed before each statement the fire sends,
just before COMMIT and just after it, one fresh instance per kill point, in a seeded random
order. After each kill the test process reopens the database: the instance is exactly as before
(state, version, tasks, clocks, audit, notifications) or, only for the kill after COMMIT,
exactly as after; its audit chain verifies; and a fresh process then fires it successfully.
"""

from __future__ import annotations

import random
import signal

from engine import audit
from tests.reliability.concurrency_worker import add_grants, process_context, seed
from tests.reliability.crash_worker import AFTER_COMMIT, BEFORE_COMMIT, fire_and_die, snapshot
from web.cli import main as shuangti

SEED = 20251126
CHILD_TIMEOUT = 60


def run_child(ctx, url: str, iid: int, user_id: int, kill_at):
    """Run one fire in a fresh process; its exit code and, if it lived, (statements, version)."""
    results = ctx.Queue()
    child = ctx.Process(target=fire_and_die, args=(url, iid, user_id, kill_at, results))
    child.start()
    child.join(timeout=CHILD_TIMEOUT)
    assert not child.is_alive(), f"the fire (kill at {kill_at}) hangs"
    return child.exitcode, (results.get(timeout=CHILD_TIMEOUT) if child.exitcode == 0 else None)


def test_kill_at_every_statement_leaves_before_or_after(db_url, sessions, capsys):
    """SIGKILL before each of the fire's statements, before and after COMMIT: never a mixed state."""
    ctx = process_context()
    world = seed(db_url, 1)
    reviewer = world.users["town_a1"]
    probe = world.instances[0]
    before = snapshot(sessions, probe)
    assert before["instance"][0] == "township_review"

    exit_code, report = run_child(ctx, db_url, probe, reviewer, None)
    assert exit_code == 0
    statements, version = report
    after = snapshot(sessions, probe)
    assert after["instance"][:3] == ("dept_review", "active", version)
    assert version == before["instance"][2] + 1
    assert after["audit_stream_length"] == before["audit_stream_length"] + 1
    assert statements > 10, "the fire should send its reads and writes as separate statements"

    points = [*range(1, statements + 1), BEFORE_COMMIT, AFTER_COMMIT]
    random.Random(SEED).shuffle(points)
    targets = dict(zip(points, add_grants(db_url, world.users, len(points)), strict=True))
    for kill_at, iid in targets.items():
        assert snapshot(sessions, iid) == before, iid
        exit_code, _ = run_child(ctx, db_url, iid, reviewer, kill_at)
        assert exit_code == -signal.SIGKILL, f"the child was not killed at {kill_at}"
        expected = after if kill_at == AFTER_COMMIT else before
        assert snapshot(sessions, iid) == expected, f"kill at {kill_at} left a mixed state"
        with sessions() as s:
            assert audit.verify(s, audit.instance_stream(iid)) == [], kill_at
        if expected is before:
            exit_code, report = run_child(ctx, db_url, iid, reviewer, None)
            assert (exit_code, report) == (0, (statements, version)), kill_at
            assert snapshot(sessions, iid) == after, kill_at

    assert shuangti(["--db", db_url, "audit", "verify"]) == 0
    assert "every stream is whole" in capsys.readouterr().out
