"""What approval actions make sense for an actor now (可办操作), read-only.

Each answer comes from the same check the action itself runs (``_worker``, ``_check_urge``,
``_check_withdraw``, ``_supervisor``), so a screen that shows a button and the engine that
honours it cannot disagree. Candidate people and parties are read within the actor's sight.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import tasks
from engine.errors import EngineError
from engine.scope import DEPARTMENT, Actor, ancestor_at
from engine.store.models import ACTIVE, SUSPENDED, Instance, OrgUnit, RoleMembership, Task, User


@dataclass
class TaskOptions:
    """One open task and what the actor may try on it; ``role`` is the role's label."""

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
class Options:
    """The approval actions of one instance for one actor."""

    tasks: list[TaskOptions]
    withdraw: bool = False
    suspend: bool = False
    resume: bool = False
    add_parties: list[OrgUnit] = field(default_factory=list)
    remove_parties: list[str] = field(default_factory=list)

    @property
    def any_instance_action(self) -> bool:
        return self.withdraw or self.suspend or self.resume or bool(self.add_parties or self.remove_parties)


def _passes(check, *args) -> bool:
    try:
        check(*args)
    except EngineError:
        return False
    return True


def people(session: Session, actor: Actor, condition) -> list[User]:
    """Active users (not the actor) with a membership matching ``condition`` within the actor's sight."""
    return list(
        session.scalars(
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


def _paths_up(path: str) -> list[str]:
    """``/1/2/3/`` → the paths of the unit and every unit above it."""
    parts = path.strip("/").split("/")
    return [f"/{'/'.join(parts[: i + 1])}/" for i in range(len(parts))]


class OptionQueries:
    """Mixed into :class:`engine.runtime.Runtime` beside the actions it describes."""

    def options(self, session: Session, inst: Instance, actor: Actor) -> Options:
        """Which approval actions ``actor`` may try on ``inst`` now, with the people and parties to pick."""
        wf = self.definition(inst).workflow
        live = inst.status == ACTIVE
        open_tasks = list(
            session.scalars(
                select(Task)
                .where(Task.instance_id == inst.id, Task.status == tasks.OPEN, Task.kind == "step")
                .order_by(Task.id)
            )
        )
        result = Options([self._task_options(session, inst, t, actor) for t in open_tasks] if live else [])
        result.withdraw = live and _passes(self._check_withdraw, session, inst, actor, wf)
        if _passes(self._supervisor, inst, actor, ""):
            result.suspend, result.resume = live, inst.status == SUSPENDED
            if live and wf.state(inst.state).countersign is not None:
                parties = {t.party for t in open_tasks if t.party is not None}
                result.add_parties = self._other_parties(session, inst, wf.state(inst.state), parties)
                result.remove_parties = sorted(parties) if len(parties) > 1 else []
        return result

    def _task_options(self, session: Session, inst: Instance, task: Task, actor: Actor) -> TaskOptions:
        roles = self.registry.roles
        entry = TaskOptions(task, roles[task.role].label if task.role in roles else task.role)
        if task.delegated_by_id is not None and task.assignee_id == actor.user_id:
            entry.hand_back = True
            return entry
        if _passes(self._worker, actor, task):
            entry.claim = task.assignee_id is None
            entry.unclaim = task.assignee_id is not None
            entry.hand_over = True
            entry.reassign_to = people(
                session,
                actor,
                (RoleMembership.role == task.role) & OrgUnit.path.in_(_paths_up(task.org_path)),
            )
            above = inst.org_unit.ids_on_path
            entry.delegate_to = people(
                session,
                actor,
                OrgUnit.id.in_(above) | ((OrgUnit.kind == DEPARTMENT) & OrgUnit.parent_id.in_(above)),
            )
        entry.urge = _passes(self._check_urge, session, inst, task, actor)
        return entry

    def _other_parties(
        self, session: Session, inst: Instance, state, open_parties: set[str]
    ) -> list[OrgUnit]:
        """Departments of the countersign's anchoring unit that are not signing yet (加签 candidates)."""
        anchor = ancestor_at(session, inst.org_unit, self.registry.roles[state.actor].level)
        units = session.scalars(
            select(OrgUnit)
            .where(OrgUnit.parent_id == anchor.id, OrgUnit.kind == DEPARTMENT)
            .order_by(OrgUnit.path)
        )
        return [u for u in units if u.dept not in open_parties]
