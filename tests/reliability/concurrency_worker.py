"""Workers for the concurrency tests: fire transitions from threads or from separate processes.

Every function here opens its own engine, so it runs the same in a thread of the test process
and in a child process (``multiprocessing`` forkserver context, see :func:`process_context`).
Outcomes come back as plain tuples on a queue, since exceptions and ORM objects do not cross
process boundaries cleanly.
"""

from __future__ import annotations

import multiprocessing
import random
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select

from engine.deadlines import load_year
from engine.errors import Conflict, Forbidden, NotPossible
from engine.scope import Actor, load_actor
from engine.store.db import make_engine, session_factory
from engine.store.models import AuditEvent, DeadlineRow, Instance, OrgUnit, Task
from tests.conftest import T0
from tests.engine.sample import build_world, grant_form, make_runtime

SYSTEM = None
"""In a step, the SYSTEM actor (timers) instead of a user name."""

TO_TOWNSHIP = (("submit", "applicant_a1"), ("notice_ended", SYSTEM))
CHAIN = {
    "draft": (("submit", "applicant_a1"),),
    "notice": (("notice_ended", SYSTEM),),
    "township_review": (("approve", "town_a1"),),
    "dept_review": (("approve", "dept_agri"), ("approve", "dept_finance")),
}
"""What may be fired in each state of the sample grant (50万: township → departments → granted)."""

CHAIN_FIRES = 5
"""Successful fires from draft to granted: submit, notice_ended, approve, two countersign signs."""

LATER = T0 + timedelta(days=1)


@dataclass(frozen=True)
class Seeded:
    """A database holding the sample world and some grant instances: user ids and instance ids."""

    users: dict[str, int]
    instances: list[int]


def process_context():
    """A forkserver context whose server has the engine imported already (cheap children)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


def actor_for(sessions, users: dict[str, int], name: str | None, now) -> Actor:
    if name is SYSTEM:
        return Actor.system()
    with sessions() as s:
        return load_actor(s, users[name], now)


def seed(url: str, count: int, steps=TO_TOWNSHIP) -> Seeded:
    """Build the sample world and start ``count`` grants, each walked through ``steps`` (an hour apart)."""
    engine = make_engine(url)
    with session_factory(engine).begin() as s:
        for year in (2025, 2026):
            load_year(s, year)
        users = {name: u.id for name, u in build_world(s).u.items()}
    engine.dispose()
    return Seeded(users, add_grants(url, users, count, steps))


def add_grants(url: str, users: dict[str, int], count: int, steps=TO_TOWNSHIP) -> list[int]:
    """Start ``count`` more grants in village A1v and walk each through ``steps``; their ids."""
    engine = make_engine(url)
    sessions = session_factory(engine)
    runtime = make_runtime()
    applicant = actor_for(sessions, users, "applicant_a1", T0)
    with sessions() as s:
        village = s.scalar(select(OrgUnit.id).where(OrgUnit.code == "A1v"))
    ids = []
    for _ in range(count):
        with sessions.begin() as s:
            ids.append(
                runtime.start(s, "grant", applicant, org_unit_id=village, form=grant_form("50"), now=T0).id
            )
    for hour, (trigger, who) in enumerate(steps, start=1):
        now = T0 + timedelta(hours=hour)
        who_acts = actor_for(sessions, users, who, now)
        for iid in ids:
            with sessions.begin() as s:
                runtime.fire(s, iid, trigger, who_acts, now=now)
    engine.dispose()
    return ids


def race_one(url, iid, trigger, user, users, expected_version, barrier, results) -> None:
    """Wait at ``barrier``, then fire once; put ``("ok", version)`` or ``(error class name, message)``."""
    engine = make_engine(url)
    sessions = session_factory(engine)
    runtime = make_runtime()
    who = actor_for(sessions, users, user, LATER)
    try:
        with sessions.begin() as s:
            s.get(Instance, iid)
            barrier.wait(timeout=30)
            result = runtime.fire(
                s, iid, trigger, who, now=LATER, comment="同意", expected_version=expected_version
            )
        results.put(("ok", result.version))
    except Exception as exc:  # the refusal is what the test asserts on
        results.put((type(exc).__name__, str(exc)))
    finally:
        engine.dispose()


def chain_worker(url, worker_no, instance_ids, users, barrier, results) -> None:
    """Drive each instance to ``granted``, racing the other workers on the shared ones.

    Each attempt reads the instance, picks a step its state allows (in a worker-specific order,
    so the countersign parties are contended) and fires it with ``expected_version``. Puts one
    ``(worker_no, {instance id: successful fires}, {refusal class: count}, [unexpected errors])``.
    """
    engine = make_engine(url)
    sessions = session_factory(engine)
    runtime = make_runtime()
    rng = random.Random(worker_no)
    order = list(instance_ids)
    rng.shuffle(order)
    fired: dict[int, int] = {iid: 0 for iid in order}
    refused: dict[str, int] = {}
    unexpected: list[str] = []
    actors = {who: actor_for(sessions, users, who, LATER) for steps in CHAIN.values() for _, who in steps}
    attempt = 0
    barrier.wait(timeout=60)
    for iid in order:
        for _ in range(40):
            with sessions() as s:
                inst = s.get(Instance, iid)
                state, version = inst.state, inst.version_id
            if state == "granted":
                break
            steps = list(CHAIN[state])
            rng.shuffle(steps)
            trigger, who = steps[0]
            attempt += 1
            now = LATER + timedelta(seconds=attempt, microseconds=worker_no)
            try:
                with sessions.begin() as s:
                    runtime.fire(s, iid, trigger, actors[who], now=now, expected_version=version)
                fired[iid] += 1
            except (Conflict, NotPossible, Forbidden) as exc:
                refused[type(exc).__name__] = refused.get(type(exc).__name__, 0) + 1
            except Exception as exc:  # any other error is reported to the test, which fails on it
                unexpected.append(f"{iid} {trigger}: {exc!r}")
    results.put((worker_no, fired, refused, unexpected))
    engine.dispose()


def counts(sessions, iid: int) -> dict[str, object]:
    """What the tests compare after a race: state, version, tasks per step (open, all), clocks, audit."""
    with sessions() as s:
        inst = s.get(Instance, iid)

        def tasks_per_step(*where):
            rows = s.execute(
                select(Task.state, Task.party, func.count())
                .where(Task.instance_id == iid, *where)
                .group_by(Task.state, Task.party)
            ).all()
            return sorted((state, party or "", n) for state, party, n in rows)

        return {
            "state": inst.state,
            "version": inst.version_id,
            "open_tasks": tasks_per_step(Task.status == "open"),
            "tasks_made": tasks_per_step(),
            "pending_clocks": s.scalar(
                select(func.count()).where(DeadlineRow.instance_id == iid, DeadlineRow.status == "pending")
            ),
            "events": s.scalar(select(func.count()).where(AuditEvent.instance_id == iid)),
        }
