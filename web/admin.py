"""Administration (系统管理): users, org units, role memberships, acting officers, definitions.

Besides adding, an administrator revokes a role, deactivates a user, ends an acting period
and issues an API token (shown once, only its hash is kept).

Only holders of the ``admin`` role may enter, and only over their own unit and below. Every
change goes through :mod:`engine.directory`, which audits it on the ``directory`` stream.
Workflow definitions are read-only here: they change by shipping a new version.
"""

from __future__ import annotations

from datetime import datetime

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from engine import directory
from engine.clock import SHANGHAI
from engine.errors import Forbidden, InvalidForm, NotFound, NotPossible
from engine.scope import Actor
from engine.store.models import OrgUnit, RoleMembership, Substitute, User
from web import db, diagrams

bp = Blueprint("admin", __name__, url_prefix="/admin")
ADMIN_ROLE = "admin"


def admin_actor(s) -> Actor:
    actor = db.actor(s)
    if not any(m.role == ADMIN_ROLE for m in actor.memberships):
        raise Forbidden("系统管理需要管理员角色 (admin role required)")
    return actor


@bp.app_context_processor
def administering():
    """``is_admin()`` for the header: the 系统管理 link is shown only to holders of the admin role."""

    def is_admin() -> bool:
        if not current_user.is_authenticated:
            return False
        return any(m.role == ADMIN_ROLE for m in db.actor(db.session()).memberships)

    return {"is_admin": is_admin}


def _unit(s, actor: Actor, raw: str | None, field: str) -> OrgUnit:
    unit = s.get(OrgUnit, int(raw)) if raw and raw.isdigit() else None
    if unit is None or not actor.sees(unit.path):
        raise InvalidForm({field: "请选择管辖范围内的单位 (choose a unit within your scope)"})
    return unit


def _user(s, actor: Actor, user_id: int) -> User:
    """A user with at least one role inside the admin's scope; anyone else is not found."""
    user = s.get(User, user_id)
    if user is None or not any(actor.sees(m.org_unit.path) for m in user.memberships):
        raise NotFound(f"user {user_id} not found")
    return user


def _local_time(raw: str | None, field: str) -> datetime:
    try:
        return datetime.fromisoformat(raw or "").replace(tzinfo=SHANGHAI)
    except ValueError:
        raise InvalidForm({field: "时间格式应为 YYYY-MM-DDTHH:MM (time expected)"}) from None


def _role(code: str) -> str:
    """A role code from a form, refused unless it is one the registry knows."""
    if code not in dict(_role_choices()):
        raise InvalidForm({"role": "未知角色 (unknown role)"})
    return code


def _role_choices() -> list[tuple[str, str]]:
    """Every role of the registry, plus ``admin`` when the workflows do not define it themselves."""
    choices = {code: r.label for code, r in db.runtime().registry.roles.items()}
    choices.setdefault(ADMIN_ROLE, "系统管理员")
    return list(choices.items())


def _page(status: int = 200, errors: dict | None = None):
    s = db.session()
    actor = admin_actor(s)
    units = list(s.scalars(select(OrgUnit).where(actor.scope_filter(OrgUnit.path)).order_by(OrgUnit.path)))
    users = s.scalars(
        select(User)
        .join(RoleMembership, RoleMembership.user_id == User.id)
        .join(OrgUnit, RoleMembership.org_unit_id == OrgUnit.id)
        .where(actor.scope_filter(OrgUnit.path))
        .options(selectinload(User.memberships).selectinload(RoleMembership.org_unit))
        .distinct()
        .order_by(User.username)
    ).all()
    ids = [u.id for u in users]
    subs = s.scalars(
        select(Substitute).where(Substitute.user_id.in_(ids)).order_by(Substitute.starts_at.desc())
    ).all()
    names = {u.id: u.display_name for u in users}
    return (
        render_template(
            "admin/index.html",
            units=units,
            users=users,
            subs=subs,
            names=names,
            me=actor.user_id,
            now=db.now(),
            sees=actor.sees,
            roles=_role_choices(),
            role_labels=dict(_role_choices()),
            kinds=directory.KINDS,
            errors=errors or {},
        ),
        status,
    )


@bp.get("/")
@login_required
def index():
    return _page()


def _change(action):
    """Run one directory change in the request's transaction; show field errors on the page."""
    try:
        with db.transaction() as s:
            actor = admin_actor(s)
            action(s, actor)
    except InvalidForm as exc:
        return _page(422, exc.errors)
    flash(_("已保存"))
    return redirect(url_for("admin.index"))


@bp.post("/users")
@login_required
def add_user():
    f = request.form

    def act(s, actor):
        unit = _unit(s, actor, f.get("org_unit_id"), "org_unit_id")
        role = _role(f.get("role", ""))
        user = directory.add_user(
            s,
            username=f.get("username", "").strip(),
            display_name=f.get("display_name", "").strip() or f.get("username", "").strip(),
            password=f.get("password", ""),
            now=db.now(),
            by=actor.name,
        )
        directory.grant(s, user, role, unit, now=db.now(), by=actor.name)

    return _change(act)


@bp.post("/memberships")
@login_required
def grant():
    f = request.form

    def act(s, actor):
        user = _user(s, actor, f.get("user_id", type=int) or 0)
        unit = _unit(s, actor, f.get("org_unit_id"), "org_unit_id")
        role = _role(f.get("role", ""))
        directory.grant(s, user, role, unit, now=db.now(), by=actor.name)

    return _change(act)


@bp.post("/units")
@login_required
def add_unit():
    f = request.form

    def act(s, actor):
        parent = _unit(s, actor, f.get("parent_id"), "parent_id")
        directory.add_unit(
            s,
            code=f.get("code", "").strip(),
            name=f.get("name", "").strip(),
            kind=f.get("kind", ""),
            dept=f.get("dept", "").strip() or None,
            parent=parent,
            now=db.now(),
            by=actor.name,
        )

    return _change(act)


@bp.post("/substitutes")
@login_required
def add_substitute():
    f = request.form

    def act(s, actor):
        user = _user(s, actor, f.get("user_id", type=int) or 0)
        substitute = _user(s, actor, f.get("substitute_id", type=int) or 0)
        directory.name_substitute(
            s,
            user,
            substitute,
            starts_at=_local_time(f.get("starts_at"), "starts_at"),
            ends_at=_local_time(f.get("ends_at"), "ends_at"),
            now=db.now(),
            by=actor.name,
        )

    return _change(act)


@bp.post("/memberships/<int:membership_id>/revoke")
@login_required
def revoke(membership_id: int):
    def act(s, actor):
        membership = s.get(RoleMembership, membership_id)
        if membership is None or not actor.sees(membership.org_unit.path):
            raise NotFound(f"membership {membership_id} not found")
        directory.revoke(s, membership, now=db.now(), by=actor.name)

    return _change(act)


@bp.post("/users/<int:user_id>/deactivate")
@login_required
def deactivate(user_id: int):
    def act(s, actor):
        user = _user(s, actor, user_id)
        if user.id == actor.user_id:
            raise NotPossible("不能停用自己的账户 (you cannot deactivate your own account)")
        directory.deactivate(s, user, now=db.now(), by=actor.name)

    return _change(act)


@bp.post("/substitutes/<int:substitute_id>/end")
@login_required
def end_substitute(substitute_id: int):
    def act(s, actor):
        row = s.get(Substitute, substitute_id)
        if row is None:
            raise NotFound(f"acting period {substitute_id} not found")
        _user(s, actor, row.user_id)
        directory.end_substitute(s, row, now=db.now(), by=actor.name)

    return _change(act)


@bp.post("/users/<int:user_id>/token")
@login_required
def issue_token(user_id: int):
    """A new API token, shown on this one response and never again (the page is not cached)."""
    with db.transaction() as s:
        actor = admin_actor(s)
        user = _user(s, actor, user_id)
        if not user.active:
            raise NotPossible("用户已停用 (the user is deactivated)")
        token = directory.issue_api_token(s, user, now=db.now(), by=actor.name)
        username = user.username
    response = make_response(render_template("admin/token.html", username=username, token=token))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/workflows")
@login_required
def workflows():
    admin_actor(db.session())
    registry = db.runtime().registry
    return render_template(
        "admin/workflows.html", rows=[(wf, registry.versions(wf.key)) for wf in registry.latest()]
    )


def _definition(key: str, version: int):
    registry = db.runtime().registry
    if not any(wf.version == version for wf in registry.versions(key)):
        abort(404)
    return registry.get(key, version).workflow


@bp.get("/workflows/<key>/<int:version>")
@login_required
def workflow(key: str, version: int):
    admin_actor(db.session())
    wf = _definition(key, version)
    roles = db.runtime().registry.roles
    return render_template("admin/workflow.html", wf=wf, roles=roles)


@bp.get("/workflows/<key>/<int:version>/diagram.svg")
@login_required
def workflow_diagram(key: str, version: int):
    admin_actor(db.session())
    wf = _definition(key, version)
    return Response(diagrams.render(db.runtime().registry, wf.key, wf.version), mimetype="image/svg+xml")
