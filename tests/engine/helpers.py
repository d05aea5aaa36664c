"""Small drivers for engine tests: start a sample instance and walk it to a state."""

from __future__ import annotations

from datetime import timedelta

from engine.scope import Actor
from tests.conftest import T0
from tests.engine.sample import grant_form

SYSTEM = Actor.system()
TO_TOWNSHIP = (("submit", "applicant_a1"), ("notice_ended", None))


def start_grant(runtime, sessions, actor, world, amount="50", village="A1v", who="applicant_a1", **form):
    with sessions.begin() as s:
        return runtime.start(
            s,
            "grant",
            actor(who),
            org_unit_id=world.units[village].id,
            form=grant_form(amount, **form),
            now=T0,
        ).id


def walk(runtime, sessions, actor, iid, steps, start_hour=1):
    """Fire each (trigger, user) in its own transaction, an hour apart; None is the SYSTEM."""
    result = None
    for i, (trigger, who) in enumerate(steps):
        now = T0 + timedelta(hours=start_hour + i)
        with sessions.begin() as s:
            result = runtime.fire(
                s,
                iid,
                trigger,
                SYSTEM if who is None else actor(who, now),
                now=now,
                comment="理由" if trigger in ("return", "reject", "object") else None,
            )
    return result
