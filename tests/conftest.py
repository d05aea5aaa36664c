"""Shared fixtures: a fresh, migrated database per test, on SQLite and on PostgreSQL.

Each test run migrates one template database per backend (Alembic, like production);
each test gets its own copy: a file copy on SQLite, ``CREATE DATABASE … TEMPLATE`` on
PostgreSQL. Runs never collide: the PostgreSQL names carry the process id and a random
suffix. With ``CI=true`` PostgreSQL is mandatory; locally its tests skip, saying why.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy.orm import Session, sessionmaker

from engine.store.db import make_engine, migrate, session_factory

PG_ADMIN = os.environ.get("SHUANGTI_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
RUN_ID = f"{os.getpid()}_{secrets.token_hex(3)}"
BACKENDS = ("sqlite", "postgresql")
T0 = datetime(2025, 5, 6, 1, 0, tzinfo=UTC)


def _sqla(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def _pg_url(dbname: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + dbname


def _pg_admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("tpl") / "template.db"
    migrate(f"sqlite:///{path}")
    return str(path)


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            pass
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires PostgreSQL at {PG_ADMIN}: {exc}")
        pytest.skip(
            f"PostgreSQL not reachable at {PG_ADMIN} ({exc.__class__.__name__}); its tests are skipped"
        )
    name = f"shuangti_tpl_{RUN_ID}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    migrate(_sqla(_pg_url(name)))
    yield name
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fresh_url(request, backend: str, tmp_path) -> Iterator[str]:
    if backend == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "test.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    template = request.getfixturevalue("pg_template")
    name = f"shuangti_t_{RUN_ID}_{secrets.token_hex(4)}"
    _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield _sqla(_pg_url(name))
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> Iterator[str]:
    """A fresh migrated database URL, once on SQLite and once on PostgreSQL."""
    yield from _fresh_url(request, request.param, tmp_path)


@pytest.fixture
def pg_url(request, tmp_path) -> Iterator[str]:
    """A fresh migrated PostgreSQL database URL (for PostgreSQL-only behaviour)."""
    yield from _fresh_url(request, "postgresql", tmp_path)


@pytest.fixture
def sessions(db_url) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def session(sessions) -> Iterator[Session]:
    with sessions() as s:
        yield s
