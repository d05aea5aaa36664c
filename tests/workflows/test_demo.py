"""The demo seed runs on both databases and gives a world worth clicking through."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from engine.directory import check_password
from engine.store.models import Instance, OrgUnit, Task, User
from workflows import REGISTRY
from workflows.demo import PASSWORD, PEOPLE, seed

NOW = datetime(2025, 9, 15, 2, 0, tzinfo=UTC)


def test_seed(sessions, runtime):
    with sessions.begin() as s:
        seed(s, NOW, runtime)
    with sessions() as s:
        counties = s.scalars(select(OrgUnit.name).where(OrgUnit.kind == "county")).all()
        assert len(counties) == 18 and {"康定市", "得荣县", "石渠县"} <= set(counties)
        states = set(s.scalars(select(Instance.state).where(Instance.workflow_key == "project_library")))
        assert states == {st.name for st in REGISTRY.get("project_library").workflow.states}
        keys = set(s.scalars(select(Instance.workflow_key)))
        assert {"project_delivery", "asset_disposal", "four_deliberations"} <= keys
        overdue = s.scalar(
            select(func.count()).select_from(Task).where(Task.status == "open", Task.due_at < NOW)
        )
        assert overdue > 0
        assert s.scalar(select(func.count()).select_from(User)) == len(PEOPLE)
        admin = s.scalars(select(User).where(User.username == "admin")).one()
        assert check_password(admin, PASSWORD)
