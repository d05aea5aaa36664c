"""Every validation fault is named with its place, and a bad definition never registers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from engine.definitions import SYSTEM, Countersign, Deadline, Field, Guard, Role, State, T, Workflow
from engine.errors import DefinitionError
from engine.machine import Registry
from engine.validate import validate
from tests.engine.sample import GRANT, ROLES

OK = Guard("ok", "总是通过", lambda c: [])


def _wf(states, transitions, **kw):
    return Workflow(
        key="w", version=1, title="测试", states=tuple(states), transitions=tuple(transitions), **kw
    )


BASE_STATES = (
    State("a", "甲", actor="applicant"),
    State("b", "乙", actor="township_reviewer"),
    State("z", "终", final=True),
)
BASE_TRANSITIONS = (T("go", "a", "b"), T("done", "b", "z"))

FAULTS = {
    "unknown source state": (
        BASE_STATES,
        (*BASE_TRANSITIONS, T("x", "nowhere", "b")),
        "unknown source state 'nowhere'",
    ),
    "unknown destination": (
        BASE_STATES,
        (*BASE_TRANSITIONS, T("x", "a", "nowhere")),
        "unknown destination state 'nowhere'",
    ),
    "unreachable state": (
        (*BASE_STATES, State("c", "丙", actor="applicant")),
        (*BASE_TRANSITIONS, T("x", "c", "z")),
        "state 'c': unreachable from 'a'",
    ),
    "leaves a final state": (BASE_STATES, (*BASE_TRANSITIONS, T("undo", "z", "a")), "leaves final state 'z'"),
    "guarded branches without otherwise": (
        BASE_STATES,
        (T("go", "a", "b", guard=OK), T("go", "a", "z", guard=OK), T("done", "b", "z")),
        "state 'a' trigger 'go': guarded branches can all fail and there is no 'otherwise'",
    ),
    "otherwise not last": (
        BASE_STATES,
        (T("go", "a", "b", otherwise=True), T("go", "a", "z", guard=OK), T("done", "b", "z")),
        "'otherwise' must be the last branch",
    ),
    "neither actor nor timer": (
        (State("a", "甲", actor="applicant"), State("b", "乙"), State("z", "终", final=True)),
        BASE_TRANSITIONS,
        "state 'b': has neither an actor nor a timer",
    ),
    "unknown role": (
        (State("a", "甲", actor="nobody"), *BASE_STATES[1:]),
        BASE_TRANSITIONS,
        "unknown role 'nobody'",
    ),
    "duplicate state": (
        (*BASE_STATES, State("b", "重复", actor="applicant")),
        BASE_TRANSITIONS,
        "duplicate state 'b'",
    ),
    "no final state": (
        (State("a", "甲", actor="applicant"), State("b", "乙", actor="applicant")),
        (T("go", "a", "b"), T("back", "b", "a")),
        "has no final state",
    ),
    "deadline with two units": (
        (State("a", "甲", actor="applicant", deadline=Deadline(days=1, months=1)), *BASE_STATES[1:]),
        BASE_TRANSITIONS,
        "deadline needs exactly one of months, days, working_days, annual or field",
    ),
    "timer without SYSTEM transition": (
        (State("a", "甲", timer=Deadline(days=10, on_expiry="ended")), *BASE_STATES[1:]),
        BASE_TRANSITIONS,
        "expires into 'ended', which has no SYSTEM transition here",
    ),
    "escalation to unknown role": (
        (
            State("a", "甲", actor="applicant", deadline=Deadline(days=3, escalate_to="boss")),
            *BASE_STATES[1:],
        ),
        BASE_TRANSITIONS,
        "escalates to unknown role 'boss'",
    ),
    "duplicate field": (
        BASE_STATES,
        (T("go", "a", "b", fields=(Field("x", "甲"), Field("x", "乙"))), BASE_TRANSITIONS[1]),
        "duplicate field 'x'",
    ),
    "unknown field kind": (
        BASE_STATES,
        (T("go", "a", "b", fields=(Field("x", "甲", kind="float"),)), BASE_TRANSITIONS[1]),
        "field 'x' has unknown kind 'float'",
    ),
    "countersign without actor": (
        (
            State("a", "甲", actor="applicant"),
            State(
                "b",
                "乙",
                timer=Deadline(days=1, on_expiry="done"),
                countersign=Countersign(parties=lambda ctx: []),
            ),
            State("z", "终", final=True),
        ),
        (T("go", "a", "b"), T("done", "b", "z", by=SYSTEM)),
        "countersign needs an actor role",
    ),
    "unknown subflow": (
        (*BASE_STATES[:2], State("s", "子", subflow="ghost"), BASE_STATES[2]),
        (*BASE_TRANSITIONS, T("sub", "a", "s"), T("passed", "s", "z", by=SYSTEM)),
        "unknown subflow 'ghost'",
    ),
    "bulk transition asking for a reason": (
        BASE_STATES,
        (T("go", "a", "b", bulk=True, needs_comment=True), BASE_TRANSITIONS[1]),
        "a bulk transition cannot ask for",
    ),
    "choice mixed with guard": (
        BASE_STATES,
        (T("go", "a", "b", choice=True), T("go", "a", "z", guard=OK), T("done", "b", "z")),
        "choice branches cannot mix with guarded or otherwise branches",
    ),
}


@pytest.mark.parametrize("name", FAULTS)
def test_each_fault_is_named(name):
    states, transitions, expected = FAULTS[name]
    faults = validate(_wf(states, transitions), ROLES)
    assert any(expected in f for f in faults), faults
    registry = Registry(ROLES)
    with pytest.raises(DefinitionError) as err:
        registry.register(_wf(states, transitions))
    assert expected in str(err.value)
    with pytest.raises(DefinitionError):
        registry.get("w")


def test_the_sample_workflow_is_sound():
    assert validate(GRANT, ROLES) == []


def test_all_faults_are_reported_together():
    wf = _wf(
        (State("a", "甲", actor="nobody"), State("b", "乙"), State("z", "终", final=True)),
        (T("go", "a", "b"), T("x", "z", "a")),
    )
    faults = validate(wf, ROLES)
    assert len(faults) >= 3
    assert any("unknown role 'nobody'" in f for f in faults)
    assert any("neither an actor nor a timer" in f for f in faults)
    assert any("leaves final state 'z'" in f for f in faults)


def test_duplicate_roles_and_versions_refused():
    with pytest.raises(DefinitionError, match="duplicate role 'applicant'"):
        Registry((*ROLES, Role("applicant", "again", "village")))
    registry = Registry(ROLES)
    registry.register(GRANT)
    with pytest.raises(DefinitionError, match="already registered"):
        registry.register(GRANT)


def test_one_shared_machine_per_version():
    registry = Registry(ROLES)
    registry.register(GRANT)
    registry.register(replace(GRANT, version=2, title="补助申请 v2"))
    assert registry.get("grant", 1).machine is registry.get("grant", 1).machine
    assert registry.get("grant", 1).machine is not registry.get("grant", 2).machine
    assert registry.get("grant").workflow.version == 2
    assert registry.get("grant", 1).machine.models == []
