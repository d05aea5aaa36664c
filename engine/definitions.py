"""Workflow definitions as frozen data (流程定义).

A definition is pure data: states, transitions, guards, deadlines and form fields.
It is validated by :mod:`engine.validate` and compiled once by :mod:`engine.machine`;
it never touches the database and never knows who runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SYSTEM = "SYSTEM"
"""The pseudo-role of the scheduler: timer transitions (公示期满) are fired by it alone."""


@dataclass(frozen=True)
class Role:
    """A role held at one kind of org unit (角色), e.g. ``township_reviewer`` at a ``township``.

    With ``dept`` set, the role is held at that department of the unit of ``level``
    (e.g. 县审定 at the county's 农牧农村 department). ``read_only`` roles (审计) see but never act.
    """

    code: str
    label: str
    level: str
    dept: str | None = None
    read_only: bool = False


@dataclass(frozen=True)
class GuardContext:
    """What a guard may look at: the subject data, the submitted form, the time, and the codes
    of the instance's org units by kind (``units["county"]``), for per-county rules."""

    data: Mapping[str, Any]
    form: Mapping[str, Any]
    now: datetime
    units: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Guard:
    """A named pure check (条件). ``check`` returns the reasons it fails; empty means it holds."""

    name: str
    label: str
    check: Callable[[GuardContext], Sequence[str]]

    def reasons(self, ctx: GuardContext) -> list[str]:
        return list(self.check(ctx))


@dataclass(frozen=True)
class Deadline:
    """A clock started on entering a state (时限).

    Exactly one of ``months`` (calendar months, clamped to month end), ``days`` (calendar days),
    ``working_days`` (statutory working days with 调休), ``annual`` (the next (month, day), e.g.
    (10, 31) for 10月31日) or ``field`` (the date a person entered in that subject-data field,
    e.g. a rectification deadline set by the reviewer; with ``optional`` an empty field starts
    no clock) is set. ``remind`` lists the days
    before the due time at which the assignee is reminded; ``escalate_to`` names the role
    that receives a 督办 task on breach; ``on_expiry`` names the trigger the SYSTEM fires when
    the time is up (notice periods end by themselves).
    """

    months: int = 0
    days: int = 0
    working_days: int = 0
    annual: tuple[int, int] | None = None
    field: str | None = None
    optional: bool = False
    remind: tuple[int, ...] = ()
    escalate_to: str | None = None
    on_expiry: str | None = None

    def __post_init__(self) -> None:
        remind = self.remind
        if isinstance(remind, tuple | list) and all(isinstance(d, int) for d in remind):
            object.__setattr__(self, "remind", tuple(sorted(set(remind), reverse=True)))


@dataclass(frozen=True)
class Field:
    """A form field (表单字段). ``kind`` is one of :data:`FIELD_KINDS`.

    ``money`` is entered in 万元 and stored as integer 分 (fen), never as float.
    """

    name: str
    label: str
    kind: str = "text"
    required: bool = True
    choices: tuple[str, ...] = ()
    min_value: int | None = None
    max_value: int | None = None
    max_length: int = 500


FIELD_KINDS = ("text", "int", "money", "date", "choice", "multichoice", "bool")


@dataclass(frozen=True)
class Countersign:
    """A step that several parties must pass (会签) or any one of them (或签).

    ``parties`` computes, from a :class:`GuardContext` when the step is entered (the subject
    data, and the instance's units by kind for per-county rules), the department
    codes (under the instance's ancestor at the actor role's level) whose holders of the
    role each get a task. A party's ``on`` trigger is its sign; the step moves on when all
    parties (or, for ``any``, the first) have signed. Any other trigger moves it at once.
    """

    parties: Callable[[GuardContext], Sequence[str]]
    mode: str = "all"
    on: str = "approve"


@dataclass(frozen=True)
class State:
    """One step of a workflow (节点). ``name`` is the code name; ``label`` is what users read.

    ``checklist`` guards must hold for ``checked`` transitions; ``advisory`` guards are shown
    beside them but never block. ``notify`` names roles whose holders (at the unit of the
    role's level above the instance) are told when an instance enters the step.
    """

    name: str
    label: str
    actor: str | None = None
    checklist: tuple[Guard, ...] = ()
    countersign: Countersign | None = None
    deadline: Deadline | None = None
    timer: Deadline | None = None
    final: bool = False
    withdrawable: bool = False
    subflow: str | None = None
    advisory: tuple[Guard, ...] = ()
    notify: tuple[str, ...] = ()


@dataclass(frozen=True)
class Transition:
    """A move from one or more states to another (流转), fired by ``trigger``.

    Several transitions may share a trigger and source; they are tried in order and
    the first whose ``guard`` holds wins. The last may be ``otherwise``. ``by`` restricts
    who fires it (``SYSTEM`` for timers); by default the source state's actor. ``checked``
    requires the source state's checklist to hold. ``back_to_returner`` sends a resubmission
    straight back to the step that returned it (退回后直送退回节点). ``choice`` branches of one
    trigger are picked by the actor naming the destination (驳回到指定节点). ``extends`` makes
    a transition that stays in its step and moves the step's running clocks later by that
    much, counted from the current due time (延期). ``bulk`` lets a queue fire it on many
    instances at once (批量审批); such a transition asks for no fields, reason or choice.
    ``record`` makes a 登记 transition: it stays in its step and saves its fields, keeping the
    step's tasks and clocks (e.g. recording a disbursement). ``max_times`` caps how often the
    trigger may fire on one instance (e.g. one extension).
    """

    trigger: str
    sources: tuple[str, ...]
    dest: str
    label: str = ""
    guard: Guard | None = None
    otherwise: bool = False
    needs_comment: bool = False
    by: str | None = None
    fields: tuple[Field, ...] = ()
    checked: bool = False
    back_to_returner: bool = False
    choice: bool = False
    extends: Deadline | None = None
    bulk: bool = False
    record: bool = False
    max_times: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.sources, str):
            object.__setattr__(self, "sources", (self.sources,))
        elif isinstance(self.sources, Iterable) and not isinstance(self.sources, bytes | Mapping):
            object.__setattr__(self, "sources", tuple(self.sources))


def T(trigger: str, sources: str | Sequence[str], dest: str, **kw: Any) -> Transition:
    """Shorthand for :class:`Transition` used by definitions."""
    return Transition(trigger, sources, dest, **kw)


@dataclass(frozen=True)
class Workflow:
    """A versioned workflow definition (流程). The first state is the initial one.

    ``supervisor_role`` may suspend and resume instances (挂起/恢复) and add or remove
    countersign parties (加签/减签).
    """

    key: str
    version: int
    title: str
    states: tuple[State, ...]
    transitions: tuple[Transition, ...]
    start_role: str | None = None
    start_fields: tuple[Field, ...] = ()
    title_field: str | None = None
    supervisor_role: str | None = None
    description: str = ""
    trigger_labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def initial(self) -> str:
        return self.states[0].name

    def state(self, name: str) -> State:
        for s in self.states:
            if s.name == name:
                return s
        raise KeyError(name)

    def transitions_from(self, state: str, trigger: str | None = None) -> list[Transition]:
        return [
            t for t in self.transitions if state in t.sources and (trigger is None or t.trigger == trigger)
        ]

    def label_of(self, trigger: str) -> str:
        return self.trigger_labels.get(trigger, trigger)
