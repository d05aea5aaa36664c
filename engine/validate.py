"""Definition checks (定义校验): every fault named with its place.

``validate`` returns the list of faults; ``check`` raises :class:`DefinitionError` with all
of them. A malformed definition therefore never reaches the database: the registry calls
``check`` when a workflow is registered, at import time.

The checks run in two passes. The shape pass checks every attribute's type (a name is a
printable string of at most :data:`NAME_MAX` characters, a count is a non-negative ``int``, a
guard is callable…); only a well-shaped definition goes on to the meaning pass (reachable
states, known roles, branches), so no check ever trips over a value of the wrong type.
"""

from __future__ import annotations

import calendar
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from engine.definitions import (
    FIELD_KINDS,
    SYSTEM,
    Countersign,
    Deadline,
    Field,
    Guard,
    Role,
    State,
    Transition,
    Workflow,
)
from engine.errors import DefinitionError

NAME_MAX = 64
"""Longest key, state, trigger, role or field name: the width of their database columns."""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "…"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _name_fault(at: str, what: str, value: Any) -> list[str]:
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        return [f"{at}: {what} must be a non-empty printable name, not {_short(value)}"]
    if len(value) > NAME_MAX:
        return [f"{at}: {what} {_short(value)} is longer than {NAME_MAX} characters"]
    return []


def _optional_name_fault(at: str, what: str, value: Any) -> list[str]:
    return [] if value is None else _name_fault(at, what, value)


def _text_fault(at: str, what: str, value: Any) -> list[str]:
    return [] if isinstance(value, str) else [f"{at}: {what} must be text, not {_short(value)}"]


def _sequence_fault(at: str, what: str, value: Any, kind: type) -> list[str]:
    if not isinstance(value, tuple | list) or not all(isinstance(v, kind) for v in value):
        return [f"{at}: {what} must be a tuple of {kind.__name__}, not {_short(value)}"]
    return []


def _role_shape(r: Any) -> list[str]:
    if not isinstance(r, Role):
        return [f"role {_short(r)} is not a Role"]
    at = f"role {_short(r.code)}"
    return [
        *_name_fault(at, "code", r.code),
        *_text_fault(at, "label", r.label),
        *_name_fault(at, "level", r.level),
        *_optional_name_fault(at, "dept", r.dept),
    ]


def role_faults(roles: Iterable[Any]) -> list[str]:
    """Every fault of a set of roles (shape and duplicate codes)."""
    roles = list(roles)
    faults = [f for r in roles for f in _role_shape(r)]
    if not faults:
        faults += [f"duplicate role '{c}'" for c, n in Counter(r.code for r in roles).items() if n > 1]
    return faults


def _guard_shape(at: str, g: Any) -> list[str]:
    if not isinstance(g, Guard):
        return [f"{at}: {_short(g)} is not a Guard"]
    faults = _name_fault(at, "guard name", g.name) + _text_fault(at, f"guard {g.name!r} label", g.label)
    if not callable(g.check):
        faults.append(f"{at}: guard {g.name!r} check must be callable")
    return faults


def _deadline_shape(at: str, d: Deadline) -> list[str]:
    faults = []
    for attr in ("months", "days", "working_days"):
        value = getattr(d, attr)
        if not _is_int(value) or value < 0:
            faults.append(f"{at}: {attr} must be a whole number >= 0, not {_short(value)}")
    if d.annual is not None and not (
        isinstance(d.annual, tuple) and len(d.annual) == 2 and all(_is_int(v) for v in d.annual)
    ):
        faults.append(f"{at}: annual must be a (month, day) pair, not {_short(d.annual)}")
    if not isinstance(d.remind, tuple) or not all(_is_int(v) and v > 0 for v in d.remind):
        faults.append(f"{at}: remind must be whole days > 0, not {_short(d.remind)}")
    for attr in ("field", "escalate_to", "on_expiry"):
        faults += _optional_name_fault(at, attr, getattr(d, attr))
    return faults


def _field_shape(at: str, f: Any) -> list[str]:
    if not isinstance(f, Field):
        return [f"{at}: {_short(f)} is not a Field"]
    where = f"{at} field {_short(f.name)}"
    faults = _name_fault(where, "name", f.name) + _text_fault(where, "label", f.label)
    if not isinstance(f.kind, str) or f.kind not in FIELD_KINDS:
        faults.append(f"{where} has unknown kind {_short(f.kind)}")
    if not isinstance(f.choices, tuple) or not all(isinstance(c, str) for c in f.choices):
        faults.append(f"{where}: choices must be a tuple of text, not {_short(f.choices)}")
    for attr in ("min_value", "max_value"):
        value = getattr(f, attr)
        if value is not None and not _is_int(value):
            faults.append(f"{where}: {attr} must be a whole number, not {_short(value)}")
    if not _is_int(f.max_length) or f.max_length < 1:
        faults.append(f"{where}: max_length must be a whole number >= 1, not {_short(f.max_length)}")
    if not faults and f.min_value is not None and f.max_value is not None and f.min_value > f.max_value:
        faults.append(f"{where}: min_value {f.min_value} is above max_value {f.max_value}")
    return faults


def _fields_shape(at: str, fields: Any) -> list[str]:
    if not isinstance(fields, tuple | list):
        return [f"{at}: fields must be a tuple of Field, not {_short(fields)}"]
    return [fault for f in fields for fault in _field_shape(at, f)]


def _state_shape(where: str, s: Any) -> list[str]:
    if not isinstance(s, State):
        return [f"{where}: {_short(s)} is not a State"]
    at = f"{where} state {_short(s.name)}"
    faults = _name_fault(at, "name", s.name) + _text_fault(at, "label", s.label)
    faults += _optional_name_fault(at, "actor", s.actor) + _optional_name_fault(at, "subflow", s.subflow)
    for attr in ("checklist", "advisory"):
        value = getattr(s, attr)
        faults += _sequence_fault(at, attr, value, Guard) or [
            fault for g in value for fault in _guard_shape(at, g)
        ]
    faults += _sequence_fault(at, "notify", s.notify, str)
    if s.countersign is not None:
        c = s.countersign
        if not isinstance(c, Countersign):
            faults.append(f"{at}: countersign {_short(c)} is not a Countersign")
        else:
            if not callable(c.parties):
                faults.append(f"{at}: countersign parties must be callable")
            faults += _text_fault(at, "countersign mode", c.mode) + _name_fault(at, "countersign on", c.on)
    for attr in ("deadline", "timer"):
        d = getattr(s, attr)
        if d is not None:
            faults += (
                [f"{at}: {attr} {_short(d)} is not a Deadline"]
                if not isinstance(d, Deadline)
                else (_deadline_shape(f"{at}: {attr}", d))
            )
    return faults


def _transition_shape(where: str, i: int, t: Any) -> list[str]:
    if not isinstance(t, Transition):
        return [f"{where} transition #{i}: {_short(t)} is not a Transition"]
    at = f"{where} transition #{i} {_short(t.trigger)}"
    faults = _name_fault(at, "trigger", t.trigger) + _text_fault(at, "label", t.label)
    if not isinstance(t.sources, tuple) or not all(isinstance(s, str) for s in t.sources):
        faults.append(f"{at}: sources must be state names, not {_short(t.sources)}")
    if not isinstance(t.dest, str):
        faults.append(f"{at}: destination must be a state name, not {_short(t.dest)}")
    faults += _optional_name_fault(at, "by", t.by) + _fields_shape(at, t.fields)
    if t.guard is not None:
        faults += _guard_shape(at, t.guard)
    if t.extends is not None:
        faults += (
            [f"{at}: extends {_short(t.extends)} is not a Deadline"]
            if not isinstance(t.extends, Deadline)
            else _deadline_shape(f"{at}: extension", t.extends)
        )
    if t.max_times is not None and not _is_int(t.max_times):
        faults.append(f"{at}: max_times must be a whole number, not {_short(t.max_times)}")
    return faults


def _shape(wf: Any) -> list[str]:
    """Faults of type and form; empty when every attribute has the type the meaning pass expects."""
    if not isinstance(wf, Workflow):
        return [f"{_short(wf)} is not a Workflow"]
    where = f"workflow {_short(wf.key)} v{_short(wf.version)}"
    faults = []
    if not isinstance(wf.key, str) or not wf.key.isidentifier() or len(wf.key) > NAME_MAX:
        faults.append(f"{where}: key must be an identifier of at most {NAME_MAX} characters")
    if not _is_int(wf.version) or wf.version < 1:
        faults.append(f"{where}: version must be a whole number >= 1")
    faults += _text_fault(where, "title", wf.title) + _text_fault(where, "description", wf.description)
    for attr in ("start_role", "supervisor_role", "title_field"):
        faults += _optional_name_fault(where, attr, getattr(wf, attr))
    faults += _fields_shape(f"{where} start form", wf.start_fields)
    if not isinstance(wf.trigger_labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in wf.trigger_labels.items()
    ):
        faults.append(f"{where}: trigger_labels must map trigger names to text")
    if not isinstance(wf.states, tuple | list):
        faults.append(f"{where}: states must be a tuple of State, not {_short(wf.states)}")
    else:
        faults += [fault for s in wf.states for fault in _state_shape(where, s)]
    if not isinstance(wf.transitions, tuple | list):
        faults.append(f"{where}: transitions must be a tuple of Transition, not {_short(wf.transitions)}")
    else:
        faults += [fault for i, t in enumerate(wf.transitions) for fault in _transition_shape(where, i, t)]
    return faults


def _fields_faults(where: str, fields: Iterable[Field]) -> list[str]:
    faults = []
    fields = list(fields)
    for name, n in Counter(f.name for f in fields).items():
        if n > 1:
            faults.append(f"{where}: duplicate field '{name}'")
    for f in fields:
        if f.kind in ("choice", "multichoice") and not f.choices:
            faults.append(f"{where}: field '{f.name}' is a {f.kind} without choices")
    return faults


def _clock_faults(at: str, d: Deadline, date_fields: set[str]) -> list[str]:
    faults = []
    if sum(1 for v in (d.months, d.days, d.working_days, d.annual, d.field) if v) != 1:
        faults.append(f"{at} needs exactly one of months, days, working_days, annual or field")
    if d.optional and d.field is None:
        faults.append(f"{at} can be optional only when its date comes from a field")
    if d.field is not None and d.field not in date_fields:
        faults.append(f"{at} takes its date from '{d.field}', which is no date field of this workflow")
    if d.annual is not None:
        month, day = d.annual
        if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(2024, month)[1]):
            faults.append(f"{at} has an impossible annual date {d.annual}")
    return faults


def _reachable(wf: Workflow) -> set[str]:
    seen = {wf.initial}
    frontier = [wf.initial]
    while frontier:
        here = frontier.pop()
        for t in wf.transitions_from(here):
            if t.dest not in seen:
                seen.add(t.dest)
                frontier.append(t.dest)
    return seen


def validate(wf: Workflow, roles: Iterable[Role], subflows: Iterable[str] = ()) -> list[str]:
    """Return every fault of ``wf``; an empty list means it is sound."""
    shape = _shape(wf)
    if shape:
        return shape
    roles = list(roles)
    role_codes = {r.code for r in roles}
    read_only = {r.code for r in roles if r.read_only}
    subflow_keys = set(subflows)
    faults: list[str] = []
    where = f"workflow '{wf.key}' v{wf.version}"
    if not wf.states:
        return [*faults, f"{where}: has no states"]
    all_fields = [*wf.start_fields, *(f for t in wf.transitions for f in t.fields)]
    date_fields = {f.name for f in all_fields if f.kind == "date"}

    names = [s.name for s in wf.states]
    for name, n in Counter(names).items():
        if n > 1:
            faults.append(f"{where}: duplicate state '{name}'")
    known = set(names)
    finals = {s.name for s in wf.states if s.final}
    if not finals:
        faults.append(f"{where}: has no final state")
    for attr in ("start_role", "supervisor_role"):
        if getattr(wf, attr) is not None and getattr(wf, attr) not in role_codes:
            faults.append(f"{where}: {attr} '{getattr(wf, attr)}' is not a known role")
    if wf.title_field is not None and wf.title_field not in {f.name for f in wf.start_fields}:
        faults.append(f"{where}: title_field '{wf.title_field}' is not a start field")
    faults += _fields_faults(f"{where} start form", wf.start_fields)

    for s in wf.states:
        at = f"{where} state '{s.name}'"
        if not s.label:
            faults.append(f"{at}: has no label")
        if s.actor is not None and s.actor not in role_codes:
            faults.append(f"{at}: unknown role '{s.actor}'")
        if s.actor in read_only:
            faults.append(f"{at}: role '{s.actor}' is read-only and cannot act")
        if s.countersign is not None and s.actor is None:
            faults.append(f"{at}: countersign needs an actor role")
        if s.countersign is not None and s.countersign.mode not in ("all", "any"):
            faults.append(f"{at}: countersign mode must be 'all' or 'any'")
        if s.countersign is not None and not wf.transitions_from(s.name, s.countersign.on):
            faults.append(f"{at}: countersign signs with '{s.countersign.on}', which has no transition here")
        if s.subflow is not None and s.subflow == wf.key:
            faults.append(f"{at}: a workflow cannot be its own subflow '{s.subflow}'")
        elif s.subflow is not None and s.subflow not in subflow_keys:
            faults.append(f"{at}: unknown subflow '{s.subflow}'")
        if s.subflow is not None and (s.actor is not None or s.timer is not None):
            faults.append(f"{at}: a subflow state waits for its child; it takes no actor or timer")
        if s.subflow is not None and not any(t.by == SYSTEM for t in wf.transitions_from(s.name)):
            faults.append(f"{at}: subflow state has no SYSTEM transition for the child's outcome")
        if not s.final and s.actor is None and s.timer is None and s.subflow is None:
            faults.append(f"{at}: has neither an actor nor a timer")
        if s.final and (s.actor or s.timer or s.deadline):
            faults.append(f"{at}: a final state takes no actor, timer or deadline")
        for d, kind in ((s.deadline, "deadline"), (s.timer, "timer")):
            if d is None:
                continue
            faults += _clock_faults(f"{at}: {kind}", d, date_fields)
            if d.escalate_to is not None and d.escalate_to not in role_codes:
                faults.append(f"{at}: {kind} escalates to unknown role '{d.escalate_to}'")
            if d.on_expiry is not None and not any(
                t.trigger == d.on_expiry and t.by == SYSTEM for t in wf.transitions_from(s.name)
            ):
                faults.append(
                    f"{at}: {kind} expires into '{d.on_expiry}', which has no SYSTEM transition here"
                )
        for role in s.notify:
            if role not in role_codes:
                faults.append(f"{at}: notifies unknown role '{role}'")
        if s.timer is not None and s.timer.on_expiry is None:
            faults.append(f"{at}: timer has no on_expiry trigger")

    for i, t in enumerate(wf.transitions):
        at = f"{where} transition #{i} '{t.trigger}'"
        if not t.sources:
            faults.append(f"{at}: has no source")
        for src in t.sources:
            if src not in known:
                faults.append(f"{at}: unknown source state '{src}'")
            elif src in finals:
                faults.append(f"{at}: leaves final state '{src}'")
        if t.dest not in known:
            faults.append(f"{at}: unknown destination state '{t.dest}'")
        if t.by is not None and t.by != SYSTEM and t.by not in role_codes:
            faults.append(f"{at}: unknown role '{t.by}'")
        if t.extends is not None:
            faults += _clock_faults(f"{at}: extension", t.extends, date_fields)
            if t.sources != (t.dest,):
                faults.append(f"{at}: an extension stays in its step; its destination must be its source")
        if t.record and (t.extends is not None or t.sources != (t.dest,)):
            faults.append(f"{at}: a record transition stays in its step and extends nothing")
        if t.max_times is not None and t.max_times < 1:
            faults.append(f"{at}: max_times must be at least 1")
        if t.bulk and (t.fields or t.needs_comment or t.choice):
            faults.append(f"{at}: a bulk transition cannot ask for fields, a reason or a choice")
        if t.guard is not None and t.otherwise:
            faults.append(f"{at}: cannot have both a guard and otherwise")
        faults += _fields_faults(at, t.fields)

    for src in dict.fromkeys(names):
        for trigger in dict.fromkeys(t.trigger for t in wf.transitions_from(src)):
            branches = wf.transitions_from(src, trigger)
            at = f"{where} state '{src}' trigger '{trigger}'"
            if len(branches) > 1 and any(b.choice for b in branches):
                if not all(b.choice and b.guard is None and not b.otherwise for b in branches):
                    faults.append(f"{at}: choice branches cannot mix with guarded or otherwise branches")
                if len({b.dest for b in branches}) != len(branches):
                    faults.append(f"{at}: two choice branches lead to the same state")
            elif len(branches) > 1:
                if not all(b.guard is not None or b.otherwise for b in branches):
                    faults.append(f"{at}: several branches, but one has neither guard nor otherwise")
                if not branches[-1].otherwise:
                    faults.append(f"{at}: guarded branches can all fail and there is no 'otherwise'")
                if any(b.otherwise for b in branches[:-1]):
                    faults.append(f"{at}: 'otherwise' must be the last branch")
            elif branches[0].otherwise:
                faults.append(f"{at}: 'otherwise' without guarded branches")

    if not faults:
        for unreachable in [n for n in names if n not in _reachable(wf)]:
            faults.append(f"{where} state '{unreachable}': unreachable from '{wf.initial}'")
    return faults


def check(wf: Workflow, roles: Iterable[Role], subflows: Iterable[str] = ()) -> Workflow:
    """Raise :class:`DefinitionError` naming every fault, or return ``wf`` unchanged."""
    faults = validate(wf, list(roles), subflows)
    if faults:
        raise DefinitionError(faults)
    return wf
