"""One Ganzi world per backend for the access tests: two counties, a role per sight, three projects.

泸定县 (township 泸桥镇 and 冷碛镇) and 康定市 (姑咱镇), the demo users, plus a 康定 applicant and
county officer, a county administrator of 泸定, and spare users that administrators act on. Each
project waits at its township's review with an attachment from its submission.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine import directory
from engine.scope import Actor, load_actor
from engine.store.db import make_engine, session_factory
from engine.store.models import (
    AuditEvent,
    Instance,
    Notification,
    RoleMembership,
    Substitute,
    Task,
    User,
)
from tests.conftest import BACKENDS, T0, _fresh_url
from tests.web.conftest import Browser
from tests.workflows.conftest import TEST_COUNTIES
from web import create_app
from workflows import demo

PASSWORD = demo.PASSWORD
ROLES = {
    "anonymous": None,
    "village": "applicant",
    "township": "township",
    "other_township": "township_other",
    "county": "county_approver",
    "auditor": "auditor",
    "other_county": "kd_county",
    "prefecture": "pref_bureau",
    "county_admin": "admin_ld",
    "admin": "admin",
}
"""Matrix role → the user who plays it (each a different sight or right)."""
ADMINS = ("county_admin", "admin")
PROJECTS = {
    "LQ": (demo.DEMO_VILLAGE, "applicant", "泸桥镇访问矩阵项目"),
    "LC": (demo.OTHER_VILLAGE, "applicant_other", "冷碛镇访问矩阵项目"),
    "KD": ("51330101001", "kd_applicant", "姑咱镇访问矩阵项目"),
}
"""Project key → (village code, starter, unique title)."""
EXTRA_PEOPLE = (
    ("kd_applicant", "新华村两委", "village_applicant", "51330101001"),
    ("kd_county", "康定市农牧农村局", "county_approver", "513301-agriculture"),
    ("admin_ld", "泸定县系统管理员", "admin", "513322"),
    ("spare_ld_a", "泸定备用甲", "township_reviewer", "51332202"),
    ("spare_ld_b", "泸定备用乙", "township_reviewer", "51332202"),
    ("spare_ld_a", "泸定备用甲", "expert", "51332202"),
    ("spare_ld_b", "泸定备用乙", "expert", "51332202"),
    ("spare_kd", "康定备用", "township_reviewer", "51330101"),
    ("spare_kd", "康定备用", "expert", "51330101"),
)
"""(username, display name, role, unit code); spare users hold two roles so one can be revoked."""


@dataclass
class World:
    """The app on one backend and the ids the matrix needs."""

    app: object
    sessions: sessionmaker[Session]
    users: dict[str, int] = field(default_factory=dict)
    units: dict[str, int] = field(default_factory=dict)
    instances: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)
    attachments: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    memberships: dict[str, int] = field(default_factory=dict)
    substitutes: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)
    cache: dict[str, object] = field(default_factory=dict)


def browser(world: World, role: str | None) -> Browser:
    """A client logged in as the user playing ``role`` (``"anonymous"`` or None: not logged in)."""
    b = Browser(world.app.test_client(), password=PASSWORD)
    if ROLES.get(role) is not None:
        assert b.login(ROLES[role]).status_code == 302, role
    return b


def _seed(s: Session) -> tuple[demo.World, dict[str, int]]:
    world = demo.build_world(s, T0, TEST_COUNTIES)
    hashed = directory.hash_password(PASSWORD)
    users = {name: u for name, u in world.users.items()}
    memberships = {}
    for username, display, role, code in EXTRA_PEOPLE:
        if username not in users:
            users[username] = directory.add_user(
                s, username=username, display_name=display, password_hash=hashed, now=T0
            )
        memberships[f"{username}:{role}"] = directory.grant(
            s, users[username], role, world.units[code], now=T0
        )
    for principal, stand_in in (
        ("spare_ld_a", "spare_ld_b"),
        ("spare_ld_b", "spare_ld_a"),
        ("spare_kd", "spare_ld_b"),
    ):
        directory.name_substitute(
            s, users[principal], users[stand_in], starts_at=T0, ends_at=T0 + timedelta(days=30), now=T0
        )
    s.flush()
    world.users.update(users)
    return world, {k: m.id for k, m in memberships.items()}


def _submit_with_attachment(app, inst_id: int, starter: str, title: str) -> None:
    b = Browser(app.test_client(), password=PASSWORD)
    assert b.login(starter).status_code == 302
    page = b.client.get(f"/instances/{inst_id}").get_data(as_text=True)
    version = re.search(r'name="expected_version" value="(\d+)"', page).group(1)
    r = b.post(
        f"/instances/{inst_id}/fire",
        {
            "trigger": "submit",
            "expected_version": version,
            "attachments": (io.BytesIO(title.encode()), "a.txt"),
        },
        content_type="multipart/form-data",
    )
    assert r.status_code == 302, r.get_data(as_text=True)[:500]


def build(request, backend: str, tmp) -> tuple[World, object]:
    """Seed a fresh database of ``backend`` and build the app; returns the world and the URL generator."""
    urls = _fresh_url(request, backend, tmp)
    url = next(urls)
    sessions = session_factory(make_engine(url))
    runtime = demo.build_runtime()
    with sessions.begin() as s:
        seeded, memberships = _seed(s)
        ids = {name: u.id for name, u in seeded.users.items()}
        units = {code: u.id for code, u in seeded.units.items()}
        instances = {}
        for key, (village, starter, title) in PROJECTS.items():
            form = demo.project_form(title, "产业发展", "120")
            inst = runtime.start(
                s,
                "project_library",
                load_actor(s, ids[starter], T0),
                org_unit_id=units[village],
                form=form,
                now=T0,
            )
            instances[key] = inst.id
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SHUANGTI_DB": url,
            "CLOCK": lambda: T0 + timedelta(hours=2),
            "UPLOAD_DIR": str(tmp / "attachments"),
        }
    )
    world = World(app, sessions, ids, units, instances, memberships=memberships)
    for key, (_village, starter, title) in PROJECTS.items():
        _submit_with_attachment(app, instances[key], starter, title)
    with sessions.begin() as s:
        for iid in instances.values():
            runtime.fire(s, iid, "notice_ended", Actor.system(), now=T0 + timedelta(hours=1))
        for key, iid in instances.items():
            world.tasks[key] = s.scalars(
                select(Task.id).where(Task.instance_id == iid, Task.status == "open")
            ).one()
            detail = s.scalars(
                select(AuditEvent.detail).where(AuditEvent.instance_id == iid, AuditEvent.trigger == "submit")
            ).one()
            world.attachments[key] = detail["attachments"][0]["sha256"]
        for role, username in ROLES.items():
            if username is not None:
                world.tokens[role] = directory.issue_api_token(s, s.get(User, ids[username]), now=T0)
        world.substitutes = {
            s.get(User, sub.user_id).username: sub.id for sub in s.scalars(select(Substitute)).all()
        }
        for username in ("township", "township_other"):
            world.notes[username] = s.scalars(
                select(Notification.id).where(
                    Notification.user_id == ids[username], Notification.channel == "inapp"
                )
            ).first()
    return world, urls


@pytest.fixture(scope="module", params=BACKENDS)
def world(request, tmp_path_factory):
    """The seeded world on SQLite, then on PostgreSQL (one per module)."""
    built, urls = build(request, request.param, tmp_path_factory.mktemp(f"access-{request.param}"))
    yield built
    built.app.extensions["shuangti"]["engine"].dispose()
    built.sessions.kw["bind"].dispose()
    urls.close()


def fingerprint(sessions: sessionmaker[Session]) -> dict:
    """What an action could change: counts of audit events, tasks, notifications, and each row's state."""
    with sessions() as s:
        return {
            "audit_events": s.scalar(select(func.count()).select_from(AuditEvent)),
            "notifications": sorted(s.execute(select(Notification.id, Notification.read_at)).tuples()),
            "instances": sorted(s.execute(select(Instance.id, Instance.state, Instance.version_id)).tuples()),
            "tasks": sorted(
                s.execute(select(Task.id, Task.status, Task.assignee_id, Task.urge_count)).tuples()
            ),
            "users": sorted(s.execute(select(User.id, User.active, User.api_token_hash)).tuples()),
            "memberships": s.scalar(select(func.count()).select_from(RoleMembership)),
            "substitutes": sorted(s.execute(select(Substitute.id, Substitute.ends_at)).tuples()),
        }
