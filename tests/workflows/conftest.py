"""Fixtures for the Ganzi workflows: the real registry, and a small Ganzi world per test.

The ``sessions`` fixture of tests/conftest.py gives a fresh migrated database on SQLite
and on PostgreSQL; ``world`` seeds two counties of the demo org tree and the demo users.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.scope import Actor, load_actor
from engine.store.models import Instance
from tests.conftest import T0
from workflows import build_runtime
from workflows.demo import COUNTIES, DEMO_COUNTY, build_world

SYSTEM = Actor.system()
TEST_COUNTIES = tuple(c for c in COUNTIES if c[0] in (DEMO_COUNTY, "513301"))
REASON = "理由 (reason)"


@pytest.fixture(scope="session")
def runtime():
    return build_runtime()


@pytest.fixture
def world(sessions):
    with sessions.begin() as s:
        return build_world(s, T0, TEST_COUNTIES)


@pytest.fixture
def actor(sessions, world):
    """``actor("township")``: the Actor of a demo user; ``actor(None)`` is the SYSTEM."""

    def load(username, now=T0):
        if username is None:
            return SYSTEM
        with sessions() as s:
            return load_actor(s, world.users[username].id, now)

    return load


@pytest.fixture
def drive(runtime, sessions, world, actor):
    """``drive(key, unit_code, starter, form, steps)`` → (instance id, trail of states).

    Each step is ``(trigger, username or None for SYSTEM, form)``, fired one hour apart;
    return/reject/object and other comment-requiring triggers get a reason.
    """

    def run(key, unit_code, starter, form, steps, start=T0):
        with sessions.begin() as s:
            inst = runtime.start(
                s, key, actor(starter, start), org_unit_id=world.units[unit_code].id, form=form, now=start
            )
            iid, trail = inst.id, [inst.state]
        for i, (trigger, who, step_form) in enumerate(steps, start=1):
            now = start + timedelta(hours=i)
            wf = runtime.registry.get(key).workflow
            with sessions.begin() as s:
                state = s.get(Instance, iid).state
                needs = any(t.needs_comment for t in wf.transitions_from(state, trigger))
                result = runtime.fire(
                    s,
                    iid,
                    trigger,
                    actor(who, now),
                    now=now,
                    form=step_form,
                    comment=REASON if needs else None,
                )
            trail.append(result.to_state)
        return iid, trail

    return run
