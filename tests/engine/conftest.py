"""Engine fixtures: the sample workflow's runtime and org tree in a fresh database."""

from __future__ import annotations

import pytest

from engine.deadlines import load_year
from engine.scope import load_actor
from tests.conftest import T0
from tests.engine.sample import build_world, make_runtime


@pytest.fixture
def runtime():
    return make_runtime()


@pytest.fixture
def world(sessions):
    with sessions.begin() as s:
        for year in (2025, 2026):
            load_year(s, year)
        w = build_world(s)
    return w


@pytest.fixture
def actor(sessions, world):
    """``actor("town_a1")``: the Actor of a sample user, loaded in its own session."""

    def load(name, now=T0):
        with sessions() as s:
            return load_actor(s, world.u[name].id, now)

    return load
