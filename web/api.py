"""The JSON API (/api/v1): start, fire, tasks, approval actions, instance, audit, diagram; OpenAPI 3.

The approval actions (claim, unclaim, reassign, delegate, hand_back, urge on a task;
withdraw, suspend, resume, add_signer, remove_signer on an instance) take an optional JSON
body (``comment``, ``to_user_id``, ``party``) and map refusals as below.

Authentication is ``Authorization: Bearer <token>`` (the SHA-256 of the token is kept in
``User.api_token_hash``) or the browser session; a session-authenticated POST must carry the
CSRF token in ``X-CSRFToken``. Money goes in as 万元 strings ("12.5") and comes out as
integer 分 (fen), never float. Refusals: 401, 404 (absent or out of scope), 403, 409 (not
possible, or ``expected_version`` stale: the body gives ``current_version``), 422 (guards
with every reason, or form fields each with its error).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from flask_login import current_user

from engine import audit, directory
from engine.errors import InvalidForm, NotFound
from engine.runtime import Runtime
from engine.store.models import Instance, Task
from engine.tasks import task_queue
from web import db, diagrams
from web.auth import csrf
from web.instances import events_of, fields_of, taken_path
from web.openapi import SPEC

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)


@bp.before_request
def authenticate():
    if request.endpoint == "api.openapi":
        return None
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        with db.sessions()() as s:
            user = directory.user_by_token(s, header[7:].strip())
            if user is None:
                return _unauthorised()
            g.api_user_id = user.id
        return None
    if not current_user.is_authenticated:
        return _unauthorised()
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()
    return None


def _unauthorised():
    return jsonify({"error": "unauthorized", "message": "bearer token or login required"}), 401


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidForm({"body": "请求体须为 JSON 对象 (a JSON object is required)"})
    return body


def _int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise InvalidForm({name: "须为整数 (must be an integer)"})
    return value


def _form(body: dict[str, Any]) -> dict[str, Any]:
    form = body.get("form") or {}
    if not isinstance(form, dict):
        raise InvalidForm({"form": "须为 JSON 对象 (must be an object)"})
    return form


def instance_json(s, runtime: Runtime, inst: Instance, actor, now) -> dict[str, Any]:
    wf = runtime.definition(inst).workflow
    return {
        "id": inst.id,
        "workflow": wf.key,
        "workflow_version": wf.version,
        "title": inst.title,
        "state": inst.state,
        "state_label": wf.state(inst.state).label,
        "status": inst.status,
        "version": inst.version_id,
        "org_unit_id": inst.org_unit_id,
        "data": inst.data,
        "fields": {f.name: {"label": f.label, "kind": f.kind} for f in fields_of(wf).values()},
        "checklist": [
            {
                "name": c.name,
                "label": c.label,
                "ok": not c.reasons,
                "reasons": c.reasons,
                "enforced": c.enforced,
            }
            for c in runtime.checklist(db.session(), inst, now)
        ],
        "actions": [
            {
                "trigger": a.trigger,
                "label": a.label,
                "allowed": a.allowed,
                "reasons": list(a.reasons),
                "needs_comment": a.needs_comment,
                "fields": [f.name for f in a.fields],
            }
            for a in runtime.available_actions(s, inst.id, actor, now)
        ],
        "created_at": inst.created_at.isoformat(),
        "updated_at": inst.updated_at.isoformat(),
    }


@bp.get("/openapi.json")
def openapi():
    return jsonify(SPEC)


@bp.get("/tasks")
def tasks():
    s, runtime, now = db.session(), db.runtime(), db.now()
    page = task_queue(
        s,
        db.actor(s),
        workflow=request.args.get("workflow") or None,
        state=request.args.get("state") or None,
        overdue_at=now if request.args.get("overdue") else None,
        page=request.args.get("page", 1, type=int),
        per_page=min(100, request.args.get("per_page", 20, type=int)),
    )
    return jsonify(
        {
            "items": [
                {
                    "id": t.id,
                    "instance_id": t.instance_id,
                    "title": t.title,
                    "workflow": t.workflow_key,
                    "state": t.state,
                    "state_label": runtime.registry.get(t.workflow_key, t.workflow_version)
                    .workflow.state(t.state)
                    .label,
                    "role": t.role,
                    "org_unit_id": t.org_unit_id,
                    "assignee_id": t.assignee_id,
                    "due_at": t.due_at.isoformat() if t.due_at else None,
                    "overdue": t.due_at is not None and t.due_at < now,
                }
                for t in page.items
            ],
            "total": page.total,
            "total_exact": page.exact,
            "page": page.page,
            "per_page": page.per_page,
        }
    )


@bp.post("/instances")
def start():
    body, runtime, now = _body(), db.runtime(), db.now()
    with db.transaction() as s:
        actor = db.actor(s)
        inst = runtime.start(
            s,
            str(body.get("workflow", "")),
            actor,
            org_unit_id=_int(body, "org_unit_id") or 0,
            form=_form(body),
            now=now,
            idempotency_key=body.get("idempotency_key"),
        )
        result = instance_json(s, runtime, inst, actor, now)
    return jsonify(result), 201


@bp.get("/instances/<int:inst_id>")
def instance(inst_id: int):
    s, runtime, now = db.session(), db.runtime(), db.now()
    actor = db.actor(s)
    return jsonify(instance_json(s, runtime, runtime.instance(s, inst_id, actor), actor, now))


@bp.post("/instances/<int:inst_id>/fire")
def fire(inst_id: int):
    body, runtime = _body(), db.runtime()
    with db.transaction() as s:
        result = runtime.fire(
            s,
            inst_id,
            str(body.get("trigger", "")),
            db.actor(s),
            now=db.now(),
            comment=body.get("comment"),
            form=_form(body),
            expected_version=_int(body, "expected_version"),
            idempotency_key=body.get("idempotency_key"),
        )
    return jsonify(
        {
            "instance_id": result.instance_id,
            "trigger": result.trigger,
            "from_state": result.from_state,
            "to_state": result.to_state,
            "version": result.version,
            "event_id": result.event_id,
            "advanced": result.advanced,
            "replayed": result.replayed,
        }
    )


@bp.get("/instances/<int:inst_id>/audit")
def audit_trail(inst_id: int):
    s, runtime = db.session(), db.runtime()
    inst = runtime.instance(s, inst_id, db.actor(s))
    breaks = audit.verify(s, audit.instance_stream(inst.id))
    return jsonify(
        {
            "verified": not breaks,
            "breaks": [str(b) for b in breaks],
            "events": [
                {
                    "seq": e.seq,
                    "at": e.at.isoformat(),
                    "action": e.action,
                    "actor_id": e.actor_id,
                    "actor_name": e.actor_name,
                    "on_behalf_of_name": e.on_behalf_of_name,
                    "role": e.role,
                    "org_unit_id": e.org_unit_id,
                    "trigger": e.trigger,
                    "from_state": e.from_state,
                    "to_state": e.to_state,
                    "comment": e.comment,
                    "detail": e.detail,
                    "prev_hash": e.prev_hash,
                    "hash": e.hash,
                }
                for e in events_of(s, inst)
            ],
        }
    )


@bp.get("/instances/<int:inst_id>/diagram.svg")
def diagram(inst_id: int):
    s, runtime = db.session(), db.runtime()
    inst = runtime.instance(s, inst_id, db.actor(s))
    svg = diagrams.render(
        runtime.registry, inst.workflow_key, inst.workflow_version, inst.state, taken_path(events_of(s, inst))
    )
    return Response(svg, mimetype="image/svg+xml")


def _comment(body: dict[str, Any]) -> str | None:
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise InvalidForm({"comment": "须为字符串 (must be a string)"})
    return comment


def _task_json(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "instance_id": task.instance_id,
        "state": task.state,
        "party": task.party,
        "status": task.status,
        "assignee_id": task.assignee_id,
        "delegated_by_id": task.delegated_by_id,
        "urge_count": task.urge_count,
    }


def _instance_state(inst: Instance) -> dict[str, Any]:
    return {"id": inst.id, "state": inst.state, "status": inst.status, "version": inst.version_id}


def _task_action(task_id: int, call) -> Response:
    """Run ``call(runtime, session, actor, now, body)`` on a task in one transaction; answer the task.

    Scope comes first: a task out of sight is 404 before its body is read, as one that does not exist.
    """
    with db.transaction() as s:
        actor, runtime = db.actor(s), db.runtime()
        task = s.get(Task, task_id)
        if task is None:
            raise NotFound(f"任务不存在 (task {task_id} not found)")
        runtime.instance(s, task.instance_id, actor)
        task = call(runtime, s, actor, db.now(), _body() if request.get_data() else {})
        result = _task_json(task)
    return jsonify(result)


def _instance_action(inst_id: int, call) -> Response:
    with db.transaction() as s:
        actor, runtime = db.actor(s), db.runtime()
        runtime.instance(s, inst_id, actor)
        inst = call(runtime, s, actor, db.now(), _body() if request.get_data() else {})
        result = _instance_state(inst)
    return jsonify(result)


@bp.post("/tasks/<int:task_id>/claim")
def claim(task_id: int):
    return _task_action(task_id, lambda r, s, a, now, b: r.claim(s, task_id, a, now))


@bp.post("/tasks/<int:task_id>/unclaim")
def unclaim(task_id: int):
    return _task_action(task_id, lambda r, s, a, now, b: r.unclaim(s, task_id, a, now))


def _to_user(body: dict[str, Any]) -> int:
    to_user = _int(body, "to_user_id")
    if to_user is None:
        raise InvalidForm({"to_user_id": "必填 (required)"})
    return to_user


@bp.post("/tasks/<int:task_id>/reassign")
def reassign(task_id: int):
    return _task_action(
        task_id, lambda r, s, a, now, b: r.reassign(s, task_id, a, _to_user(b), now, _comment(b))
    )


@bp.post("/tasks/<int:task_id>/delegate")
def delegate(task_id: int):
    return _task_action(
        task_id, lambda r, s, a, now, b: r.delegate(s, task_id, a, _to_user(b), now, _comment(b))
    )


@bp.post("/tasks/<int:task_id>/hand_back")
def hand_back(task_id: int):
    return _task_action(task_id, lambda r, s, a, now, b: r.hand_back(s, task_id, a, now, _comment(b)))


@bp.post("/tasks/<int:task_id>/urge")
def urge(task_id: int):
    return _task_action(task_id, lambda r, s, a, now, b: r.urge(s, task_id, a, now, _comment(b)))


@bp.post("/instances/<int:inst_id>/withdraw")
def withdraw(inst_id: int):
    return _instance_action(inst_id, lambda r, s, a, now, b: r.withdraw(s, inst_id, a, now, _comment(b)))


@bp.post("/instances/<int:inst_id>/suspend")
def suspend(inst_id: int):
    return _instance_action(inst_id, lambda r, s, a, now, b: r.suspend(s, inst_id, a, now, _comment(b)))


@bp.post("/instances/<int:inst_id>/resume")
def resume(inst_id: int):
    return _instance_action(inst_id, lambda r, s, a, now, b: r.resume(s, inst_id, a, now, _comment(b)))


def _party(body: dict[str, Any]) -> str:
    party = body.get("party")
    if not isinstance(party, str) or not party:
        raise InvalidForm({"party": "必填 (required)"})
    return party


@bp.post("/instances/<int:inst_id>/add_signer")
def add_signer(inst_id: int):
    def call(r, s, a, now, b):
        r.add_signer(s, inst_id, _party(b), a, now, _comment(b))
        return r.instance(s, inst_id, a)

    return _instance_action(inst_id, call)


@bp.post("/instances/<int:inst_id>/remove_signer")
def remove_signer(inst_id: int):
    def call(r, s, a, now, b):
        r.remove_signer(s, inst_id, _party(b), a, now, _comment(b))
        return r.instance(s, inst_id, a)

    return _instance_action(inst_id, call)
