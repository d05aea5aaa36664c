"""The directory (组织与人员): org units, users, role memberships and acting officers.

Every change here is audited on the ``directory`` stream. Passwords are stored only as
salted hashes (werkzeug's scrypt); the plain text is never kept.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from engine import audit
from engine.errors import InvalidForm, NotFound
from engine.store.models import OrgUnit, RoleMembership, Substitute, User

STREAM = "directory"
KINDS = ("province", "prefecture", "county", "township", "village", "department")


def add_unit(
    session: Session,
    *,
    code: str,
    name: str,
    kind: str,
    now: datetime,
    parent: OrgUnit | None = None,
    dept: str | None = None,
    by: str = "SYSTEM",
) -> OrgUnit:
    """Add an org unit below ``parent``; its path is the parent's path plus its own id."""
    if kind not in KINDS:
        raise InvalidForm({"kind": f"unknown org unit kind '{kind}'"})
    if kind == "department" and not dept:
        raise InvalidForm({"dept": "a department needs its department code"})
    if session.scalars(select(OrgUnit.id).where(OrgUnit.code == code)).first() is not None:
        raise InvalidForm({"code": f"org unit code '{code}' already exists"})
    unit = OrgUnit(code=code, name=name, kind=kind, dept=dept, parent=parent, path="")
    session.add(unit)
    session.flush()
    unit.path = f"{parent.path if parent else '/'}{unit.id}/"
    audit.append(
        session,
        STREAM,
        at=now,
        action="add_unit",
        actor_name=by,
        org_unit_id=unit.id,
        detail={"code": code, "name": name, "kind": kind, "dept": dept},
    )
    return unit


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise InvalidForm({"password": "至少8位 (at least 8 characters)"})
    return generate_password_hash(password)


def add_user(
    session: Session,
    *,
    username: str,
    display_name: str,
    now: datetime,
    password: str | None = None,
    password_hash: str | None = None,
    email: str | None = None,
    by: str = "SYSTEM",
) -> User:
    """Add a user from a password, or from a hash made once by :func:`hash_password` (bulk seeding)."""
    if session.scalars(select(User.id).where(User.username == username)).first() is not None:
        raise InvalidForm({"username": f"username '{username}' already exists"})
    user = User(
        username=username,
        display_name=display_name,
        email=email,
        password_hash=password_hash or hash_password(password or ""),
        active=True,
        failed_logins=0,
    )
    session.add(user)
    session.flush()
    audit.append(session, STREAM, at=now, action="add_user", actor_name=by, detail={"username": username})
    return user


def check_password(user: User, password: str) -> bool:
    return check_password_hash(user.password_hash, password)


def grant(
    session: Session, user: User, role: str, unit: OrgUnit, *, now: datetime, by: str = "SYSTEM"
) -> RoleMembership:
    """Give ``user`` the role ``role`` at ``unit`` (and so over every unit below it)."""
    membership = RoleMembership(user=user, role=role, org_unit=unit)
    session.add(membership)
    session.flush()
    audit.append(
        session,
        STREAM,
        at=now,
        action="grant",
        actor_name=by,
        org_unit_id=unit.id,
        detail={"user": user.username, "role": role},
    )
    return membership


def name_substitute(
    session: Session,
    user: User,
    substitute: User,
    *,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime,
    by: str = "SYSTEM",
) -> Substitute:
    """``substitute`` acts for ``user`` from ``starts_at`` until ``ends_at`` (代理)."""
    if ends_at <= starts_at:
        raise InvalidForm({"ends_at": "结束时间须晚于开始时间 (must be after the start)"})
    if substitute.id == user.id:
        raise InvalidForm({"substitute": "不能代理自己 (cannot stand in for oneself)"})
    row = Substitute(user_id=user.id, substitute_id=substitute.id, starts_at=starts_at, ends_at=ends_at)
    session.add(row)
    session.flush()
    audit.append(
        session,
        STREAM,
        at=now,
        action="name_substitute",
        actor_name=by,
        detail={
            "user": user.username,
            "substitute": substitute.username,
            "starts_at": starts_at.isoformat(),
            "ends_at": ends_at.isoformat(),
        },
    )
    return row


def unit_by_code(session: Session, code: str) -> OrgUnit:
    unit = session.scalars(select(OrgUnit).where(OrgUnit.code == code)).first()
    if unit is None:
        raise NotFound(f"org unit '{code}' not found")
    return unit


@dataclass(frozen=True)
class LoginResult:
    """The outcome of a login attempt: the user when it succeeded; ``locked`` when refused for lockout."""

    user: User | None
    locked: bool = False


def authenticate(
    session: Session,
    username: str,
    password: str,
    *,
    now: datetime,
    max_failures: int = 5,
    lock_minutes: int = 15,
) -> LoginResult:
    """Check a password, counting failures: after ``max_failures`` in a row the account locks for a while.

    A locked account is refused even with the right password until the lock ends. Locks and
    successful logins are audited on the directory stream.
    """
    user = session.scalars(select(User).where(User.username == username)).one_or_none()
    if user is None or not user.active:
        return LoginResult(None)
    if user.locked_until is not None and user.locked_until > now:
        return LoginResult(None, locked=True)
    if check_password(user, password):
        user.failed_logins, user.locked_until = 0, None
        audit.append(session, STREAM, at=now, action="login", actor_name=user.username, actor_id=user.id)
        return LoginResult(user)
    user.failed_logins = (user.failed_logins or 0) + 1
    if user.failed_logins < max_failures:
        return LoginResult(None)
    user.failed_logins, user.locked_until = 0, now + timedelta(minutes=lock_minutes)
    audit.append(
        session,
        STREAM,
        at=now,
        action="lock",
        actor_name="SYSTEM",
        detail={"user": user.username, "until": user.locked_until.isoformat()},
    )
    return LoginResult(None, locked=True)


def token_hash(token: str) -> str:
    """API tokens are stored only as their SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_api_token(session: Session, user: User, *, now: datetime, by: str = "SYSTEM") -> str:
    """A new API token for ``user`` (replacing any earlier one); only its hash is kept, so show it once."""
    token = secrets.token_urlsafe(32)
    user.api_token_hash = token_hash(token)
    audit.append(
        session, STREAM, at=now, action="issue_api_token", actor_name=by, detail={"user": user.username}
    )
    return token


def user_by_token(session: Session, token: str) -> User | None:
    user = session.scalars(select(User).where(User.api_token_hash == token_hash(token))).one_or_none()
    return user if user is not None and user.active else None


def revoke(session: Session, membership: RoleMembership, *, now: datetime, by: str = "SYSTEM") -> None:
    """Take a role away (撤销岗位)."""
    audit.append(
        session,
        STREAM,
        at=now,
        action="revoke",
        actor_name=by,
        org_unit_id=membership.org_unit_id,
        detail={"user_id": membership.user_id, "role": membership.role},
    )
    session.delete(membership)
    session.flush()


def deactivate(session: Session, user: User, *, now: datetime, by: str = "SYSTEM") -> None:
    """Disable a user (停用): they can no longer log in, use a token or act; their history stays."""
    user.active, user.api_token_hash = False, None
    audit.append(session, STREAM, at=now, action="deactivate", actor_name=by, detail={"user": user.username})


def end_substitute(session: Session, row: Substitute, *, now: datetime, by: str = "SYSTEM") -> None:
    """End an acting period (结束代理) now, if it has not ended already."""
    if row.ends_at <= now:
        raise InvalidForm({"ends_at": "代理已结束 (the acting period has already ended)"})
    row.ends_at = max(now, row.starts_at)
    audit.append(
        session,
        STREAM,
        at=now,
        action="end_substitute",
        actor_name=by,
        detail={"user_id": row.user_id, "substitute_id": row.substitute_id},
    )


def end_sessions(session: Session, user: User, *, now: datetime) -> None:
    """Log out everywhere (退出登录): every session issued to ``user`` so far stops working.

    Sessions are signed cookies held by the browser; the epoch they carry is what the
    server can take back, so a cookie copied before logout is refused after it.
    """
    user.session_epoch += 1
    audit.append(session, STREAM, at=now, action="logout", actor_name=user.username, actor_id=user.id)


LOCALES = ("zh", "en")


def set_locale(session: Session, user: User, locale: str) -> None:
    """The user's interface language (zh-CN by default, or English)."""
    if locale not in LOCALES:
        raise InvalidForm({"locale": f"不支持的语言 (unsupported language): {locale}"})
    user.locale = locale
