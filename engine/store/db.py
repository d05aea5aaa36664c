"""Database connections (数据库): one URL, SQLite by default, PostgreSQL at scale.

The schema is made only by Alembic migrations (:func:`migrate`), never by ``create_all``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from engine.errors import Conflict

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str, **kw) -> Engine:
    """An SQLAlchemy engine for ``url`` with the settings the engine relies on."""
    if url.startswith("sqlite"):
        engine = create_engine(url, **kw)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **kw)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (Alembic upgrade)."""
    command.upgrade(alembic_config(url), revision)


def is_postgres(session_or_engine) -> bool:
    bind = session_or_engine.get_bind() if isinstance(session_or_engine, Session) else session_or_engine
    return bind.dialect.name == "postgresql"


def flush_instance(session: Session, instance_id: int) -> None:
    """Flush, turning a lost optimistic-lock race on the instance's ``version_id`` into a Conflict."""
    try:
        session.flush()
    except StaleDataError:
        raise Conflict(
            f"事项已被他人修改，请刷新后重试 (instance {instance_id} was changed by someone else: reload and retry)"
        ) from None
