"""The store: migrations make exactly the models' schema; times come back aware UTC; no floats."""

from __future__ import annotations

from datetime import datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Float, Numeric, select
from sqlalchemy.exc import StatementError

from engine.clock import SHANGHAI
from engine.store.db import make_engine
from engine.store.models import Base, Instance
from tests.conftest import T0


def test_migrations_match_the_models(db_url):
    engine = make_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_no_float_columns():
    floats = [
        f"{t.name}.{c.name}"
        for t in Base.metadata.tables.values()
        for c in t.columns
        if isinstance(c.type, Float) or (isinstance(c.type, Numeric) and c.type.asdecimal is False)
    ]
    assert floats == []


def test_naive_datetimes_are_refused_and_aware_ones_read_back_utc(sessions, world):
    unit = world.units["A1v"]
    fields = dict(
        workflow_key="grant",
        workflow_version=1,
        state="draft",
        title="t",
        org_unit_id=unit.id,
        org_path=unit.path,
        data={},
        updated_at=T0,
        entered_at=T0,
    )
    with pytest.raises(StatementError, match="naive datetime refused"), sessions.begin() as s:
        s.add(Instance(created_at=datetime(2025, 1, 1), **fields))
    shanghai_noon = T0.astimezone(SHANGHAI)
    with sessions.begin() as s:
        s.add(Instance(created_at=shanghai_noon, **fields))
    with sessions() as s:
        stored = s.scalars(select(Instance.created_at)).one()
    assert stored == T0 and stored.utcoffset().total_seconds() == 0
