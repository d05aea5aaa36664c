"""东西部协作季度统计 (quarterly collaboration report) [GZ 附件2 八: 一季一统计一通报; DOMAIN §10].

drafting → submitted → reviewed → published. Each county reports its cumulative figures
for the year; :func:`progress` compares them with the year's county targets. The calendar
job :func:`workflows.jobs.quarterly_reports` opens each quarter's report, with its due date,
for every county that has not started one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.definitions import Field, State, T, Workflow
from workflows.common import YEAR_FIELD, optional
from workflows.policy import MONEY_UNIT, Policy, Target
from workflows.roles import COUNTY_APPROVER, PREFECTURE_BUREAU

KEY = "quarterly_report"


@dataclass(frozen=True)
class Progress:
    target: Target
    value: int
    met: bool


def figure_fields(p: Policy) -> tuple[Field, ...]:
    """One cumulative figure per collaboration target (money targets in 万元, stored as 分)."""
    return tuple(
        Field(
            t.code,
            f"{t.label}({t.unit})",
            kind="money" if t.unit == MONEY_UNIT else "int",
            required=False,
            min_value=0,
        )
        for t in p.collaboration_targets
    )


def progress(p: Policy, data: Mapping[str, Any], scope: str = "county") -> list[Progress]:
    """Each target of ``scope`` with the reported value and whether it reaches the minimum."""
    return [
        Progress(t, int(data.get(t.code) or 0), int(data.get(t.code) or 0) >= t.minimum)
        for t in p.collaboration_targets
        if t.scope == scope
    ]


def build(p: Policy) -> Workflow:
    figures = figure_fields(p)
    return Workflow(
        key=KEY,
        version=1,
        title="协作帮扶季度统计",
        start_role=COUNTY_APPROVER,
        start_fields=(
            YEAR_FIELD,
            Field("quarter", "季度", kind="choice", choices=("1", "2", "3", "4")),
            Field("due_on", "报送截止日期", kind="date", required=False),
            *figures,
        ),
        description="一季一统计一通报 (GZ 附件2 八)",
        states=(
            State("drafting", "填报", actor=COUNTY_APPROVER, withdrawable=True),
            State("submitted", "已报送", actor=PREFECTURE_BUREAU),
            State("reviewed", "已审核", actor=PREFECTURE_BUREAU),
            State("published", "已通报", final=True),
        ),
        transitions=(
            T("submit", "drafting", "submitted", fields=optional(figures)),
            T("review", "submitted", "reviewed"),
            T("return", "submitted", "drafting", needs_comment=True),
            T("publish", "reviewed", "published", bulk=True),
        ),
        trigger_labels={"submit": "报送", "review": "审核", "return": "退回", "publish": "通报"},
    )
