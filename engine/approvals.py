"""The approval actions Chinese approvers expect, as audited engine operations (审批操作).

签收/取消签收 (claim/unclaim), 转办 (reassign), 委派 (delegate, hand back), 催办 (urge),
撤回 (withdraw), 挂起/恢复 (suspend/resume), 加签/减签 (add/remove a countersign party).
Each checks scope and role, changes the task or instance, bumps the instance's version
(so a concurrent stale action conflicts) and appends one audit event. Mixed into
:class:`engine.runtime.Runtime`; the caller owns the transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import audit, forms, notify, tasks
from engine.deadlines import remaining, resumed_due
from engine.errors import Forbidden, InvalidForm, NotFound, NotPossible
from engine.scope import Actor, Membership, load_actor
from engine.store.db import flush_instance, is_postgres
from engine.store.models import ACTIVE, SUSPENDED, AuditEvent, DeadlineRow, Instance, Task

if TYPE_CHECKING:
    from engine.definitions import State, Workflow
    from engine.machine import Compiled, Registry


def _require_comment(comment: str | None, what: str) -> str:
    text = forms.clean_comment(comment)
    if text is None:
        raise InvalidForm({"comment": f"{what}须填写理由 (a reason is required)"})
    return text


class ApprovalActions:
    """Task-level and instance-level actions besides firing a transition."""

    registry: Registry

    # provided by Runtime
    def instance(
        self, session: Session, instance_id: int, actor: Actor, *, lock: bool = False
    ) -> Instance: ...
    def definition(self, inst: Instance) -> Compiled: ...
    def _check_live(self, inst: Instance) -> None: ...
    def _enter(self, session: Session, inst: Instance, state: State, now: datetime) -> None: ...

    # ---- shared parts ------------------------------------------------------------------------

    def _task(self, session: Session, task_id: int, actor: Actor) -> tuple[Task, Instance]:
        """The open task and its (locked) instance, if the actor can see it; otherwise NotFound."""
        task = session.get(Task, task_id)
        if task is None:
            raise NotFound(f"任务不存在 (task {task_id} not found)")
        inst = self.instance(session, task.instance_id, actor, lock=True)
        query = select(Task).where(Task.id == task_id).execution_options(populate_existing=True)
        task = session.scalars(query.with_for_update() if is_postgres(session) else query).one()
        if task.status != tasks.OPEN:
            raise NotPossible(f"任务已结束 (task {task_id} is already {task.status})")
        self._check_live(inst)
        return task, inst

    @staticmethod
    def _worker(actor: Actor, task: Task) -> Membership:
        """The membership by which ``actor`` may work ``task``: the right role and unit, not someone else's claim."""
        membership = actor.holding(task.role, task.org_path)
        if membership is None:
            raise Forbidden("您没有办理此任务的岗位 (you hold no role that works this task)")
        if task.delegated_by_id is not None and task.assignee_id == actor.user_id:
            raise Forbidden(
                "此任务为委派给您的任务，请填写意见后交回 (this task was delegated to you: give your opinion and hand it back)"
            )
        if task.assignee_id not in (None, actor.user_id, membership.principal_id):
            raise Forbidden(
                f"已被他人签收: {task.assignee.display_name} (this task is claimed by {task.assignee.display_name})"
            )
        return membership

    def _record(
        self,
        session: Session,
        inst: Instance,
        action: str,
        actor: Actor,
        now: datetime,
        *,
        membership: Membership | None = None,
        comment: str | None = None,
        detail: dict[str, Any] | None = None,
        from_state: str | None = None,
    ) -> AuditEvent:
        instance_id = inst.id
        inst.updated_at = now
        flush_instance(session, instance_id)
        return audit.append(
            session,
            audit.instance_stream(inst.id),
            at=now,
            action=action,
            actor_name=actor.name,
            actor_id=actor.user_id,
            instance_id=inst.id,
            from_state=from_state or inst.state,
            to_state=inst.state,
            comment=forms.clean_comment(comment),
            detail=detail or {},
            role=membership.role if membership else None,
            org_unit_id=membership.org_unit_id if membership else None,
            on_behalf_of_id=membership.principal_id if membership else None,
            on_behalf_of_name=membership.principal_name if membership else None,
        )

    def _supervisor(self, inst: Instance, actor: Actor, what: str) -> Membership:
        wf: Workflow = self.definition(inst).workflow
        membership = actor.overseeing(wf.supervisor_role, inst.org_path) if wf.supervisor_role else None
        if membership is None:
            raise Forbidden(f"{what}需要「{wf.title}」的监管岗位 (needs the supervising role of '{wf.key}')")
        return membership

    @staticmethod
    def _notify_task(
        session: Session, task: Task, inst: Instance, kind: str, subject: str, now: datetime, key: str
    ) -> None:
        """Tell the task's assignee, or, while nobody has claimed it, everyone it is offered to."""
        if task.assignee_id is None:
            tasks.tell_holders(
                session, task.role, task.org_unit, inst, now, kind=kind, subject=subject, key=key
            )
        else:
            notify.queue(
                session,
                user_id=task.assignee_id,
                kind=kind,
                instance_id=inst.id,
                now=now,
                subject=subject,
                dedupe_key=f"{key}:{task.assignee_id}",
            )

    # ---- 签收 / 取消签收 ------------------------------------------------------------------------

    def claim(self, session: Session, task_id: int, actor: Actor, now: datetime) -> Task:
        """签收: take an offered task; others then see it as taken."""
        task, inst = self._task(session, task_id, actor)
        membership = self._worker(actor, task)
        if task.assignee_id is not None:
            raise NotPossible("您已签收此任务 (you have already claimed this task)")
        task.assignee_id = actor.user_id
        self._record(session, inst, "claim", actor, now, membership=membership, detail={"task_id": task.id})
        return task

    def unclaim(self, session: Session, task_id: int, actor: Actor, now: datetime) -> Task:
        """取消签收: give a claimed task back to everyone holding its role."""
        task, inst = self._task(session, task_id, actor)
        membership = self._worker(actor, task)
        if task.assignee_id is None:
            raise NotPossible("此任务尚未签收 (this task is not claimed)")
        task.assignee_id = None
        self._record(session, inst, "unclaim", actor, now, membership=membership, detail={"task_id": task.id})
        return task

    # ---- 转办 / 委派 ------------------------------------------------------------------------

    def reassign(
        self,
        session: Session,
        task_id: int,
        actor: Actor,
        to_user_id: int,
        now: datetime,
        comment: str | None = None,
    ) -> Task:
        """转办: hand the task to another person holding the same role over it; they decide."""
        return self._hand_over(session, task_id, actor, to_user_id, now, comment, delegating=False)

    def delegate(
        self,
        session: Session,
        task_id: int,
        actor: Actor,
        to_user_id: int,
        now: datetime,
        comment: str | None = None,
    ) -> Task:
        """委派: ask someone who can see the instance for an opinion; it comes back to the delegator."""
        return self._hand_over(session, task_id, actor, to_user_id, now, comment, delegating=True)

    def _hand_over(
        self,
        session: Session,
        task_id: int,
        actor: Actor,
        to_user_id: int,
        now: datetime,
        comment: str | None,
        *,
        delegating: bool,
    ) -> Task:
        task, inst = self._task(session, task_id, actor)
        membership = self._worker(actor, task)
        target = load_actor(session, to_user_id, now)
        if delegating:
            action, label, fit = "delegate", "委派", target.sees(inst.org_path)
            refusal = f"{target.name} 无权查看该事项 (cannot see this instance)"
        else:
            action, label, fit = "reassign", "转办", target.holding(task.role, task.org_path) is not None
            refusal = f"{target.name} 不具备该岗位 (does not hold this task's role here)"
        if target.user_id == actor.user_id or not fit:
            raise InvalidForm({"to_user": refusal})
        task.assignee_id = target.user_id
        task.delegated_by_id = actor.user_id if delegating else None
        self._notify_task(
            session, task, inst, action, f"{label}: {inst.title}", now, f"{action}:{task.id}:{now}"
        )
        self._record(
            session,
            inst,
            action,
            actor,
            now,
            membership=membership,
            comment=comment,
            detail={"task_id": task.id, "to_user_id": target.user_id, "to": target.name},
        )
        return task

    def hand_back(
        self, session: Session, task_id: int, actor: Actor, now: datetime, comment: str | None
    ) -> Task:
        """委派办理完毕: the delegate returns the task, with their opinion, to the delegator who decides."""
        task, inst = self._task(session, task_id, actor)
        if task.delegated_by_id is None or task.assignee_id != actor.user_id:
            raise Forbidden("此任务不是委派给您的 (this task was not delegated to you)")
        opinion = _require_comment(comment, "委派意见")
        task.assignee_id, task.delegated_by_id = task.delegated_by_id, None
        self._notify_task(
            session, task, inst, "handed_back", f"委派已办理: {inst.title}", now, f"back:{task.id}:{now}"
        )
        self._record(session, inst, "hand_back", actor, now, comment=opinion, detail={"task_id": task.id})
        return task

    # ---- 催办 ------------------------------------------------------------------------------------

    @staticmethod
    def _check_urge(session: Session, inst: Instance, task: Task, actor: Actor) -> None:
        """催办 is for someone upstream: the starter, an earlier handler, or a unit above the task."""
        if actor.holding(task.role, task.org_path) is not None and task.assignee_id in (None, actor.user_id):
            raise NotPossible("这是您自己的待办，无需催办 (this task is yours to work, not to urge)")
        above = any(
            task.org_path.startswith(m.org_path) and task.org_path != m.org_path for m in actor.memberships
        )
        if actor.user_id == inst.started_by_id or above:
            return
        acted_before = session.scalars(
            select(Task.id).where(Task.instance_id == inst.id, Task.closed_by_id == actor.user_id)
        ).first()
        if acted_before is None:
            raise Forbidden(
                "只有发起人、经办人或上级单位可以催办 (only the starter, an earlier handler or a unit above may urge)"
            )

    def urge(
        self, session: Session, task_id: int, actor: Actor, now: datetime, comment: str | None = None
    ) -> Task:
        """催办: someone upstream (the starter, an earlier handler, or a unit above) presses an open task."""
        task, inst = self._task(session, task_id, actor)
        self._check_urge(session, inst, task, actor)
        task.urge_count += 1
        self._notify_task(
            session,
            task,
            inst,
            "urged",
            f"催办({task.urge_count}): {inst.title}",
            now,
            f"urge:{task.id}:{task.urge_count}",
        )
        self._record(
            session,
            inst,
            "urge",
            actor,
            now,
            comment=comment,
            detail={"task_id": task.id, "urge_count": task.urge_count},
        )
        return task

    # ---- 挂起 / 恢复 -----------------------------------------------------------------------------

    def suspend(
        self, session: Session, instance_id: int, actor: Actor, now: datetime, comment: str | None
    ) -> Instance:
        """挂起: the instance accepts no action and its clocks stop, keeping the time they had left."""
        inst = self.instance(session, instance_id, actor, lock=True)
        self._check_live(inst)
        membership = self._supervisor(inst, actor, "挂起 (suspend)")
        reason = _require_comment(comment, "挂起")
        for row in session.scalars(
            select(DeadlineRow).where(DeadlineRow.instance_id == inst.id, DeadlineRow.status == "pending")
        ):
            row.status, row.remaining_seconds = "paused", remaining(row.due_at, now)
        inst.status, inst.suspended_at = SUSPENDED, now
        self._record(session, inst, "suspend", actor, now, membership=membership, comment=reason)
        return inst

    def resume(
        self, session: Session, instance_id: int, actor: Actor, now: datetime, comment: str | None = None
    ) -> Instance:
        """恢复: clocks restart with the time they had left; due dates move by the time suspended."""
        inst = self.instance(session, instance_id, actor, lock=True)
        if inst.status != SUSPENDED:
            raise NotPossible(f"事项未挂起 (instance {inst.id} is not suspended)")
        membership = self._supervisor(inst, actor, "恢复 (resume)")
        paused = now - inst.suspended_at
        for row in session.scalars(
            select(DeadlineRow).where(DeadlineRow.instance_id == inst.id, DeadlineRow.status == "paused")
        ):
            row.status, row.due_at = "pending", resumed_due(row.remaining_seconds, now)
            row.remaining_seconds = None
        for task in session.scalars(
            select(Task).where(Task.instance_id == inst.id, Task.status == tasks.OPEN)
        ):
            if task.due_at is not None:
                task.due_at += paused
        inst.status, inst.suspended_at = ACTIVE, None
        self._record(
            session,
            inst,
            "resume",
            actor,
            now,
            membership=membership,
            comment=comment,
            detail={"paused_seconds": int(paused.total_seconds())},
        )
        return inst

    # ---- 撤回 -------------------------------------------------------------------------------------

    @staticmethod
    def _check_withdraw(session: Session, inst: Instance, actor: Actor, wf: Workflow) -> None:
        """撤回 is for the submitter, from a withdrawable step, before the next step has acted."""
        if inst.previous_state is None or inst.previous_actor_id != actor.user_id:
            raise Forbidden("只有提交人可以撤回 (only the person who submitted it may withdraw it)")
        if not wf.state(inst.previous_state).withdrawable:
            raise NotPossible(
                f"「{wf.state(inst.previous_state).label}」环节不允许撤回 ('{inst.previous_state}' does not allow withdrawal)"
            )
        acted = session.scalars(
            select(Task.id).where(
                Task.instance_id == inst.id,
                Task.state == inst.state,
                (Task.assignee_id.is_not(None)) | (Task.status == "done"),
                Task.created_at >= inst.entered_at,
            )
        ).first()
        if acted is not None:
            raise NotPossible(
                "the next step has already acted on it: too late to withdraw (已被处理，无法撤回)"
            )

    def withdraw(
        self, session: Session, instance_id: int, actor: Actor, now: datetime, comment: str | None = None
    ) -> Instance:
        """撤回: the submitter takes a submission back, until the next step has acted on it."""
        inst = self.instance(session, instance_id, actor, lock=True)
        self._check_live(inst)
        wf: Workflow = self.definition(inst).workflow
        self._check_withdraw(session, inst, actor, wf)
        from_state = inst.state
        tasks.close_open(session, inst, now, done=None, outcome="withdrawn", closed_by=actor.user_id)
        inst.state, inst.previous_state, inst.previous_actor_id = inst.previous_state, None, None
        self._record(session, inst, "withdraw", actor, now, comment=comment, from_state=from_state)
        inst.entered_at = now
        self._enter(session, inst, wf.state(inst.state), now)
        return inst

    # ---- 加签 / 减签 ----------------------------------------------------------------------------

    def _countersign_state(self, inst: Instance) -> State:
        state = self.definition(inst).workflow.state(inst.state)
        if state.countersign is None:
            raise NotPossible(f"「{state.label}」不是会签环节 ('{state.name}' is not a countersign step)")
        return state

    def add_signer(
        self, session: Session, instance_id: int, party: str, actor: Actor, now: datetime, comment: str | None
    ) -> Task:
        """加签: one more party must sign this countersign step."""
        inst = self.instance(session, instance_id, actor, lock=True)
        self._check_live(inst)
        membership = self._supervisor(inst, actor, "加签 (add a signer)")
        state = self._countersign_state(inst)
        reason = _require_comment(comment, "加签")
        if party in self._open_parties(session, inst):
            raise InvalidForm({"party": f"'{party}' 已在会签中 (already signing)"})
        offer = tasks.party_offer(session, self.registry, inst, state, party)
        due = session.scalars(
            select(Task.due_at).where(Task.instance_id == inst.id, Task.state == inst.state)
        ).first()
        task = tasks.open_task(session, inst, state.name, offer, now, due)
        self._record(
            session,
            inst,
            "add_signer",
            actor,
            now,
            membership=membership,
            comment=reason,
            detail={"party": party, "task_id": task.id},
        )
        return task

    def remove_signer(
        self, session: Session, instance_id: int, party: str, actor: Actor, now: datetime, comment: str | None
    ) -> None:
        """减签: a party that has not signed yet is no longer required (never the last one pending)."""
        inst = self.instance(session, instance_id, actor, lock=True)
        self._check_live(inst)
        membership = self._supervisor(inst, actor, "减签 (remove a signer)")
        self._countersign_state(inst)
        reason = _require_comment(comment, "减签")
        open_parties = self._open_parties(session, inst)
        if party not in open_parties:
            raise InvalidForm({"party": f"'{party}' 没有待签任务 (has no pending signature)"})
        if len(open_parties) == 1:
            raise NotPossible(
                "不能减去最后一个待签单位，请签署或退回 (cannot remove the last pending signer: sign or return instead)"
            )
        task = open_parties[party]
        task.status, task.outcome, task.closed_at, task.closed_by_id = (
            "cancelled",
            "removed",
            now,
            actor.user_id,
        )
        self._record(
            session,
            inst,
            "remove_signer",
            actor,
            now,
            membership=membership,
            comment=reason,
            detail={"party": party, "task_id": task.id},
        )

    @staticmethod
    def _open_parties(session: Session, inst: Instance) -> dict[str, Task]:
        rows = session.scalars(
            select(Task).where(
                Task.instance_id == inst.id,
                Task.state == inst.state,
                Task.status == tasks.OPEN,
                Task.kind == "step",
            )
        )
        return {t.party: t for t in rows if t.party is not None}
