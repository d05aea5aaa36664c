"""The request's database session, the runtime and the clock (one transaction per request).

``session()`` is the request's session; reads autobegin on it. A view that changes
anything does all its work inside ``with transaction() as s:`` and calls the engine there;
the engine never commits, the block does, once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from importlib import import_module

from flask import Flask, current_app, g
from flask_login import current_user
from sqlalchemy.orm import Session

from engine.runtime import Runtime
from engine.scope import Actor, load_actor
from engine.store.db import make_engine, session_factory

EXTENSION = "shuangti"


def load_factory(dotted: str):
    """``"package.module:attr"`` → the attribute."""
    module, _, attr = dotted.partition(":")
    return getattr(import_module(module), attr)


def init_app(app: Flask) -> None:
    engine = make_engine(app.config["SHUANGTI_DB"])
    runtime = load_factory(app.config["RUNTIME_FACTORY"])()
    app.extensions[EXTENSION] = {"engine": engine, "sessions": session_factory(engine), "runtime": runtime}
    app.teardown_appcontext(_close)


def _close(_exc: BaseException | None) -> None:
    s = g.pop("db_session", None)
    if s is not None:
        s.close()


def sessions():
    return current_app.extensions[EXTENSION]["sessions"]


def runtime() -> Runtime:
    return current_app.extensions[EXTENSION]["runtime"]


def session() -> Session:
    if "db_session" not in g:
        g.db_session = sessions()()
    return g.db_session


@contextmanager
def transaction() -> Iterator[Session]:
    """The request's one write transaction: commits at the end of the block, rolls back on error."""
    s = session()
    if s.in_transaction():
        raise RuntimeError("transaction() must wrap all of a request's database work")
    with s.begin():
        yield s


def now() -> datetime:
    return current_app.config["CLOCK"]()


def user_id() -> int:
    """The requesting user: the API token's holder, else the logged-in session's user."""
    return g.get("api_user_id") or current_user.id


def actor(s: Session | None = None) -> Actor:
    """The requesting user as the engine's Actor (with borrowed memberships of those they stand in for)."""
    return load_actor(s or session(), user_id(), now())
