"""Hostile workflow definitions: registering one raises only DefinitionError naming the fault,
and a refused definition leaves the registry exactly as it was (a later valid one still registers).

Definitions come from two sources: mutations of the real Ganzi workflows and of the sample GRANT
(a state dropped, a dangling destination, a duplicate, a transition out of a final state, a bad
clock, a value of the wrong type…), and wholly random definitions built from hostile parts.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import count, pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.definitions import (
    FIELD_KINDS,
    SYSTEM,
    Countersign,
    Deadline,
    Field,
    Guard,
    Role,
    State,
    T,
    Transition,
    Workflow,
)
from engine.errors import DefinitionError
from engine.machine import Registry
from engine.validate import NAME_MAX, validate
from tests.engine.sample import GRANT, ROLES
from tests.reliability.hostile_settings import HOSTILE
from workflows import build_registry
from workflows.roles import ROLES as GANZI_ROLES

GANZI = build_registry().latest()
BASES = [GRANT, *GANZI]
OK = Guard("ok", "总是通过", lambda c: [])
WRONG = st.sampled_from([None, 7, -1, 1.5, True, "", b"x", ["a"], ("a", 1), {"a": 1}, "x" * (NAME_MAX + 1)])
NEW_VERSIONS = count(100)


def _snapshot(registry: Registry) -> tuple:
    keys = [wf.key for wf in registry.latest()]
    return (
        tuple(registry.roles),
        tuple((wf.key, wf.version) for wf in registry.latest()),
        tuple((wf.key, wf.version) for k in keys for wf in registry.versions(k)),
    )


def _registry_for(wf: Workflow) -> Registry:
    if wf.key == GRANT.key:
        registry = Registry(ROLES)
        registry.register(GRANT)
        return registry
    return build_registry()


def _refused(registry: Registry, wf, expected: str | None = None) -> DefinitionError:
    """Register ``wf``: it must be refused with DefinitionError, leaving ``registry`` unchanged."""
    before = _snapshot(registry)
    with pytest.raises(DefinitionError) as refused:
        registry.register(wf)
    assert refused.value.faults and all(isinstance(f, str) and f for f in refused.value.faults)
    if expected is not None:
        assert expected in str(refused.value), (expected, refused.value.faults)
    assert _snapshot(registry) == before
    return refused.value


def _still_works(registry: Registry, base: Workflow) -> None:
    """After a refusal, a sound definition registers and becomes the latest version."""
    fresh = replace(base, version=next(NEW_VERSIONS))
    registry.register(fresh)
    assert registry.get(base.key).workflow is fresh


def _pick(data, items, label):
    return data.draw(st.sampled_from(list(items)), label=label)


def drop_state(wf, data):
    used = {s for t in wf.transitions for s in (*t.sources, t.dest)}
    gone = _pick(data, [s for s in wf.states[1:] if s.name in used], "dropped")
    return replace(wf, states=tuple(s for s in wf.states if s is not gone)), f"state '{gone.name}'"


def dangling_dest(wf, data):
    i = data.draw(st.integers(0, len(wf.transitions) - 1), label="transition")
    names = {s.name for s in wf.states}
    dest = data.draw(st.text(min_size=1, max_size=10).filter(lambda n: n not in names), label="dest")
    moved = replace(wf.transitions[i], dest=dest)
    transitions = (*wf.transitions[:i], moved, *wf.transitions[i + 1 :])
    return replace(wf, transitions=transitions), f"unknown destination state '{dest}'"


def duplicate_state(wf, data):
    twin = _pick(data, wf.states, "twin")
    return replace(wf, states=(*wf.states, replace(twin, label="重复"))), f"duplicate state '{twin.name}'"


def leave_final(wf, data):
    final = _pick(data, [s for s in wf.states if s.final], "final")
    back = T("reopen", final.name, wf.initial)
    return replace(wf, transitions=(*wf.transitions, back)), f"leaves final state '{final.name}'"


def duplicate_start_field(wf, data):
    twin = _pick(data, wf.start_fields, "twin field")
    fields = (*wf.start_fields, replace(twin, label="重复"))
    return replace(wf, start_fields=fields), f"duplicate field '{twin.name}'"


BAD_DEADLINES = st.sampled_from(
    [
        (Deadline(), "needs exactly one of"),
        (Deadline(days=3, months=1), "needs exactly one of"),
        (Deadline(days=-5), "days must be a whole number >= 0"),
        (Deadline(working_days="5"), "working_days must be a whole number >= 0"),
        (Deadline(months=True), "months must be a whole number >= 0"),
        (Deadline(days=1.5), "days must be a whole number >= 0"),
        (Deadline(annual=(2, 30)), "impossible annual date"),
        (Deadline(annual=(13, 1)), "impossible annual date"),
        (Deadline(annual=(10,)), "annual must be a (month, day) pair"),
        (Deadline(annual=("10", "31")), "annual must be a (month, day) pair"),
        (Deadline(days=5, remind=(-1,)), "remind must be whole days > 0"),
        (Deadline(days=5, remind="7"), "remind must be whole days > 0"),
        (Deadline(days=5, remind=(1, "2")), "remind must be whole days > 0"),
        (Deadline(days=5, optional=True), "optional only when its date comes from a field"),
        (Deadline(field="no_such_date"), "'no_such_date', which is no date field"),
        (Deadline(days=5, escalate_to="nobody"), "escalates to unknown role 'nobody'"),
        (Deadline(days=5, escalate_to=5), "escalate_to must be a non-empty printable name"),
        (Deadline(days=5, on_expiry="nowhere"), "expires into 'nowhere'"),
    ]
)


def bad_deadline(wf, data):
    step = _pick(data, [s for s in wf.states if s.actor is not None], "step")
    deadline, expected = data.draw(BAD_DEADLINES, label="deadline")
    states = tuple(replace(s, deadline=deadline) if s is step else s for s in wf.states)
    return replace(wf, states=states), expected


def _name_fault(what: str, value) -> str:
    if isinstance(value, str) and len(value) > NAME_MAX:
        return f"longer than {NAME_MAX} characters"
    return f"{what} must be a non-empty printable name"


def wrong_type(wf, data):
    """One attribute that must be a name, number or tuple gets a value of another type."""
    value = data.draw(WRONG, label="value")
    step = _pick(data, wf.states, "state")
    i = data.draw(st.integers(0, len(wf.transitions) - 1), label="transition")
    where = data.draw(
        st.sampled_from(["key", "version", "state name", "trigger", "sources", "field kind", "max_length"]),
        label="where",
    )
    if where == "key":
        return replace(wf, key=value), "key must be an identifier"
    if where == "version":
        return replace(wf, version=value), "version must be a whole number >= 1"
    if where == "state name":
        states = tuple(replace(s, name=value) if s is step else s for s in wf.states)
        return replace(wf, states=states), _name_fault("name", value)
    transitions = list(wf.transitions)
    if where == "trigger":
        transitions[i] = replace(transitions[i], trigger=value)
        expected = _name_fault("trigger", value)
    elif where == "sources":
        transitions[i] = Transition(transitions[i].trigger, value, transitions[i].dest)
        expected = "sources must be state names" if not isinstance(value, str | list | tuple) else None
    elif where == "field kind":
        transitions[i] = replace(transitions[i], fields=(Field("f", "字段", kind=value),))
        expected = "has unknown kind"
    else:
        transitions[i] = replace(transitions[i], fields=(Field("f", "字段", max_length=value),))
        expected = None if isinstance(value, int) and not isinstance(value, bool) else "max_length"
    return replace(wf, transitions=tuple(transitions)), expected


def unknown_role(wf, data):
    role = data.draw(st.text(min_size=1, max_size=12).filter(str.isprintable), label="role")
    step = _pick(data, [s for s in wf.states if s.actor is not None], "step")
    states = tuple(replace(s, actor=role) if s is step else s for s in wf.states)
    if role in {r.code for r in (*ROLES, *GANZI_ROLES)} or not role.strip():
        return replace(wf, states=states), None
    return replace(wf, states=states), f"unknown role '{role}'"


def not_a_state(wf, data):
    junk = data.draw(WRONG, label="junk")
    return replace(wf, states=(*wf.states, junk)), "is not a State"


def broken_guard(wf, data):
    i = data.draw(st.integers(0, len(wf.transitions) - 1), label="transition")
    transitions = list(wf.transitions)
    transitions[i] = replace(transitions[i], guard=Guard("broken", "坏", "not callable"), otherwise=False)
    return replace(wf, transitions=tuple(transitions)), "guard 'broken' check must be callable"


def read_only_actor(wf, data):
    reader = next(r for r in (*ROLES, *GANZI_ROLES) if r.read_only)
    step = _pick(data, [s for s in wf.states if s.actor is not None and s.countersign is None], "step")
    states = tuple(replace(s, actor=reader.code) if s is step else s for s in wf.states)
    return replace(wf, states=states), f"role '{reader.code}' is read-only"


def own_subflow(wf, data):
    step = _pick(data, [s for s in wf.states if s.actor is not None], "step")
    states = tuple(replace(s, actor=None, subflow=wf.key) if s is step else s for s in wf.states)
    return replace(wf, states=states), f"cannot be its own subflow '{wf.key}'"


MUTATIONS = [
    drop_state,
    dangling_dest,
    duplicate_state,
    leave_final,
    duplicate_start_field,
    bad_deadline,
    wrong_type,
    unknown_role,
    not_a_state,
    broken_guard,
    read_only_actor,
    own_subflow,
]


def test_the_unmutated_definitions_are_sound():
    """The bases of the mutations register cleanly (so each fault below comes from its mutation)."""
    assert validate(GRANT, ROLES) == []
    assert len(GANZI) == 9 and all(wf.start_fields for wf in BASES)


@settings(HOSTILE, max_examples=300)
@given(base=st.sampled_from(BASES), mutation=st.sampled_from(MUTATIONS), data=st.data())
def test_mutated_definitions_are_refused_by_name(base, mutation, data):
    """A mutated GRANT or Ganzi workflow is refused with its fault named; the registry is untouched."""
    registry = _registry_for(base)
    mutated, expected = mutation(replace(base, version=next(NEW_VERSIONS)), data)
    _refused(registry, mutated, expected)
    _still_works(registry, base)


NAMES = st.sampled_from(["a", "b", "z", "draft", "", " ", "a\x00", "x" * (NAME_MAX + 1), 5, None])
TRIGGERS = st.sampled_from(["go", "done", "approve", "notice_ended", "", 3, None])
ROLE_CODES = st.sampled_from(["applicant", "township_reviewer", "auditor", "nobody", SYSTEM, "", 1])
INTS = st.sampled_from([0, 1, 5, -1, True, "3", 2.5, None])
DEADLINES = st.builds(
    Deadline,
    months=INTS,
    days=INTS,
    working_days=INTS,
    annual=st.sampled_from([None, (10, 31), (2, 30), (0, 1), (1,), "1-1"]),
    field=st.sampled_from([None, "due", "name", 4]),
    optional=st.booleans(),
    remind=st.sampled_from([(), (2, 1), (-1,), "2", [3, 1], (1, None)]),
    escalate_to=st.none() | ROLE_CODES,
    on_expiry=st.none() | TRIGGERS,
)
FIELDS = st.builds(
    Field,
    name=st.sampled_from(["name", "amount", "due", "", "a b", 9]),
    label=st.sampled_from(["名称", "", None]),
    kind=st.sampled_from([*FIELD_KINDS, "float", None, ["text"]]),
    required=st.booleans(),
    choices=st.sampled_from([(), ("a", "b"), ("a", 1), "ab", None]),
    min_value=INTS,
    max_value=INTS,
    max_length=st.sampled_from([500, 1, 0, -1, "5", None]),
)
STATES = st.builds(
    State,
    name=NAMES,
    label=st.sampled_from(["甲", "", None, 7]),
    actor=st.none() | ROLE_CODES,
    checklist=st.sampled_from([(), (OK,), (OK, OK), ("ok",), None]),
    countersign=st.sampled_from(
        [None, Countersign(parties=lambda c: ["agri"]), Countersign(parties=None, mode="most", on=5)]
    ),
    deadline=st.none() | DEADLINES,
    timer=st.none() | DEADLINES,
    final=st.booleans(),
    withdrawable=st.booleans(),
    subflow=st.sampled_from([None, "grant", "missing", 5]),
    notify=st.sampled_from([(), ("applicant",), ("nobody",), "applicant", (None,)]),
)
TRANSITIONS = st.builds(
    Transition,
    trigger=TRIGGERS,
    sources=st.lists(NAMES, max_size=3) | NAMES,
    dest=NAMES,
    label=st.sampled_from(["", "去", None]),
    guard=st.sampled_from([None, OK, Guard("g", "g", None), Guard(None, 1, OK.check)]),
    otherwise=st.booleans(),
    needs_comment=st.booleans(),
    by=st.none() | ROLE_CODES,
    fields=st.lists(FIELDS, max_size=2).map(tuple) | st.sampled_from([None, "name"]),
    checked=st.booleans(),
    back_to_returner=st.booleans(),
    choice=st.booleans(),
    extends=st.none() | DEADLINES,
    bulk=st.booleans(),
    record=st.booleans(),
    max_times=st.sampled_from([None, 1, 0, -2, "1", True]),
)
WORKFLOWS = st.builds(
    Workflow,
    key=st.sampled_from(["w", "grant", "补助", "bad key", "", 7, "x" * (NAME_MAX + 1)]),
    version=st.sampled_from([1, 2, 0, -1, True, "1", 1.5, None]),
    title=st.sampled_from(["测试", "", None]),
    states=st.lists(STATES, max_size=5).map(tuple) | st.sampled_from([None, "abc"]),
    transitions=st.lists(TRANSITIONS, max_size=6).map(tuple) | st.sampled_from([None, 5]),
    start_role=st.none() | ROLE_CODES,
    start_fields=st.lists(FIELDS, max_size=3).map(tuple),
    title_field=st.sampled_from([None, "name", "missing", 3]),
    supervisor_role=st.none() | ROLE_CODES,
    description=st.sampled_from(["", None]),
    trigger_labels=st.sampled_from([{}, {"go": "去"}, {"go": 1}, {1: "x"}, [], None]),
)


@st.composite
def chains(draw):
    """Mostly sound definitions: a chain of steps to a final state, plus a few random extra transitions."""
    n = draw(st.integers(1, 5))
    names = [f"s{i}" for i in range(n)] + ["end"]
    roles = st.sampled_from(["applicant", "township_reviewer", "county_reviewer", "auditor"])
    states = [State(name, name, actor=draw(roles)) for name in names[:-1]] + [State("end", "终", final=True)]
    transitions = [T("go", a, b) for a, b in pairwise(names)]
    extra = st.builds(
        T,
        st.sampled_from(["go", "back", "reject"]),
        st.sampled_from(names),
        st.sampled_from([*names, "nowhere"]),
        needs_comment=st.booleans(),
        otherwise=st.booleans(),
    )
    transitions += draw(st.lists(extra, max_size=3))
    return Workflow("chain", draw(st.integers(1, 3)), "链", tuple(states), tuple(transitions))


@settings(HOSTILE, max_examples=300)
@given(wf=chains() | WORKFLOWS | st.sampled_from([None, 42, "grant", GRANT.states[0]]))
def test_random_definitions_register_or_are_refused_cleanly(wf):
    """Any value handed to ``register`` is either sound and registered, or refused by DefinitionError."""
    registry = _registry_for(GRANT)
    before = _snapshot(registry)
    try:
        registry.register(wf)
    except DefinitionError as refused:
        assert refused.faults and all(isinstance(f, str) and f for f in refused.faults)
        assert _snapshot(registry) == before
        _still_works(registry, GRANT)
    else:
        assert validate(wf, ROLES, subflows=["grant"]) == []
        assert registry.get(wf.key, wf.version).workflow is wf


ROLE_VALUES = st.builds(
    Role,
    code=NAMES,
    label=st.sampled_from(["角色", None, 3]),
    level=st.sampled_from(["village", "", None, 3]),
    dept=st.sampled_from([None, "agri", "", 5]),
    read_only=st.booleans(),
)


@HOSTILE
@given(roles=st.lists(ROLE_VALUES | WRONG, min_size=1, max_size=4))
def test_roles_are_added_all_or_none(roles):
    """Malformed or duplicate roles are refused by DefinitionError and none of them is added."""
    registry = Registry(ROLES)
    try:
        registry.add_roles(roles)
    except DefinitionError as refused:
        assert refused.faults
        assert tuple(registry.roles) == tuple(r.code for r in ROLES)
    else:
        assert all(registry.roles[r.code] is r for r in roles)


def test_a_refused_version_does_not_block_the_same_version_later():
    """A refused v2 leaves no trace: the sound v2 registers afterwards and becomes the latest."""
    registry = _registry_for(GRANT)
    _refused(registry, replace(GRANT, version=2, states=GRANT.states[:-1]), "state 'rejected'")
    sound = replace(GRANT, version=2)
    registry.register(sound)
    assert registry.get("grant").workflow is sound
    assert [wf.version for wf in registry.versions("grant")] == [1, 2]


def test_duplicate_registration_and_a_re_registered_key_name_the_clash():
    """Registering the same (key, version) twice names it and leaves the first in place."""
    registry = _registry_for(GRANT)
    _refused(registry, GRANT, "workflow 'grant' v1 is already registered")
    assert registry.get("grant", 1).workflow is GRANT
