"""Instances (流程实例): start forms, the instance page, actions, attachments, diagram and audit trail.

Every route loads the instance through ``Runtime.instance``, so anything outside the user's
org scope is a 404, exactly like something that does not exist.
"""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_login import login_required
from sqlalchemy import func, select

from engine import audit
from engine.definitions import Field, Workflow
from engine.errors import EngineError, Forbidden, InvalidForm, NotFound
from engine.forms import clean_text, fen_to_wan
from engine.runtime import Runtime
from engine.store.models import AuditEvent, Instance, OrgUnit
from web import db, diagrams
from web.views import shanghai, status_of
from workflows.reports import xlsx

bp = Blueprint("instances", __name__)
PER_PAGE = 20
ACTION_LABELS = {
    "start": "发起",
    "sign": "会签",
    "claim": "签收",
    "unclaim": "取消签收",
    "reassign": "转办",
    "delegate": "委派",
    "hand_back": "委派交回",
    "urge": "催办",
    "suspend": "挂起",
    "resume": "恢复",
    "withdraw": "撤回",
    "add_signer": "加签",
    "remove_signer": "减签",
    "remind": "到期提醒",
    "overdue": "超期督办",
}
"""Audit actions other than transitions (which show their trigger's label), as users read them."""


def fields_of(wf: Workflow) -> dict[str, Field]:
    """Every field an instance of ``wf`` may carry: the start form's, then each action form's."""
    found = {f.name: f for f in wf.start_fields}
    for t in wf.transitions:
        for f in t.fields:
            found.setdefault(f.name, f)
    return found


def form_values(fields, prefix: str = "") -> dict:
    """The submitted raw values of ``fields`` (lists for multichoice), blanks left out."""
    values = {}
    for f in fields:
        key = prefix + f.name
        raw = request.form.getlist(key) if f.kind == "multichoice" else request.form.get(key)
        if raw not in (None, "", []):
            values[f.name] = raw
    return values


def input_value(f: Field, value):
    """A stored value as a form input holds it: money back in 万元, the rest as stored."""
    return format(fen_to_wan(value), "f") if f.kind == "money" and value is not None else value


def events_of(s, inst: Instance) -> list[AuditEvent]:
    return list(
        s.scalars(select(AuditEvent).where(AuditEvent.instance_id == inst.id).order_by(AuditEvent.seq))
    )


def taken_path(events: list[AuditEvent]) -> frozenset[tuple[str, str, str]]:
    return frozenset(
        (e.from_state, e.trigger, e.to_state) for e in events if e.action == "transition" and e.from_state
    )


@dataclass(frozen=True)
class TrailRow:
    """One audit event as people read it."""

    at: str
    person: str
    on_behalf_of: str
    role: str
    unit: str
    action: str
    from_state: str
    to_state: str
    comment: str
    attachments: tuple[dict, ...]

    HEADERS = ("时间", "经办人", "代理谁", "角色", "单位", "操作", "原节点", "新节点", "意见", "附件")

    def cells(self) -> list[str]:
        names = "; ".join(f"{a.get('name')} sha256:{a.get('sha256')}" for a in self.attachments)
        return [
            self.at,
            self.person,
            self.on_behalf_of,
            self.role,
            self.unit,
            self.action,
            self.from_state,
            self.to_state,
            self.comment,
            names,
        ]


def trail_rows(s, runtime: Runtime, inst: Instance, events: list[AuditEvent]) -> list[TrailRow]:
    wf = runtime.definition(inst).workflow
    states = {st.name: st.label for st in wf.states}
    unit_ids = {e.org_unit_id for e in events if e.org_unit_id}
    units = dict(s.execute(select(OrgUnit.id, OrgUnit.name).where(OrgUnit.id.in_(unit_ids))).tuples().all())
    roles = runtime.registry.roles
    return [
        TrailRow(
            at=shanghai(e.at, "%Y-%m-%d %H:%M:%S"),
            person=e.actor_name,
            on_behalf_of=e.on_behalf_of_name or "",
            role=roles[e.role].label if e.role in roles else (e.role or ""),
            unit=units.get(e.org_unit_id, ""),
            action=wf.label_of(e.trigger)
            if e.action in ("transition", "sign") and e.trigger
            else ACTION_LABELS.get(e.action, e.action),
            from_state=states.get(e.from_state, e.from_state or ""),
            to_state=states.get(e.to_state, e.to_state or ""),
            comment=e.comment or "",
            attachments=tuple((e.detail or {}).get("attachments", ())),
        )
        for e in events
    ]


def instance_view(inst_id: int, *, error: EngineError | None = None, status: int = 200):
    s, runtime, now = db.session(), db.runtime(), db.now()
    actor = db.actor(s)
    inst = runtime.instance(s, inst_id, actor)
    compiled = runtime.definition(inst)
    events = events_of(s, inst)
    fields = fields_of(compiled.workflow)
    actions = runtime.available_actions(s, inst.id, actor, now)
    action_fields = {f.name: f for a in actions if a.allowed for f in a.fields}
    record = {f.name for f in compiled.workflow.start_fields}
    return (
        render_template(
            "instance.html",
            inst=inst,
            wf=compiled.workflow,
            state=compiled.workflow.state(inst.state),
            data=[(fields[k], v) for k, v in inst.data.items() if k in fields],
            checklist=runtime.checklist(db.session(), inst, now),
            panel=runtime.options(s, inst, actor),
            actions=actions,
            action_fields=action_fields.values(),
            prefill={k: input_value(fields[k], v) for k, v in inst.data.items() if k in record},
            trail=trail_rows(s, runtime, inst, events),
            breaks=audit.verify(s, audit.instance_stream(inst.id)),
            error=error,
            idempotency_key=uuid.uuid4().hex,
        ),
        status,
    )


@bp.get("/instances/")
@login_required
def index():
    """Instances within the user's sight (what an auditor browses), newest first."""
    s, runtime = db.session(), db.runtime()
    actor = db.actor(s)
    query = select(Instance).where(actor.scope_filter(Instance.org_path))
    workflow = request.args.get("workflow") or None
    if workflow:
        query = query.where(Instance.workflow_key == workflow)
    page = max(1, request.args.get("page", 1, type=int))
    total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = s.scalars(query.order_by(Instance.id.desc()).limit(PER_PAGE).offset((page - 1) * PER_PAGE)).all()
    rows = [(i, runtime.definition(i).workflow) for i in items]
    return render_template(
        "instances.html",
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // PER_PAGE)),
        workflows=runtime.registry.latest(),
        workflow=workflow,
    )


@bp.get("/instances/<int:inst_id>")
@login_required
def show(inst_id: int):
    return instance_view(inst_id)


ZIP, OLE = b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ATTACHMENT_TYPES: dict[str, tuple[bytes, str | None]] = {
    "pdf": (b"%PDF-", None),
    "ofd": (ZIP, "OFD.xml"),
    "png": (b"\x89PNG\r\n\x1a\n", None),
    "jpg": (b"\xff\xd8\xff", None),
    "jpeg": (b"\xff\xd8\xff", None),
    "docx": (ZIP, "[Content_Types].xml"),
    "xlsx": (ZIP, "[Content_Types].xml"),
    "pptx": (ZIP, "[Content_Types].xml"),
    "doc": (OLE, None),
    "xls": (OLE, None),
    "wps": (OLE, None),
    "et": (OLE, None),
    "txt": (b"", None),
    "csv": (b"", None),
}
"""Allowed attachment extensions: the leading bytes the content must have, and a member a zip must hold."""
ATTACHMENT_NAME_MAX = 120


def attachment_name(filename: str) -> str:
    """The display name of an upload: its last path part, at most 120 characters (the extension kept).

    The file itself is always stored as ``UPLOAD_DIR/<instance>/<sha256>``; the name is only shown.
    """
    name = filename.replace("\\", "/").rsplit("/", 1)[-1].strip()
    try:
        name = clean_text(name, len(name))
    except ValueError as exc:
        raise ValueError(f"文件名{exc}") from None
    if not name.strip(". ") or "\n" in name or "\t" in name:
        raise ValueError("文件名无效 (invalid file name)")
    stem, _dot, ext = name.rpartition(".")
    if len(name) > ATTACHMENT_NAME_MAX:
        name = f"{stem[: ATTACHMENT_NAME_MAX - len(ext) - 1]}.{ext}"
    return name


def _looks_like(ext: str, content: bytes) -> bool:
    """Whether ``content`` really is a file of type ``ext`` (its magic bytes, or clean text)."""
    magic, member = ATTACHMENT_TYPES[ext]
    if not content.startswith(magic):
        return False
    if not magic:
        return b"\x00" not in content and _decodes(content)
    if member is None:
        return True
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as z:
            return member in z.namelist()
    except zipfile.BadZipFile:
        return False


def _decodes(content: bytes) -> bool:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            content.decode(encoding)
        except UnicodeDecodeError:
            continue
        return True
    return False


def _attachments() -> list[tuple[dict, bytes]]:
    """The uploaded attachments, checked: a safe name, an allowed type, content that matches it."""
    found, faults = [], []
    for upload in request.files.getlist("attachments"):
        if not upload.filename:
            continue
        content = upload.read()
        try:
            name = attachment_name(upload.filename)
        except ValueError as exc:
            faults.append(str(exc))
            continue
        ext = name.rpartition(".")[2].lower() if "." in name else ""
        if ext not in ATTACHMENT_TYPES:
            allowed = ", ".join(ATTACHMENT_TYPES)
            faults.append(f"{name}: 不支持的文件类型，仅限 {allowed} (file type not allowed; only {allowed})")
        elif not content:
            faults.append(f"{name}: 文件为空 (the file is empty)")
        elif not _looks_like(ext, content):
            faults.append(f"{name}: 文件内容与扩展名 .{ext} 不符 (content is not a .{ext} file)")
        else:
            meta = {"name": name, "sha256": hashlib.sha256(content).hexdigest(), "size": len(content)}
            found.append((meta, content))
    if faults:
        raise InvalidForm({"attachments": "; ".join(faults)})
    return found


def _store(inst_id: int, files: list[tuple[dict, bytes]]) -> None:
    """Save attachments content-addressed in the instance's folder (same content, same file)."""
    folder = Path(current_app.config["UPLOAD_DIR"]) / str(inst_id)
    folder.mkdir(parents=True, exist_ok=True)
    for meta, content in files:
        (folder / meta["sha256"]).write_bytes(content)


@bp.post("/instances/<int:inst_id>/fire")
@login_required
def fire(inst_id: int):
    runtime = db.runtime()
    trigger = request.form.get("trigger", "")
    expected = request.form.get("expected_version", "")
    try:
        files = _attachments()
        with db.transaction() as s:
            actor = db.actor(s)
            inst = runtime.instance(s, inst_id, actor)
            branches = runtime.definition(inst).workflow.transitions_from(inst.state, trigger)
            fields = {f.name: f for b in branches for f in b.fields}.values()
            result = runtime.fire(
                s,
                inst_id,
                trigger,
                actor,
                now=db.now(),
                comment=request.form.get("comment", "").strip() or None,
                form=form_values(fields, "field."),
                expected_version=int(expected) if expected.isdigit() else None,
                idempotency_key=request.form.get("idempotency_key") or None,
                attachments=[meta for meta, _content in files],
            )
            _store(inst_id, files)
    except NotFound:
        raise
    except EngineError as exc:
        return instance_view(inst_id, error=exc, status=status_of(exc))
    if result.advanced:
        flash(_("已办理：%(action)s", action=runtime.definition(inst).workflow.label_of(trigger)))
    else:
        flash(_("已会签，等待其他单位"))
    return redirect(url_for("instances.show", inst_id=inst_id))


@bp.get("/instances/<int:inst_id>/diagram.svg")
@login_required
def diagram(inst_id: int):
    s, runtime = db.session(), db.runtime()
    inst = runtime.instance(s, inst_id, db.actor(s))
    svg = diagrams.render(
        runtime.registry, inst.workflow_key, inst.workflow_version, inst.state, taken_path(events_of(s, inst))
    )
    return Response(svg, mimetype="image/svg+xml")


@bp.get("/instances/<int:inst_id>/attachments/<sha256>")
@login_required
def attachment(inst_id: int, sha256: str):
    s, runtime = db.session(), db.runtime()
    inst = runtime.instance(s, inst_id, db.actor(s))
    for e in events_of(s, inst):
        for a in (e.detail or {}).get("attachments", ()):
            if a.get("sha256") == sha256:
                path = Path(current_app.config["UPLOAD_DIR"]) / str(inst.id) / sha256
                if not path.is_file():
                    abort(404)
                return send_file(path, as_attachment=True, download_name=a["name"])
    abort(404)


def _csv_text(value: str) -> str:
    """A CSV cell that a spreadsheet opens as text, never as a formula (CSV injection: a leading ``'``)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _trail_for_export(inst_id: int) -> tuple[Instance, list[TrailRow]]:
    s, runtime = db.session(), db.runtime()
    inst = runtime.instance(s, inst_id, db.actor(s))
    return inst, trail_rows(s, runtime, inst, events_of(s, inst))


@bp.get("/instances/<int:inst_id>/audit.csv")
@login_required
def audit_csv(inst_id: int):
    inst, rows = _trail_for_export(inst_id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(TrailRow.HEADERS)
    writer.writerows([_csv_text(c) for c in r.cells()] for r in rows)
    return Response(
        "\ufeff" + out.getvalue(),
        mimetype="text/csv; charset=utf-8",
        headers={"Content-Disposition": f"attachment; filename=audit-{inst.id}.csv"},
    )


@bp.get("/instances/<int:inst_id>/audit.xlsx")
@login_required
def audit_xlsx(inst_id: int):
    inst, rows = _trail_for_export(inst_id)
    book = xlsx.new_book()
    xlsx.add_sheet(book, f"审计记录 {inst.id}", TrailRow.HEADERS, (r.cells() for r in rows))
    return Response(
        xlsx.to_bytes(book),
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f"attachment; filename=audit-{inst.id}.xlsx"},
    )


def startable(runtime: Runtime, actor) -> list[Workflow]:
    roles = {m.role for m in actor.memberships}
    return [wf for wf in runtime.registry.latest() if wf.start_role in roles]


@bp.get("/start/")
@login_required
def start_list():
    s = db.session()
    return render_template("start_list.html", workflows=startable(db.runtime(), db.actor(s)))


def _start_units(s, wf: Workflow, actor) -> list[OrgUnit]:
    ids = [m.org_unit_id for m in actor.memberships if m.role == wf.start_role]
    return list(s.scalars(select(OrgUnit).where(OrgUnit.id.in_(ids)).order_by(OrgUnit.path)))


@bp.route("/start/<key>", methods=["GET", "POST"])
@login_required
def start(key: str):
    runtime = db.runtime()
    if key not in {wf.key for wf in runtime.registry.latest()}:
        abort(404)
    wf = runtime.registry.get(key).workflow
    if request.method == "GET":
        s = db.session()
        actor = db.actor(s)
        if not _start_units(s, wf, actor):
            raise Forbidden(f"无权发起{wf.title} (starting '{wf.title}' needs role '{wf.start_role}')")
        return render_template(
            "start_form.html",
            wf=wf,
            units=_start_units(s, wf, actor),
            values={},
            errors={},
            idempotency_key=uuid.uuid4().hex,
        )
    values = form_values(wf.start_fields)
    unit_id = request.form.get("org_unit_id", "")
    try:
        with db.transaction() as s:
            inst = runtime.start(
                s,
                key,
                db.actor(s),
                org_unit_id=int(unit_id) if unit_id.isdigit() else 0,
                form=values,
                now=db.now(),
                idempotency_key=request.form.get("idempotency_key") or None,
            )
    except InvalidForm as exc:
        s = db.session()
        return (
            render_template(
                "start_form.html",
                wf=wf,
                units=_start_units(s, wf, db.actor(s)),
                values=values,
                errors=exc.errors,
                unit_id=unit_id,
                idempotency_key=request.form.get("idempotency_key"),
            ),
            422,
        )
    flash(_("已发起：%(title)s", title=inst.title))
    return redirect(url_for("instances.show", inst_id=inst.id))
