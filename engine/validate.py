"""Definition checks (定义校验): every fault named with its place.

``validate`` returns the list of faults; ``check`` raises :class:`DefinitionError` with all
of them. A malformed definition therefore never reaches the database: the registry calls
``check`` when a workflow is registered, at import time.
"""

from __future__ import annotations

import calendar
from collections import Counter
from collections.abc import Iterable

from engine.definitions import FIELD_KINDS, SYSTEM, Deadline, Field, Role, Workflow
from engine.errors import DefinitionError


def _fields_faults(where: str, fields: Iterable[Field]) -> list[str]:
    faults = []
    fields = list(fields)
    for name, n in Counter(f.name for f in fields).items():
        if n > 1:
            faults.append(f"{where}: duplicate field '{name}'")
    for f in fields:
        if f.kind not in FIELD_KINDS:
            faults.append(f"{where}: field '{f.name}' has unknown kind '{f.kind}'")
        if f.kind in ("choice", "multichoice") and not f.choices:
            faults.append(f"{where}: field '{f.name}' is a {f.kind} without choices")
    return faults


def _clock_faults(at: str, d: Deadline) -> list[str]:
    faults = []
    if sum(1 for v in (d.months, d.days, d.working_days, d.annual, d.field) if v) != 1:
        faults.append(f"{at} needs exactly one of months, days, working_days, annual or field")
    if d.optional and d.field is None:
        faults.append(f"{at} can be optional only when its date comes from a field")
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
    role_codes = {r.code for r in roles}
    subflow_keys = set(subflows)
    faults: list[str] = []
    where = f"workflow '{wf.key}' v{wf.version}"
    if not wf.key or not wf.key.isidentifier():
        faults.append(f"{where}: key must be an identifier")
    if wf.version < 1:
        faults.append(f"{where}: version must be >= 1")
    if not wf.states:
        return [*faults, f"{where}: has no states"]

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
    faults += _fields_faults(f"{where} start form", wf.start_fields)

    for s in wf.states:
        at = f"{where} state '{s.name}'"
        if not s.label:
            faults.append(f"{at}: has no label")
        if s.actor is not None and s.actor not in role_codes:
            faults.append(f"{at}: unknown role '{s.actor}'")
        if s.countersign is not None and s.actor is None:
            faults.append(f"{at}: countersign needs an actor role")
        if s.countersign is not None and s.countersign.mode not in ("all", "any"):
            faults.append(f"{at}: countersign mode must be 'all' or 'any'")
        if s.subflow is not None and s.subflow not in subflow_keys:
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
            faults += _clock_faults(f"{at}: {kind}", d)
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
            faults += _clock_faults(f"{at}: extension", t.extends)
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

    for src in names:
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
