"""Golden paths of the sample workflow: each route with its expected trail of states."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.scope import Actor
from engine.store.models import AuditEvent, Instance, Task
from tests.conftest import T0
from tests.engine.sample import grant_form

SYSTEM = Actor.system()

ROUTES = {
    "small grant": (
        "50",
        [
            ("submit", "applicant_a1"),
            ("notice_ended", None),
            ("approve", "town_a1"),
            ("approve", "dept_agri"),
            ("approve", "dept_finance"),
        ],
        ["draft", "notice", "township_review", "dept_review", "dept_review", "granted"],
    ),
    "boundary 100万 goes to county": (
        "100",
        [
            ("submit", "applicant_a1"),
            ("notice_ended", None),
            ("approve", "town_a1"),
            ("approve", "county_a"),
            ("approve", "dept_agri"),
            ("approve", "dept_finance"),
        ],
        ["draft", "notice", "township_review", "county_review", "dept_review", "dept_review", "granted"],
    ),
    "99.999999万 stays below": (
        "99.999999",
        [
            ("submit", "applicant_a1"),
            ("notice_ended", None),
            ("approve", "town_a1"),
        ],
        ["draft", "notice", "township_review", "dept_review"],
    ),
    "objection in notice": (
        "50",
        [
            ("submit", "applicant_a1"),
            ("object", "villager_a1"),
        ],
        ["draft", "notice", "draft"],
    ),
    "rejected by township": (
        "50",
        [
            ("submit", "applicant_a1"),
            ("notice_ended", None),
            ("reject", "town_a1"),
        ],
        ["draft", "notice", "township_review", "rejected"],
    ),
    "returned then resubmitted goes back to returner": (
        "100",
        [
            ("submit", "applicant_a1"),
            ("notice_ended", None),
            ("approve", "town_a1"),
            ("return", "county_a"),
            ("submit", "applicant_a1"),
            ("approve", "county_a"),
        ],
        ["draft", "notice", "township_review", "county_review", "draft", "county_review", "dept_review"],
    ),
}


@pytest.mark.parametrize("name", ROUTES)
def test_route(name, runtime, sessions, actor, world):
    amount, steps, expected_trail = ROUTES[name]
    with sessions.begin() as s:
        inst = runtime.start(
            s,
            "grant",
            actor("applicant_a1"),
            org_unit_id=world.units["A1v"].id,
            form=grant_form(amount),
            now=T0,
        )
        iid = inst.id
    trail = ["draft"]
    for i, (trigger, who) in enumerate(steps):
        now = T0 + timedelta(hours=i + 1)
        with sessions.begin() as s:
            result = runtime.fire(
                s,
                iid,
                trigger,
                SYSTEM if who is None else actor(who, now),
                now=now,
                comment="理由" if trigger in ("return", "reject", "object") else None,
            )
        trail.append(result.to_state)
    assert trail == expected_trail
    with sessions() as s:
        events = s.scalars(
            select(AuditEvent).where(AuditEvent.instance_id == iid).order_by(AuditEvent.seq)
        ).all()
        assert [e.action for e in events] == ["start"] + [
            "transition" if r else "sign" for r in _advances(trail)
        ]
        inst = s.get(Instance, iid)
        assert inst.state == expected_trail[-1]
        open_tasks = s.scalars(select(Task).where(Task.instance_id == iid, Task.status == "open")).all()
        if inst.state in ("granted", "rejected"):
            assert inst.status == "completed" and open_tasks == []


def _advances(trail):
    """A countersign party's sign leaves the state unchanged (a 'sign' event, not a transition)."""
    return [not (a == b == "dept_review") for a, b in itertools.pairwise(trail)]
