"""The directory: login lockout, API tokens, revocation, deactivation and acting periods, all audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine import audit, directory
from engine.errors import InvalidForm, NotFound
from engine.scope import load_actor
from engine.store.models import AuditEvent, RoleMembership, User
from tests.conftest import T0
from tests.engine.sample import PASSWORD


def _user(s, world, name):
    return s.get(User, world.u[name].id)


def test_lockout_after_repeated_failures_then_unlock(sessions, world):
    for _ in range(4):
        with sessions.begin() as s:
            assert directory.authenticate(s, "town_a1", "wrong", now=T0) == directory.LoginResult(None)
    with sessions.begin() as s:
        assert directory.authenticate(s, "town_a1", "wrong", now=T0).locked
    with sessions.begin() as s:
        refused = directory.authenticate(s, "town_a1", PASSWORD, now=T0 + timedelta(minutes=14))
        assert refused.locked and refused.user is None
    with sessions.begin() as s:
        assert (
            directory.authenticate(s, "town_a1", PASSWORD, now=T0 + timedelta(minutes=16)).user.username
            == "town_a1"
        )
    with sessions() as s:
        actions = s.scalars(select(AuditEvent.action).order_by(AuditEvent.id.desc()).limit(2)).all()
        assert actions == ["login", "lock"]
        assert audit.verify(s) == []


def test_unknown_and_inactive_users_cannot_log_in(sessions, world):
    with sessions.begin() as s:
        assert directory.authenticate(s, "nobody", PASSWORD, now=T0).user is None
        directory.deactivate(s, _user(s, world, "town_a2"), now=T0)
    with sessions.begin() as s:
        assert directory.authenticate(s, "town_a2", PASSWORD, now=T0).user is None
        with pytest.raises(NotFound):
            load_actor(s, world.u["town_a2"].id, T0)


def test_api_token_shown_once_stored_hashed(sessions, world):
    with sessions.begin() as s:
        token = directory.issue_api_token(s, _user(s, world, "county_a"), now=T0)
    with sessions() as s:
        assert _user(s, world, "county_a").api_token_hash == directory.token_hash(token) != token
        assert directory.user_by_token(s, token).username == "county_a"
        assert directory.user_by_token(s, token + "x") is None
    with sessions.begin() as s:
        directory.deactivate(s, _user(s, world, "county_a"), now=T0)
    with sessions() as s:
        assert directory.user_by_token(s, token) is None


def test_revoke_takes_the_role_away(sessions, world):
    with sessions.begin() as s:
        membership = s.scalars(
            select(RoleMembership).where(RoleMembership.user_id == world.u["town_a1"].id)
        ).one()
        directory.revoke(s, membership, now=T0)
    with sessions() as s:
        assert load_actor(s, world.u["town_a1"].id, T0).memberships == ()
        assert s.scalars(select(AuditEvent.action).order_by(AuditEvent.id.desc())).first() == "revoke"


def test_end_substitute_now(sessions, world):
    with sessions.begin() as s:
        row = directory.name_substitute(
            s,
            _user(s, world, "town_a1"),
            _user(s, world, "town_a1_b"),
            starts_at=T0,
            ends_at=T0 + timedelta(days=5),
            now=T0,
        )
    with sessions.begin() as s:
        row = s.merge(row)
        directory.end_substitute(s, row, now=T0 + timedelta(days=1))
    with sessions() as s:
        deputy = load_actor(s, world.u["town_a1_b"].id, T0 + timedelta(days=2))
        assert all(m.principal_id is None for m in deputy.memberships)
    with sessions.begin() as s, pytest.raises(InvalidForm, match="already ended"):
        directory.end_substitute(s, s.merge(row), now=T0 + timedelta(days=2))


def test_locale_is_zh_or_en(sessions, world):
    with sessions.begin() as s:
        directory.set_locale(s, _user(s, world, "town_a1"), "en")
        with pytest.raises(InvalidForm, match="locale"):
            directory.set_locale(s, _user(s, world, "town_a1"), "fr")
    with sessions() as s:
        assert _user(s, world, "town_a1").locale == "en"
