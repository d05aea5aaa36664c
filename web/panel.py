"""What the instance page offers besides transitions (审批操作): per open task and per instance.

Reading only: each entry says whether the approval action makes sense for the user now, so
the page shows a button; the engine still decides when it is pressed (a refusal is shown
as a message). Candidate people and parties are read within the actor's org scope.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import tasks
from engine.definitions import Workflow
from engine.runtime import Runtime
from engine.scope import DEPARTMENT, Actor, ancestor_at
from engine.store.models import ACTIVE, SUSPENDED, Instance, OrgUnit, RoleMembership, Task, User


@dataclass
class TaskPanel:
    """One open task of the instance and what the user may try on it."""

    task: Task
    role: str
    claim: bool = False
    unclaim: bool = False
    hand_over: bool = False
    hand_back: bool = False
    urge: bool = False
    reassign_to: list[User] = field(default_factory=list)
    delegate_to: list[User] = field(default_factory=list)


@dataclass
class Panel:
    """The approval actions of one instance page."""

    tasks: list[TaskPanel]
    withdraw: bool = False
    suspend: bool = False
    resume: bool = False
    add_parties: list[OrgUnit] = field(default_factory=list)
    remove_parties: list[str] = field(default_factory=list)

    @property
    def any_instance_action(self) -> bool:
        return self.withdraw or self.suspend or self.resume or bool(self.add_parties or self.remove_parties)


def _people(s: Session, actor: Actor, condition) -> list[User]:
    """Active users with a membership matching ``condition`` at a unit within the actor's sight."""
    return list(
        s.scalars(
            select(User)
            .join(RoleMembership, RoleMembership.user_id == User.id)
            .join(OrgUnit, RoleMembership.org_unit_id == OrgUnit.id)
            .where(
                condition, User.active.is_(True), User.id != actor.user_id, actor.scope_filter(OrgUnit.path)
            )
            .distinct()
            .order_by(User.username)
        )
    )


def _on_path(path: str) -> list[str]:
    """``/1/2/3/`` → the paths of the unit and every unit above it."""
    parts = path.strip("/").split("/")
    return [f"/{'/'.join(parts[: i + 1])}/" for i in range(len(parts))]


def _task_panel(
    s: Session, runtime: Runtime, inst: Instance, task: Task, actor: Actor, starter: bool
) -> TaskPanel:
    roles = runtime.registry.roles
    entry = TaskPanel(task, roles[task.role].label if task.role in roles else task.role)
    delegated_to_me = task.delegated_by_id is not None and task.assignee_id == actor.user_id
    membership = actor.holding(task.role, task.org_path)
    if delegated_to_me:
        entry.hand_back = True
        return entry
    if membership is not None and task.delegated_by_id is None:
        entry.claim = task.assignee_id is None
        entry.unclaim = task.assignee_id == actor.user_id
        if task.assignee_id in (None, actor.user_id, membership.principal_id):
            entry.hand_over = True
            entry.reassign_to = _people(
                s,
                actor,
                (RoleMembership.role == task.role) & OrgUnit.path.in_(_on_path(task.org_path)),
            )
            above_instance = inst.org_unit.ids_on_path
            entry.delegate_to = _people(
                s,
                actor,
                OrgUnit.id.in_(above_instance)
                | ((OrgUnit.kind == DEPARTMENT) & OrgUnit.parent_id.in_(above_instance)),
            )
    mine = membership is not None and task.assignee_id in (None, actor.user_id)
    above = any(
        task.org_path.startswith(m.org_path) and task.org_path != m.org_path for m in actor.memberships
    )
    entry.urge = not mine and (starter or above)
    return entry


def _signer_parties(s: Session, runtime: Runtime, inst: Instance, wf: Workflow, open_parties: set[str]):
    state = wf.state(inst.state)
    role = runtime.registry.roles[state.actor]
    anchor = ancestor_at(s, inst.org_unit, role.level)
    units = s.scalars(
        select(OrgUnit)
        .where(OrgUnit.parent_id == anchor.id, OrgUnit.kind == DEPARTMENT)
        .order_by(OrgUnit.path)
    )
    return [u for u in units if u.dept not in open_parties]


def panel(s: Session, runtime: Runtime, inst: Instance, actor: Actor) -> Panel:
    wf = runtime.definition(inst).workflow
    open_tasks = list(
        s.scalars(
            select(Task)
            .where(Task.instance_id == inst.id, Task.status == tasks.OPEN, Task.kind == "step")
            .order_by(Task.id)
        )
    )
    live = inst.status == ACTIVE
    starter = inst.started_by_id == actor.user_id
    result = Panel([_task_panel(s, runtime, inst, t, actor, starter) for t in open_tasks] if live else [])
    prior = wf.state(inst.previous_state) if inst.previous_state else None
    result.withdraw = (
        live and inst.previous_actor_id == actor.user_id and prior is not None and prior.withdrawable
    )
    supervisor = wf.supervisor_role and actor.overseeing(wf.supervisor_role, inst.org_path) is not None
    if supervisor:
        result.suspend, result.resume = live, inst.status == SUSPENDED
        if live and wf.state(inst.state).countersign is not None:
            parties = {t.party for t in open_tasks if t.party is not None}
            result.add_parties = _signer_parties(s, runtime, inst, wf, parties)
            result.remove_parties = sorted(parties) if len(parties) > 1 else []
    return result
