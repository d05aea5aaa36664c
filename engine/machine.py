"""Compiled machines and the registry of definitions (流程注册表).

Each (key, version) compiles once into one shared ``transitions.Machine`` with
``model=None``; an instance is moved by ``machine.events[trigger].trigger(model, ctx=...)``
on a throwaway model object. Never a Machine per instance, never ``add_model``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from transitions import Machine

from engine.definitions import GuardContext, Role, Transition, Workflow
from engine.errors import DefinitionError, NotPossible
from engine.validate import check, role_faults


def _condition(t: Transition):
    guard = t.guard

    def holds(event) -> bool:
        return not guard.reasons(event.kwargs["ctx"])

    holds.__name__ = f"guard_{guard.name}"
    return holds


def _chosen(dest: str):
    def chosen(event) -> bool:
        return event.kwargs.get("dest") == dest

    chosen.__name__ = f"chosen_{dest}"
    return chosen


def compile_machine(wf: Workflow) -> Machine:
    """One ``transitions.Machine`` for every instance of ``wf``."""
    machine = Machine(
        model=None,
        states=[s.name for s in wf.states],
        initial=wf.initial,
        auto_transitions=False,
        send_event=True,
    )
    for t in wf.transitions:
        conditions = [_condition(t)] if t.guard is not None else []
        if t.choice:
            conditions.append(_chosen(t.dest))
        machine.add_transition(t.trigger, list(t.sources), t.dest, conditions=conditions)
    return machine


class _Cursor:
    """The throwaway model a compiled machine moves: only a ``state`` attribute."""

    __slots__ = ("state",)

    def __init__(self, state: str) -> None:
        self.state = state


@dataclass(frozen=True)
class Compiled:
    workflow: Workflow
    machine: Machine

    def branch(
        self, state: str, trigger: str, ctx: GuardContext, dest: str | None = None
    ) -> Transition | None:
        """The transition ``trigger`` takes from ``state`` under ``ctx`` (and the chosen ``dest``), or None."""
        for t in self.workflow.transitions_from(state, trigger):
            if t.choice:
                if t.dest == dest:
                    return t
                continue
            if t.otherwise or t.guard is None or not t.guard.reasons(ctx):
                return t
        return None

    def move(self, state: str, trigger: str, ctx: GuardContext, dest: str | None = None) -> str:
        """Run ``trigger`` through the compiled machine; return the new state name."""
        event = self.machine.events.get(trigger)
        if event is None or state not in event.transitions:
            raise NotPossible(f"'{trigger}' is not possible from state '{state}'")
        cursor = _Cursor(state)
        event.trigger(cursor, ctx=ctx, dest=dest)
        return cursor.state


class Registry:
    """Every known role and workflow version, validated when registered."""

    def __init__(self, roles: Iterable[Role] = ()) -> None:
        self.roles: dict[str, Role] = {}
        self._compiled: dict[tuple[str, int], Compiled] = {}
        self._latest: dict[str, int] = {}
        self.add_roles(roles)

    def add_roles(self, roles: Iterable[Role]) -> None:
        """Add ``roles`` all at once, or none of them (raises :class:`DefinitionError`)."""
        roles = list(roles)
        faults = role_faults(roles)
        if faults:
            raise DefinitionError(faults)
        dupes = [r.code for r in roles if r.code in self.roles]
        if dupes:
            raise DefinitionError([f"duplicate role '{c}'" for c in dupes])
        self.roles.update({r.code: r for r in roles})

    def register(self, wf: Workflow) -> Workflow:
        """Validate, compile and add ``wf``; a refused definition leaves the registry as it was."""
        check(wf, self.roles.values(), subflows=self._latest.keys())
        if (wf.key, wf.version) in self._compiled:
            raise DefinitionError([f"workflow '{wf.key}' v{wf.version} is already registered"])
        self._compiled[(wf.key, wf.version)] = Compiled(wf, compile_machine(wf))
        self._latest[wf.key] = max(wf.version, self._latest.get(wf.key, 0))
        return wf

    def get(self, key: str, version: int | None = None) -> Compiled:
        version = self._latest.get(key) if version is None else version
        try:
            return self._compiled[(key, version)]
        except KeyError:
            raise DefinitionError([f"unknown workflow '{key}' v{version}"]) from None

    def latest(self) -> list[Workflow]:
        return [self._compiled[(k, v)].workflow for k, v in sorted(self._latest.items())]

    def versions(self, key: str) -> list[Workflow]:
        return [c.workflow for (k, _), c in sorted(self._compiled.items()) if k == key]
