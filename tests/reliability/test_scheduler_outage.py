"""Scheduler faults: the database is unavailable for a while (issue 8).

The scheduler runs for real (APScheduler ``BlockingScheduler`` in a thread, short backoff
delays) while the database really fails: on PostgreSQL a TCP proxy between the scheduler
and the server closes every connection and refuses new ones; on SQLite another connection
holds an EXCLUSIVE lock, so every claim fails with "database is locked". Deadlines fall
due meanwhile (the scans' clock moves past them). Each failed scan must log one warning
with its next delay, the delays must double up to the cap, and once the database is back
the next scan must act on every due row exactly once.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url

from engine.deadlines import load_year
from engine.runtime import Runtime
from engine.scheduler import build_scheduler
from engine.store.db import make_engine, session_factory
from engine.store.models import DeadlineRow, Notification
from tests.conftest import T0
from tests.engine.sample import build_world, make_runtime
from tests.engine.test_scheduler import assert_each_once, submit
from tests.reliability.outage_proxy import OutageProxy

BACK = datetime(2025, 6, 2, 1, 0, tzinfo=UTC)
INSTANCES = 4
FIRST, CAP = 0.2, 1.6
DELAYS = [0.2, 0.4, 0.8, 1.6, 1.6]


def seeded(url: str):
    """The sample world and ``INSTANCES`` grants in their notice, each with its timer row."""
    engine = make_engine(url)
    sessions = session_factory(engine)
    runtime = make_runtime()
    with sessions.begin() as s:
        for year in (2025, 2026):
            load_year(s, year)
        world = build_world(s)
    iids = [submit(sessions, runtime, world) for _ in range(INSTANCES)]
    return engine, sessions, iids


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def statuses(sessions) -> Counter:
    with sessions() as s:
        return Counter(s.scalars(select(DeadlineRow.status)))


class CuttingRuntime(Runtime):
    """Cuts the database off inside the scan's transaction, right after its first timer fires."""

    def __init__(self, cut: Callable[[], None]) -> None:
        super().__init__(make_runtime().registry)
        self.cut, self.fires = cut, 0

    def fire(self, session, instance_id, trigger, actor, **kw):
        result = super().fire(session, instance_id, trigger, actor, **kw)
        self.fires += 1
        if self.fires == 1:
            self.cut()
        return result


def outage(scheduler_sessions, check_sessions, iids, cut, restore, caplog, runtime=None) -> None:
    """Scan once while up; cut; let rows fall due and scans fail; restore; check catch-up, once each.

    With a ``runtime`` that cuts the database itself, ``cut`` is None: the first scan of the
    due rows loses its connection in the middle of its batch.
    """
    caplog.set_level(logging.INFO, logger="engine.scheduler")
    scans_at = [T0]
    scheduler = build_scheduler(
        scheduler_sessions,
        runtime or make_runtime(),
        interval_seconds=60,
        clock=lambda: scans_at[0],
        first_retry_seconds=FIRST,
        max_retry_seconds=CAP,
    )
    scan = scheduler.get_job("run_due").func
    finished = threading.Event()  # the job counts as running until this event (max_instances=1)
    scheduler.add_listener(lambda _: finished.set(), EVENT_JOB_EXECUTED)
    thread = threading.Thread(target=scheduler.start, daemon=True)
    thread.start()
    try:
        assert finished.wait(30), "the first scan"
        assert (scan.succeeded, scan.acted) == (1, 0)

        if cut is not None:
            cut()
        scans_at[0] = BACK
        scheduler.modify_job("run_due", next_run_time=datetime.now(UTC))
        wait_for(lambda: scan.failures >= len(DELAYS), f"{len(DELAYS)} failed scans")
        assert statuses(check_sessions) == {"pending": INSTANCES}, "nothing acted on while down"
        restore()
        wait_for(lambda: scan.succeeded == 2, "a scan after the database is back")
    finally:
        scheduler.shutdown(wait=True)
        thread.join(timeout=10)

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and hasattr(r, "retry_seconds")]
    assert [r.failures for r in warnings] == list(range(1, len(warnings) + 1)), "one warning per failure"
    assert [r.retry_seconds for r in warnings][: len(DELAYS)] == DELAYS
    assert all(r.retry_seconds == CAP for r in warnings[len(DELAYS) :])
    assert all("database unavailable" in r.getMessage() and "next try in" in r.getMessage() for r in warnings)
    assert any("available again after" in r.getMessage() for r in caplog.records)

    assert scan.acted == 4 * INSTANCES, "the first scan back catches up on every row"
    assert_each_once(check_sessions, iids)
    with check_sessions() as s:
        keys = Counter(
            kind
            for kind, n in s.execute(
                select(Notification.kind, func.count(Notification.dedupe_key.distinct()))
                .where(Notification.dedupe_key.startswith("deadline:"))
                .group_by(Notification.kind)
            )
            for _ in range(n)
        )
        total = s.scalar(select(func.count()).where(Notification.dedupe_key.startswith("deadline:")))
    assert keys == {"remind": 2 * 2 * INSTANCES, "overdue": 2 * INSTANCES}, "two township holders each"
    assert total == keys.total(), "no notification twice"


@pytest.fixture
def proxied(pg_url):
    """The seeded rows, and the scheduler's sessions reaching PostgreSQL through an :class:`OutageProxy`."""
    direct, sessions, iids = seeded(pg_url)
    url = make_url(pg_url)
    proxy = OutageProxy(url.host, url.port or 5432)
    through = make_engine(
        url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False),
        connect_args={"connect_timeout": 3},
    )
    yield session_factory(through), sessions, iids, proxy
    proxy.cut()
    through.dispose()
    direct.dispose()


@pytest.mark.postgres_only
def test_postgres_cut_off_by_a_proxy_backs_off_and_catches_up_once(proxied, caplog):
    through, sessions, iids, proxy = proxied
    outage(through, sessions, iids, proxy.cut, proxy.restore, caplog)
    assert proxy.connections >= 2, "the scheduler reconnected through the proxy"


@pytest.mark.postgres_only
def test_postgres_cut_off_in_the_middle_of_a_batch_rolls_it_back_and_catches_up_once(proxied, caplog):
    through, sessions, iids, proxy = proxied
    runtime = CuttingRuntime(proxy.cut)
    outage(through, sessions, iids, None, proxy.restore, caplog, runtime)
    assert runtime.fires == INSTANCES + 1, "the first timer fired twice: once rolled back, once for good"


def test_sqlite_locked_by_another_connection_backs_off_and_catches_up_once(sqlite_template, tmp_path, caplog):
    path = tmp_path / "outage.db"
    shutil.copyfile(sqlite_template, path)
    direct, sessions, iids = seeded(f"sqlite:///{path}")
    scheduler_engine = make_engine(f"sqlite:///{path}")
    event.listen(scheduler_engine, "connect", lambda conn, _: conn.execute("PRAGMA busy_timeout=100"))
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def lock() -> None:
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("UPDATE calendar_year SET source = source")

    def unlock() -> None:
        holder.execute("COMMIT")

    try:
        outage(session_factory(scheduler_engine), sessions, iids, lock, unlock, caplog)
    finally:
        holder.close()
        scheduler_engine.dispose()
        direct.dispose()
