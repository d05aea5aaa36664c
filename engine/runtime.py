"""The one door through which every state change passes (运行时).

``Runtime.start`` and ``Runtime.fire`` do, inside the caller's transaction:
lock the instance (``FOR UPDATE`` on PostgreSQL, ``version_id`` everywhere), check
scope and role (deny by default), check guards (every failed reason), move through the
compiled machine, close and open tasks, stop and start clocks, append the chained audit
event and queue notifications. Refusals are raised before anything is written; if a
later step fails the caller's transaction rolls back, so nothing of it remains.

The approval actions on tasks (签收, 转办, 委派, 催办, 撤回, 挂起, 加签…) are in
:mod:`engine.approvals`, and what of them an actor may do now in :mod:`engine.options`, both
mixed into the same :class:`Runtime`.

The caller owns the transaction: ``with session.begin(): runtime.fire(...)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session, joinedload

from engine import audit, forms, tasks
from engine.approvals import ApprovalActions
from engine.deadlines import WorkCalendar
from engine.definitions import SYSTEM, Field, GuardContext, State, Transition, Workflow
from engine.errors import Conflict, Forbidden, GuardFailed, InvalidForm, NotFound, NotPossible
from engine.machine import Compiled, Registry
from engine.options import OptionQueries
from engine.scope import Actor, Membership, unit_codes
from engine.store.db import flush_instance, is_postgres
from engine.store.models import ACTIVE, COMPLETED, SUSPENDED, AuditEvent, Instance, OrgUnit, Task

_INSTANCE = (
    select(Instance)
    .where(Instance.id == bindparam("instance_id"))
    .options(joinedload(Instance.org_unit, innerjoin=True))
    .execution_options(populate_existing=True)
)
_INSTANCE_LOCKED = _INSTANCE.with_for_update(of=Instance)
_TAKE_WRITE_LOCK = (
    update(Instance.__table__)
    .where(Instance.__table__.c.id == bindparam("instance_id"))
    .values(version_id=Instance.__table__.c.version_id)
)
_OPEN_TASKS = (
    select(Task).where(Task.instance_id == bindparam("instance_id"), Task.status == tasks.OPEN).order_by(Task.id)
)
"""Statements of every fire, built once (SQLAlchemy then skips building them and their cache keys)."""


@dataclass(frozen=True)
class FireResult:
    """What a fire did. ``advanced`` is False when a countersign party signed but others remain."""

    instance_id: int
    trigger: str
    from_state: str
    to_state: str
    version: int
    event_id: int
    advanced: bool = True
    replayed: bool = False


@dataclass(frozen=True)
class Action:
    """Something the actor could do now, or could not, with every reason why not."""

    trigger: str
    label: str
    allowed: bool
    reasons: tuple[str, ...] = ()
    needs_comment: bool = False
    fields: tuple[Field, ...] = ()
    dests: tuple[str, ...] = ()
    choice: bool = False
    bulk: bool = False


@dataclass(frozen=True)
class CheckItem:
    """One checklist line: a guard, the reasons it fails now (empty: it holds), and whether it blocks."""

    name: str
    label: str
    reasons: list[str]
    enforced: bool = True


@dataclass(frozen=True)
class Authority:
    """The task and the membership by which an actor fires (None/None for the SYSTEM)."""

    task: Task | None
    membership: Membership | None
    open_tasks: tuple[Task, ...] | None = None
    """Every open task of the instance, when the check read them (so leaving the step need not)."""

    def audit_fields(self, actor: Actor) -> dict[str, Any]:
        m = self.membership
        return {
            "actor_id": actor.user_id,
            "role": m.role if m else (SYSTEM if actor.is_system else None),
            "org_unit_id": m.org_unit_id if m else None,
            "on_behalf_of_id": m.principal_id if m else None,
            "on_behalf_of_name": m.principal_name if m else None,
        }


class LazyUnits(Mapping[str, str]):
    """``GuardContext.units``, read from the database only if a guard looks at it."""

    def __init__(self, session: Session, inst: Instance) -> None:
        self._session, self._inst, self._codes = session, inst, None

    def _loaded(self) -> dict[str, str]:
        if self._codes is None:
            self._codes = unit_codes(self._session, self._inst)
        return self._codes

    def __getitem__(self, kind: str) -> str:
        return self._loaded()[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())


@dataclass
class Runtime(ApprovalActions, OptionQueries):
    """The engine's service object: a registry of definitions and how to read the calendar."""

    registry: Registry
    calendar_loader: Any = field(default=WorkCalendar.load)

    # ---- reading ------------------------------------------------------------------------

    def instance(self, session: Session, instance_id: int, actor: Actor, *, lock: bool = False) -> Instance:
        """The instance, if it exists and lies in ``actor``'s scope; otherwise NotFound.

        ``lock``: hold the instance until the transaction ends — ``FOR UPDATE`` on PostgreSQL;
        on SQLite a no-op UPDATE takes the database's write lock first, so every read that
        follows sees the latest commit and a stale racer gets a Conflict, not a refusal
        computed from a mix of old and new rows.
        """
        postgres = is_postgres(session)
        if lock and not postgres:
            session.connection().execute(_TAKE_WRITE_LOCK, {"instance_id": instance_id})
        query = _INSTANCE_LOCKED if lock and postgres else _INSTANCE
        inst = session.scalars(query, {"instance_id": instance_id}).one_or_none()
        if inst is None or not actor.sees(inst.org_path):
            raise NotFound(f"事项不存在 (instance {instance_id} not found)")
        return inst

    def definition(self, inst: Instance) -> Compiled:
        return self.registry.get(inst.workflow_key, inst.workflow_version)

    def available_actions(
        self, session: Session, instance_id: int, actor: Actor, now: datetime
    ) -> list[Action]:
        """Every trigger from the current state, with whether ``actor`` may fire it now and why not."""
        inst = self.instance(session, instance_id, actor)
        compiled = self.definition(inst)
        wf = compiled.workflow
        ctx = GuardContext(data=inst.data, form={}, now=now, units=unit_codes(session, inst))
        actions = []
        for trigger in dict.fromkeys(t.trigger for t in wf.transitions_from(inst.state)):
            branches = wf.transitions_from(inst.state, trigger)
            reasons: list[str] = []
            try:
                self._check_live(inst)
                self._authorise(session, inst, wf.state(inst.state), branches[0], actor)
            except (Forbidden, NotPossible) as refusal:
                reasons.append(refusal.message)
            if not reasons and not any(b.fields or b.choice for b in branches):
                reasons += self._guard_reasons(compiled, inst.state, branches, ctx, None)
            actions.append(
                Action(
                    trigger=trigger,
                    label=wf.label_of(trigger),
                    allowed=not reasons,
                    reasons=tuple(reasons),
                    needs_comment=any(b.needs_comment for b in branches),
                    fields=tuple({f.name: f for b in branches for f in b.fields}.values()),
                    dests=tuple(dict.fromkeys(b.dest for b in branches)),
                    choice=branches[0].choice,
                    bulk=all(b.bulk for b in branches),
                )
            )
        return actions

    def checklist(self, session: Session, inst: Instance, now: datetime) -> list[CheckItem]:
        """The current step's checklist (enforced) and advisory guards, each with its failed reasons."""
        state = self.definition(inst).workflow.state(inst.state)
        ctx = GuardContext(data=inst.data, form={}, now=now, units=unit_codes(session, inst))
        return [
            CheckItem(g.name, g.label, g.reasons(ctx), enforced)
            for guards, enforced in ((state.checklist, True), (state.advisory, False))
            for g in guards
        ]

    # ---- starting -----------------------------------------------------------------------

    def start(
        self,
        session: Session,
        key: str,
        actor: Actor,
        *,
        org_unit_id: int,
        form: Mapping[str, Any],
        now: datetime,
        idempotency_key: str | None = None,
        version: int | None = None,
    ) -> Instance:
        """Start the latest (or given) version of ``key`` at an org unit, from a start form."""
        forms.check_idempotency_key(idempotency_key)
        if idempotency_key is not None:
            existing = session.scalars(
                select(Instance).where(Instance.idempotency_key == idempotency_key)
            ).first()
            if existing is not None:
                if existing.workflow_key != key or not actor.sees(existing.org_path):
                    raise Conflict(f"idempotency key '{idempotency_key}' was used for another request")
                return existing
        wf = self.registry.get(key, version).workflow
        unit = session.get(OrgUnit, org_unit_id)
        if unit is None or not actor.sees(unit.path):
            raise NotFound(f"单位不存在 (org unit {org_unit_id} not found)")
        membership = None
        if not actor.is_system:
            membership = actor.overseeing(wf.start_role, unit.path) if wf.start_role else None
            if membership is None:
                raise Forbidden(
                    f"无权在{unit.name}发起{wf.title} (starting '{wf.title}' needs role '{wf.start_role}' at '{unit.name}')"
                )
        values = forms.parse(wf.start_fields, form)
        return self._create(
            session, wf, unit, values, actor, Authority(None, membership), now, idempotency_key
        )

    def _create(
        self,
        session: Session,
        wf: Workflow,
        unit: OrgUnit,
        values: Mapping[str, Any],
        actor: Actor,
        authority: Authority,
        now: datetime,
        idempotency_key: str | None = None,
        parent: Instance | None = None,
    ) -> Instance:
        title = str(values.get(wf.title_field, "")) if wf.title_field else ""
        inst = Instance(
            workflow_key=wf.key,
            workflow_version=wf.version,
            state=wf.initial,
            status=ACTIVE,
            title=(title or wf.title)[:255],
            org_unit_id=unit.id,
            org_path=unit.path,
            org_unit=unit,
            data=dict(values),
            parent_id=parent.id if parent else None,
            started_by_id=actor.user_id,
            idempotency_key=idempotency_key,
            created_at=now,
            updated_at=now,
            entered_at=now,
        )
        session.add(inst)
        session.flush()
        detail = {"workflow": f"{wf.key}@v{wf.version}", "form": dict(values)}
        if parent is not None:
            detail["parent_id"] = parent.id
        audit.append(
            session,
            audit.instance_stream(inst.id),
            at=now,
            action="start",
            actor_name=actor.name,
            instance_id=inst.id,
            to_state=wf.initial,
            detail=detail,
            **authority.audit_fields(actor),
        )
        self._enter(session, inst, wf.state(wf.initial), now)
        return inst

    # ---- firing -------------------------------------------------------------------------

    def fire(
        self,
        session: Session,
        instance_id: int,
        trigger: str,
        actor: Actor,
        *,
        now: datetime,
        comment: str | None = None,
        form: Mapping[str, Any] | None = None,
        dest: str | None = None,
        expected_version: int | None = None,
        idempotency_key: str | None = None,
        attachments: Sequence[Mapping[str, Any]] = (),
    ) -> FireResult:
        """Fire ``trigger`` on an instance as ``actor``; see the module docstring for the contract.

        ``dest`` names the chosen destination of a ``choice`` trigger (驳回到指定节点).
        """
        forms.check_idempotency_key(idempotency_key)
        comment = forms.clean_comment(comment)
        if idempotency_key is not None:
            replay = self._replay(session, idempotency_key, instance_id, trigger)
            if replay is not None:
                return replay
        inst = self.instance(session, instance_id, actor, lock=True)
        if idempotency_key is not None:
            replay = self._replay(session, idempotency_key, instance_id, trigger)
            if replay is not None:  # the same request committed while this one waited for the lock
                return replay
        if expected_version is not None and inst.version_id != expected_version:
            raise Conflict(
                f"事项已被他人修改，请刷新后重试 (instance {inst.id} is at version {inst.version_id}, "
                f"not {expected_version}: reload and retry)",
                current_version=inst.version_id,
            )
        self._check_live(inst)
        compiled = self.definition(inst)
        wf = compiled.workflow
        branches = wf.transitions_from(inst.state, trigger)
        if not branches:
            raise NotPossible(
                f"当前环节「{wf.state(inst.state).label}」不能{wf.label_of(trigger)} ('{trigger}' is not possible at '{inst.state}')"
            )
        state = wf.state(inst.state)
        authority = self._authorise(session, inst, state, branches[0], actor)
        values = forms.parse({f.name: f for b in branches for f in b.fields}.values(), form)
        if any(b.needs_comment for b in branches) and comment is None:
            raise InvalidForm({"comment": "须填写理由 (a reason is required)"})
        if branches[0].choice and dest not in {b.dest for b in branches}:
            choices = ", ".join(wf.state(b.dest).label for b in branches)
            raise InvalidForm({"dest": f"须选择退回到的节点: {choices} (choose where it goes)"})
        self._check_times(session, inst, branches[0], wf)
        ctx = GuardContext(data={**inst.data, **values}, form=values, now=now, units=LazyUnits(session, inst))
        reasons = self._guard_reasons(compiled, inst.state, branches, ctx, dest)
        if reasons:
            raise GuardFailed(reasons)
        branch = compiled.branch(inst.state, trigger, ctx, dest)
        diff = {k: [inst.data.get(k), v] for k, v in values.items() if inst.data.get(k) != v}
        detail: dict[str, Any] = {"form_diff": diff, "attachments": [dict(a) for a in attachments]}
        if authority.task is not None:
            detail["task_id"] = authority.task.id

        from_state = inst.state
        signing = state.countersign is not None and trigger == state.countersign.on
        if branch.extends is not None or branch.record:
            if branch.extends is not None:
                calendar = self.calendar_loader(session) if branch.extends.working_days else None
                detail["extended_to"] = tasks.extend_clocks(
                    session, inst, branch.extends, calendar
                ).isoformat()
            to_state, advanced = from_state, False
        elif signing and self._others_must_sign(session, inst, state, authority.task):
            tasks.finish(authority.task, now, outcome=trigger, by=actor.user_id, comment=comment)
            to_state, advanced = from_state, False
        else:
            to_state = compiled.move(from_state, trigger, ctx, dest)
            if branch.back_to_returner and inst.returned_from:
                to_state = inst.returned_from
            if authority.task is not None:
                authority.task.comment = comment
            tasks.close_open(
                session,
                inst,
                now,
                done=authority.task,
                outcome=trigger,
                closed_by=actor.user_id,
                open_tasks=authority.open_tasks,
            )
            goes_back = branch.needs_comment and self._goes_back(wf, from_state, to_state)
            inst.returned_from = from_state if goes_back else None
            inst.previous_state, inst.previous_actor_id = from_state, actor.user_id
            inst.state, inst.entered_at = to_state, now
            if wf.state(to_state).final:
                inst.status = COMPLETED
            advanced = True
        if diff:
            inst.data = {**inst.data, **values}
        inst.updated_at = now
        flush_instance(session, instance_id)
        event = audit.append(
            session,
            audit.instance_stream(inst.id),
            at=now,
            action="transition" if advanced else self._staying_action(branch),
            actor_name=actor.name,
            instance_id=inst.id,
            trigger=trigger,
            from_state=from_state,
            to_state=to_state,
            comment=comment,
            detail=detail,
            idempotency_key=idempotency_key,
            **authority.audit_fields(actor),
        )
        if advanced:
            self._enter(session, inst, wf.state(to_state), now)
            session.flush()
        return FireResult(inst.id, trigger, from_state, to_state, inst.version_id, event.id, advanced)

    # ---- the parts of a fire --------------------------------------------------------------

    def _replay(self, session: Session, key: str, instance_id: int, trigger: str) -> FireResult | None:
        event = session.scalars(select(AuditEvent).where(AuditEvent.idempotency_key == key)).first()
        if event is None:
            return None
        if event.instance_id != instance_id or event.trigger != trigger:
            raise Conflict(f"idempotency key '{key}' was used for another request")
        inst = session.get(Instance, instance_id)
        return FireResult(
            instance_id,
            trigger,
            event.from_state,
            event.to_state,
            inst.version_id,
            event.id,
            advanced=event.action == "transition",
            replayed=True,
        )

    @staticmethod
    def _staying_action(branch: Transition) -> str:
        """The audit action of a fire that stays in its step."""
        if branch.extends is not None:
            return "extend"
        return "record" if branch.record else "sign"

    @staticmethod
    def _check_times(session: Session, inst: Instance, branch: Transition, wf: Workflow) -> None:
        if branch.max_times is None:
            return
        done = session.scalar(
            select(func.count()).where(
                AuditEvent.instance_id == inst.id, AuditEvent.trigger == branch.trigger
            )
        )
        if done >= branch.max_times:
            raise NotPossible(
                f"「{wf.label_of(branch.trigger)}」最多{branch.max_times}次 "
                f"('{branch.trigger}' may be done at most {branch.max_times} times)"
            )

    @staticmethod
    def _check_live(inst: Instance) -> None:
        if inst.status == SUSPENDED:
            raise NotPossible(f"事项已挂起，请先恢复 (instance {inst.id} is suspended: resume it first)")
        if inst.status != ACTIVE:
            raise NotPossible(f"事项已办结 (instance {inst.id} has ended: {inst.status})")

    def _authorise(
        self, session: Session, inst: Instance, state: State, branch: Transition, actor: Actor
    ) -> Authority:
        """Deny by default: SYSTEM fires only SYSTEM transitions; a person needs an open task of the step's role."""
        if branch.by == SYSTEM or actor.is_system:
            if branch.by == SYSTEM and actor.is_system:
                return Authority(None, None)
            raise Forbidden(
                "only the system may do this" if branch.by == SYSTEM else "the system may not do this"
            )
        role = branch.by or state.actor
        if role is None or self.registry.roles[role].read_only:
            raise Forbidden(f"「{state.label}」环节无人可办理此操作 (no one may do this at '{state.name}')")
        if branch.by is not None:
            membership = actor.overseeing(role, inst.org_path)
            if membership is None:
                raise Forbidden(
                    f"需要「{self.registry.roles[role].label}」岗位 (this needs role '{role}' over this instance)"
                )
            return Authority(None, membership)
        taken_by_other = None
        open_tasks = tuple(session.scalars(_OPEN_TASKS, {"instance_id": inst.id}))
        for task in open_tasks:
            if task.state != inst.state or task.role != role:
                continue
            membership = actor.holding(role, task.org_path)
            if membership is None:
                continue
            if task.delegated_by_id is not None and task.assignee_id == actor.user_id:
                raise Forbidden(
                    "此任务为委派给您的任务，请填写意见后交回 (this task was delegated to you: give your opinion and hand it back)"
                )
            owner = membership.principal_id or actor.user_id
            if task.assignee_id is not None and task.assignee_id not in (owner, actor.user_id):
                taken_by_other = task
                continue
            return Authority(task, membership, open_tasks)
        if taken_by_other is not None:
            raise Forbidden(
                f"已被他人签收: {taken_by_other.assignee.display_name} (this task is claimed by {taken_by_other.assignee.display_name})"
            )
        raise Forbidden(
            f"您在「{state.label}」环节没有待办（需「{self.registry.roles[role].label}」岗位） (you hold no open task as '{role}' at '{state.name}')"
        )

    @staticmethod
    def _guard_reasons(
        compiled: Compiled, state_name: str, branches: list[Transition], ctx: GuardContext, dest: str | None
    ) -> list[str]:
        reasons: list[str] = []
        if any(b.checked for b in branches):
            for g in compiled.workflow.state(state_name).checklist:
                reasons += [f"{g.label}: {r}" for r in g.reasons(ctx)]
        if not reasons and compiled.branch(state_name, branches[0].trigger, ctx, dest) is None:
            for b in branches:
                if b.guard is not None:
                    reasons += [f"{b.guard.label}: {r}" for r in b.guard.reasons(ctx)]
        return reasons

    @staticmethod
    def _others_must_sign(session: Session, inst: Instance, state: State, task: Task | None) -> bool:
        if state.countersign.mode == "any":
            return False
        others = session.scalars(
            select(Task.id).where(
                Task.instance_id == inst.id,
                Task.status == tasks.OPEN,
                Task.state == inst.state,
                Task.kind == "step",
                Task.id != (task.id if task else -1),
            )
        ).first()
        return others is not None

    @staticmethod
    def _goes_back(wf: Workflow, from_state: str, to_state: str) -> bool:
        names = [s.name for s in wf.states]
        return names.index(to_state) < names.index(from_state)

    def _enter(self, session: Session, inst: Instance, state: State, now: datetime) -> None:
        """Open the step's tasks and clocks; start its sub-flow; end the instance at a final state."""
        calendar = None
        if any(c is not None and c.working_days for c in (state.deadline, state.timer)):
            calendar = self.calendar_loader(session)
        due = None
        if state.deadline is not None:
            due = tasks.start_clock(session, inst, state.name, state.deadline, now, calendar, kind="breach")
        if state.timer is not None:
            tasks.start_clock(session, inst, state.name, state.timer, now, calendar, kind="timer")
        for offer in tasks.offers(session, self.registry, inst, state, now):
            tasks.open_task(session, inst, state.name, offer, now, due)
        tasks.notify_on_entry(session, self.registry, inst, state, now)
        if state.subflow is not None:
            child = self.registry.get(state.subflow).workflow
            self._create(
                session,
                child,
                inst.org_unit,
                inst.data,
                Actor.system(),
                Authority(None, None),
                now,
                parent=inst,
            )
        if state.final:
            inst.status = COMPLETED
            if inst.parent_id is not None:
                self.fire(
                    session,
                    inst.parent_id,
                    state.name,
                    Actor.system(),
                    now=now,
                    comment=f"子流程 {inst.id} 结束: {state.label}",
                )

    # ---- versions ---------------------------------------------------------------------------

    def migrate_instances(
        self,
        session: Session,
        key: str,
        from_version: int,
        to_version: int,
        actor: Actor,
        now: datetime,
        *,
        state_map: Mapping[str, str] | None = None,
    ) -> list[int]:
        """Move running instances of ``key`` from one definition version to another (版本迁移).

        Each active instance keeps its state, or takes ``state_map[state]``; the state must
        exist in the new version and must not wait on a sub-flow. Suspended instances are
        left alone: resume them first. Its open tasks and clocks are closed and the
        state is re-entered under the new version (tasks re-offered, clocks restarted), and
        one ``migrate`` event records the move. Returns the ids moved.
        """
        if not actor.is_system:
            raise Forbidden("only the system (an administrator's migration command) migrates instances")
        new_wf = self.registry.get(key, to_version).workflow
        state_map = dict(state_map or {})
        names = {s.name for s in new_wf.states}
        unknown = sorted({v for v in state_map.values() if v not in names})
        if unknown:
            raise InvalidForm({"state_map": f"states not in {key} v{to_version}: {', '.join(unknown)}"})
        query = (
            select(Instance)
            .where(
                Instance.workflow_key == key,
                Instance.workflow_version == from_version,
                Instance.status.in_((ACTIVE, SUSPENDED)),
            )
            .order_by(Instance.id)
        )
        if is_postgres(session):
            query = query.with_for_update()
        moved = []
        for inst in session.scalars(query):
            target = state_map.get(inst.state, inst.state)
            if target not in names:
                raise InvalidForm(
                    {
                        "state_map": f"instance {inst.id} is at '{inst.state}', which v{to_version} lacks: map it"
                    }
                )
            from_state = inst.state
            tasks.close_open(session, inst, now, done=None, outcome="migrated", closed_by=None)
            inst.workflow_version, inst.state, inst.entered_at, inst.updated_at = to_version, target, now, now
            session.flush()
            audit.append(
                session,
                audit.instance_stream(inst.id),
                at=now,
                action="migrate",
                actor_name=actor.name,
                instance_id=inst.id,
                from_state=from_state,
                to_state=target,
                role=SYSTEM,
                detail={"from_version": from_version, "to_version": to_version},
            )
            self._enter(session, inst, new_wf.state(target), now)
            moved.append(inst.id)
        return moved
