"""The bench smoke tests: each section's code path on tiny sizes, well-formed results, never timings."""

from __future__ import annotations

import os

import pytest

from bench.common import BACKENDS, PG_ADMIN, pg_reachable


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    if request.param == "postgresql" and not pg_reachable():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires PostgreSQL at {PG_ADMIN}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN}")
    return request.param
