"""Helpers shared by the Ganzi workflow definitions: policy lookup, money sums, confirmations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from engine.definitions import Field, Guard, GuardContext
from engine.forms import fen_to_wan
from workflows import policy as policies
from workflows.policy import Policy

FUND_SOURCES: tuple[tuple[str, str], ...] = (
    ("fund_central", "中央衔接资金"),
    ("fund_provincial", "省级衔接资金"),
    ("fund_prefecture", "州级资金"),
    ("fund_county", "县级资金"),
    ("fund_east_west", "东西部协作(浙江援助)资金"),
    ("fund_other", "其他资金"),
)
"""Planned funds by source (计划投入资金, DOMAIN §2.1), each a money field in 分."""

YEAR_FIELD = Field("year", "年度", kind="int", min_value=2000, max_value=2100)
"""Every instance names its policy year; guards read that year's numbers."""


def policy_of(data: Mapping[str, Any]) -> Policy:
    """The policy of the instance's year (``data["year"]``)."""
    return policies.load(int(data["year"]))


def wan(fen: int) -> str:
    """分 → '500万元' for reason texts."""
    return f"{fen_to_wan(fen)}万元"


def total_funds(data: Mapping[str, Any]) -> int:
    """Total planned funds in 分 over every source (DOMAIN §2.1)."""
    return sum(int(data.get(name) or 0) for name, _ in FUND_SOURCES)


def fund_fields() -> tuple[Field, ...]:
    return tuple(
        Field(name, label, kind="money", required=False, min_value=0) for name, label in FUND_SOURCES
    )


def optional(fields: Sequence[Field]) -> tuple[Field, ...]:
    """The same fields, none required: used to revise a returned record (退回修改)."""
    return tuple(replace(f, required=False) for f in fields)


def confirmations(name: str, label: str, items: Sequence[tuple[str, str]]) -> tuple[Field, Guard]:
    """Yes/no fields a reviewer ticks, and a guard that every one is ticked in this submission.

    The guard reads ``ctx.form`` only, so a reviewer confirms each item afresh every time
    (a return and resubmission does not carry old ticks over).
    """
    fields = tuple(Field(code, text, kind="bool", required=False) for code, text in items)

    def check(ctx: GuardContext) -> list[str]:
        return [f"未确认: {text} (not confirmed)" for code, text in items if ctx.form.get(code) is not True]

    return fields, Guard(name, label, check)


def has_text(name: str, label: str, key: str, missing: str) -> Guard:
    """A guard that ``data[key]`` is non-empty text."""
    return Guard(name, label, lambda ctx: [] if str(ctx.data.get(key) or "").strip() else [missing])
