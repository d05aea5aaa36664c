"""Who is acting, and where they may see and act (组织权限范围).

A role held at an org unit reaches that unit and every unit below it. A department's
holders see the whole of the unit the department belongs to (a county department sees
its county) but act only on tasks offered at their department. Acting officers (代理)
borrow their principal's memberships for a date range; the audit then says "A on
behalf of B". Deny by default: no membership, no access.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, and_, bindparam, false, literal_column, or_, select, union_all
from sqlalchemy.orm import Session, selectinload

from engine.errors import NotFound, NotPossible
from engine.store.models import OrgUnit, RoleMembership, Substitute, User

DEPARTMENT = "department"


@dataclass(frozen=True)
class Membership:
    """One role at one unit, as held by the actor (or borrowed from ``principal``)."""

    role: str
    org_unit_id: int
    org_path: str
    scope_path: str
    principal_id: int | None = None
    principal_name: str | None = None


@dataclass(frozen=True)
class Actor:
    """The person (or the SYSTEM) on whose authority the engine acts."""

    user_id: int | None
    name: str
    memberships: tuple[Membership, ...] = field(default=())
    is_system: bool = False

    @classmethod
    def system(cls) -> Actor:
        return cls(user_id=None, name="SYSTEM", is_system=True)

    def sees(self, org_path: str) -> bool:
        return self.is_system or any(org_path.startswith(m.scope_path) for m in self.memberships)

    def holding(self, role: str, task_path: str) -> Membership | None:
        """The membership by which this actor may work a task of ``role`` at ``task_path``."""
        own = [m for m in self.memberships if m.role == role and task_path.startswith(m.org_path)]
        own.sort(key=lambda m: (m.principal_id is not None, -len(m.org_path)))
        return own[0] if own else None

    def overseeing(self, role: str, org_path: str) -> Membership | None:
        """The membership by which this actor holds ``role`` over an instance at ``org_path``.

        Unlike :meth:`holding`, a department's role reaches the whole unit it belongs to
        (a county department oversees its county's instances).
        """
        found = [m for m in self.memberships if m.role == role and org_path.startswith(m.scope_path)]
        found.sort(key=lambda m: (m.principal_id is not None, -len(m.scope_path)))
        return found[0] if found else None

    def scope_filter(self, column) -> ColumnElement[bool]:
        """SQL: ``column`` (an org path) lies within this actor's sight."""
        if self.is_system:
            return column.is_not(None)
        paths = sorted({m.scope_path for m in self.memberships})
        if not paths:
            return false()
        return or_(*(within(column, p) for p in paths))


def within(column, path: str) -> ColumnElement[bool]:
    """SQL: the org path in ``column`` is ``path`` or lies below it.

    Written as a range, ``path <= column < path[:-1] + "0"`` (``"0"`` is the character after
    ``"/"``), so that a B-tree index on the column serves it on both databases; org paths use
    byte order (COLLATE "C" on PostgreSQL, SQLite's BINARY), which makes the range exactly the prefix.
    """
    return and_(column >= path, column < path_end(path))


def path_end(path: str) -> str:
    """The first org path after ``path`` and every path below it: ``/1/4/`` → ``/1/40``."""
    if not path.endswith("/"):
        raise ValueError(f"org path must end with '/': {path!r}")
    return path[:-1] + "0"


def scope_path(unit: OrgUnit) -> str:
    """How far a role at ``unit`` sees: a department sees its parent unit's subtree."""
    if unit.kind == DEPARTMENT and unit.parent is not None:
        return unit.parent.path
    return unit.path


def _memberships(rows: Iterable[RoleMembership], principal: User | None = None) -> list[Membership]:
    return [
        Membership(
            role=m.role,
            org_unit_id=m.org_unit_id,
            org_path=m.org_unit.path,
            scope_path=scope_path(m.org_unit),
            principal_id=principal.id if principal else None,
            principal_name=principal.display_name if principal else None,
        )
        for m in rows
    ]


def load_actor(session: Session, user_id: int, now: datetime) -> Actor:
    """The actor for ``user_id`` at ``now``, with the memberships of those they stand in for."""
    user = session.get(
        User, user_id, options=[selectinload(User.memberships).selectinload(RoleMembership.org_unit)]
    )
    if user is None or not user.active:
        raise NotFound(f"user {user_id} not found or inactive")
    memberships = _memberships(user.memberships)
    standing_in = session.scalars(
        select(Substitute).where(
            Substitute.substitute_id == user_id, Substitute.starts_at <= now, Substitute.ends_at > now
        )
    ).all()
    for s in standing_in:
        principal = session.get(User, s.user_id)
        if principal is not None and principal.active:
            memberships += _memberships(principal.memberships, principal)
    return Actor(user_id=user.id, name=user.display_name, memberships=tuple(memberships))


_ON_PATH = select(OrgUnit).where(
    OrgUnit.id.in_(bindparam("ids", expanding=True)), OrgUnit.kind == bindparam("kind")
)


def ancestor_at(session: Session, unit: OrgUnit, kind: str) -> OrgUnit:
    """The unit itself or its nearest ancestor of ``kind``."""
    if unit.kind == kind:
        return unit
    found = session.scalars(_ON_PATH, {"ids": unit.ids_on_path, "kind": kind}).all()
    if not found:
        raise NotPossible(f"{unit.name}没有上级{kind}单位 ('{unit.code}' has no {kind} above it)")
    return max(found, key=lambda u: len(u.path))


def department_under(session: Session, anchor: OrgUnit, dept: str) -> OrgUnit:
    """The department ``dept`` (e.g. 财政) that belongs to ``anchor`` (e.g. a county)."""
    unit = session.scalars(
        select(OrgUnit).where(
            OrgUnit.parent_id == anchor.id, OrgUnit.kind == DEPARTMENT, OrgUnit.dept == dept
        )
    ).first()
    if unit is None:
        raise NotPossible(f"{anchor.name}没有{dept}部门 ('{anchor.code}' has no department '{dept}')")
    return unit


_MEMBERS = select(RoleMembership.user_id).where(
    RoleMembership.role == bindparam("role"), RoleMembership.org_unit_id == bindparam("unit_id")
)
_HOLDERS = union_all(
    select(literal_column("0").label("k"), RoleMembership.id, RoleMembership.user_id).where(
        RoleMembership.role == bindparam("role"), RoleMembership.org_unit_id == bindparam("unit_id")
    ),
    select(literal_column("1"), Substitute.id, Substitute.substitute_id).where(
        Substitute.user_id.in_(_MEMBERS.scalar_subquery()),
        Substitute.starts_at <= bindparam("now", type_=Substitute.starts_at.type),
        Substitute.ends_at > bindparam("now", type_=Substitute.ends_at.type),
    ),
).order_by(literal_column("k"), literal_column("id"))
"""The holders of a role at a unit, then their stand-ins, in one statement built once."""


def holders(session: Session, role: str, unit: OrgUnit, now: datetime) -> list[int]:
    """Users holding ``role`` exactly at ``unit``, and whoever stands in for them at ``now`` (代理).

    They are the ones notified of the unit's tasks.
    """
    rows = session.execute(_HOLDERS, {"role": role, "unit_id": unit.id, "now": now})
    return list(dict.fromkeys(uid for _, _, uid in rows))


def unit_codes(session: Session, inst) -> dict[str, str]:
    """The codes of an instance's org unit and the units above it, by kind (``{"county": "513322", …}``)."""
    rows = session.execute(
        select(OrgUnit.kind, OrgUnit.code).where(OrgUnit.id.in_(inst.org_unit.ids_on_path))
    )
    return dict(rows.all())
