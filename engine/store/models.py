"""The durable store (数据存储): typed SQLAlchemy 2 models.

Money is integer 分 (fen) inside ``data``; times are timezone-aware UTC. Org scope is
a materialised path (``/1/4/17/``) so that "this unit and everything below it" is one
indexed prefix match.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from engine.clock import UTC

# BigInteger ids that are plain INTEGER on SQLite, where only INTEGER PRIMARY KEY autoincrements.
Id = BigInteger().with_variant(Integer(), "sqlite")
# Org paths compare byte by byte (COLLATE "C" on PostgreSQL; SQLite's default is already BINARY),
# so that "this unit and below" is an index range: see engine.scope.within.
OrgPath = String(255).with_variant(String(255, collation="C"), "postgresql")


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: pass an aware UTC time")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class OrgUnit(Base):
    """An org unit (组织单位): province, prefecture, county, township, village or department."""

    __tablename__ = "org_unit"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    dept: Mapped[str | None] = mapped_column(String(64))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("org_unit.id"))
    path: Mapped[str] = mapped_column(OrgPath, index=True)
    parent: Mapped[OrgUnit | None] = relationship(remote_side="OrgUnit.id")

    @property
    def ids_on_path(self) -> list[int]:
        return [int(p) for p in self.path.strip("/").split("/")]


class User(Base):
    """A person who logs in (用户). Passwords are stored only as salted hashes."""

    __tablename__ = "user_account"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    email: Mapped[str | None] = mapped_column(String(255))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    api_token_hash: Mapped[str | None] = mapped_column(String(128), unique=True)
    locale: Mapped[str] = mapped_column(String(8), default="zh")
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Raised at logout (会话失效): a session cookie carries the epoch it was issued in, and an older one is refused."""
    memberships: Mapped[list[RoleMembership]] = relationship(
        back_populates="user", cascade="all, delete-orphan", foreign_keys="RoleMembership.user_id"
    )


class RoleMembership(Base):
    """A role held at an org unit (岗位): it reaches that unit and every unit below it."""

    __tablename__ = "role_membership"
    __table_args__ = (UniqueConstraint("user_id", "role", "org_unit_id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    role: Mapped[str] = mapped_column(String(64))
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"), index=True)
    user: Mapped[User] = relationship(back_populates="memberships", foreign_keys=[user_id])
    org_unit: Mapped[OrgUnit] = relationship()


class Substitute(Base):
    """An acting officer (代理人): ``substitute_id`` acts for ``user_id`` between two times."""

    __tablename__ = "substitute"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    substitute_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]


ACTIVE, SUSPENDED, COMPLETED = "active", "suspended", "completed"
"""An instance's status: running, suspended (挂起: no actions, clocks paused) or ended."""


class Instance(Base):
    """A running (or ended) workflow instance (流程实例) with its subject data."""

    __tablename__ = "workflow_instance"
    __table_args__ = (
        Index("ix_instance_scope", "org_path", "workflow_key", "state"),
        Index("ix_instance_parent", "parent_id"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    workflow_key: Mapped[str] = mapped_column(String(64))
    workflow_version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="active")
    title: Mapped[str] = mapped_column(String(255))
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"))
    org_path: Mapped[str] = mapped_column(OrgPath)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("workflow_instance.id"))
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    suspended_at: Mapped[datetime | None]
    entered_at: Mapped[datetime]
    returned_from: Mapped[str | None] = mapped_column(String(64))
    previous_state: Mapped[str | None] = mapped_column(String(64))
    previous_actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    version_id: Mapped[int] = mapped_column(Integer, nullable=False)
    org_unit: Mapped[OrgUnit] = relationship()

    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": version_id}


class Task(Base):
    """A work item (待办) offered to a role at an org unit, optionally claimed by one person."""

    __tablename__ = "task"
    __table_args__ = (
        Index(
            "ix_task_open",
            "role",
            "org_path",
            "due_at",
            "id",
            postgresql_include=["instance_id"],
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
        Index("ix_task_instance", "instance_id", "status"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("workflow_instance.id"))
    state: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="step")
    party: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(64))
    org_unit_id: Mapped[int] = mapped_column(ForeignKey("org_unit.id"))
    org_path: Mapped[str] = mapped_column(OrgPath)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"), index=True)
    delegated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    status: Mapped[str] = mapped_column(String(16), default="open")
    outcome: Mapped[str | None] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(Text)
    urge_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    due_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    instance: Mapped[Instance] = relationship()
    org_unit: Mapped[OrgUnit] = relationship()
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])


class DeadlineRow(Base):
    """A durable clock (时限): a reminder, a breach or a timer expiry, due at ``due_at``.

    Started and stopped only by the runtime inside the state-change transaction; fired
    exactly once by the scheduler, which claims the row in the transaction that acts on it.
    """

    __tablename__ = "deadline"
    __table_args__ = (Index("ix_deadline_due", "status", "due_at"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("workflow_instance.id"), index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("task.id"))
    state: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="pending")
    trigger: Mapped[str | None] = mapped_column(String(64))
    escalate_to: Mapped[str | None] = mapped_column(String(64))
    days_before: Mapped[int | None] = mapped_column(Integer)
    remaining_seconds: Mapped[int | None] = mapped_column(BigInteger)
    fired_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)


class AuditStream(Base):
    """The head of one hash chain (审计链): one per instance, plus named system streams."""

    __tablename__ = "audit_stream"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)
    length: Mapped[int] = mapped_column(Integer, default=0)
    head_hash: Mapped[str] = mapped_column(String(64))


class AuditEvent(Base):
    """One append-only audit event (审计记录), SHA-256 chained to the one before it."""

    __tablename__ = "audit_event"
    __table_args__ = (UniqueConstraint("stream_id", "seq"), Index("ix_audit_instance", "instance_id"))
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("audit_stream.id"))
    seq: Mapped[int] = mapped_column(Integer)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("workflow_instance.id"))
    at: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(64))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    actor_name: Mapped[str] = mapped_column(String(128))
    on_behalf_of_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    on_behalf_of_name: Mapped[str | None] = mapped_column(String(128))
    role: Mapped[str | None] = mapped_column(String(64))
    org_unit_id: Mapped[int | None] = mapped_column(ForeignKey("org_unit.id"))
    trigger: Mapped[str | None] = mapped_column(String(64))
    from_state: Mapped[str | None] = mapped_column(String(64))
    to_state: Mapped[str | None] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class Notification(Base):
    """An outbox row (通知): written in the transaction, delivered after commit, never twice."""

    __tablename__ = "notification"
    __table_args__ = (Index("ix_notification_pending", "channel", "sent_at"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), default="inapp")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"), index=True)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("workflow_instance.id"))
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text, default="")
    dedupe_key: Mapped[str | None] = mapped_column(String(191), unique=True)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class CalendarDay(Base):
    """An exception to the Monday–Friday week (节假日/调休): a holiday or a make-up working day."""

    __tablename__ = "calendar_day"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    is_working: Mapped[bool] = mapped_column(Boolean)
    name: Mapped[str] = mapped_column(String(64))


class CalendarYear(Base):
    """A year whose State Council holiday schedule is loaded; a deadline needing another year refuses."""

    __tablename__ = "calendar_year"
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(128))
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
