"""Hypothesis settings for the hostile-input tests: deterministic, no example database, no deadline."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

HOSTILE = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
