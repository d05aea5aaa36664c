"""The Ganzi workflows as data (甘孜州衔接资金项目流程).

``build_registry()`` registers every role and workflow, validated as it is registered;
``build_runtime()`` wraps it in the engine's :class:`~engine.runtime.Runtime`. Sub-flows
are registered before the flows that call them (validation checks subflow keys).
The registry built at import, :data:`REGISTRY`, makes a malformed definition fail at import.
"""

from __future__ import annotations

from engine.machine import Registry
from engine.runtime import Runtime
from workflows import (
    asset_disposal,
    four_deliberations,
    plan_filing,
    policy,
    project_delivery,
    project_library,
    quarterly_report,
    rectification_item,
    site_inspection,
    spending_supervision,
)
from workflows.roles import ROLES

FLOWS = (
    project_library,
    plan_filing,
    rectification_item,
    project_delivery,
    four_deliberations,
    asset_disposal,
    quarterly_report,
    spending_supervision,
    site_inspection,
)
"""Workflow modules in registration order (sub-flows first)."""


def build_registry(year: int | None = None) -> Registry:
    """Every Ganzi role and workflow, built with the timers of ``year``'s policy (default: the latest)."""
    p = policy.load(year) if year is not None else policy.latest()
    registry = Registry(ROLES)
    for module in FLOWS:
        registry.register(module.build(p))
    return registry


def build_runtime(year: int | None = None) -> Runtime:
    return Runtime(build_registry(year))


REGISTRY = build_registry()
