"""年度项目实施计划备案审查 (annual plan filing review) [GZ 一(一)1; DOMAIN §3].

drafting → filed → under_review → accepted | issues_listed → rectifying → refiled →
under_review. The county files at its 农牧农村 department unit; the 州农牧农村局 opens the
concentrated review (or the calendar job does, on ``filing.review_opens``), third-party
experts review, and either accept or list the issues with the date by which the county
must refile. The review falls due on ``filing.review_by`` (10月底前) each year. Each problem
of the 审查问题清单 is also its own ``rectification_item`` with its own deadline.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_DOWN, Decimal
from typing import Any

from engine.definitions import SYSTEM, Deadline, Field, Guard, GuardContext, State, T, Workflow
from workflows.common import YEAR_FIELD, confirmations, optional, policy_of
from workflows.policy import Policy
from workflows.roles import COUNTY_APPROVER, EXPERT, PREFECTURE_BUREAU

KEY = "plan_filing"

FILING_FIELDS = (
    Field("plan_summary", "年度项目实施计划摘要", max_length=4000),
    Field("central_total", "中央衔接资金总额", kind="money", min_value=0),
    Field("central_work_relief", "其中以工代赈任务资金(中央)", kind="money", min_value=0),
    Field("central_industry", "其中产业发展(中央)", kind="money", min_value=0),
    Field("provincial_total", "省级衔接资金总额", kind="money", min_value=0),
    Field("provincial_work_relief", "其中以工代赈任务资金(省级)", kind="money", min_value=0),
    Field("provincial_industry", "其中产业发展(省级)", kind="money", min_value=0),
)


def industry_share_reasons(data: Mapping[str, Any]) -> list[str]:
    """GZ 一(一)2; SC 川财农〔2024〕94号: 产业发展 ≥ central/provincial share, 以工代赈 excluded from the base."""
    p = policy_of(data)
    reasons = []
    for level, label, minimum in (
        ("central", "中央", p.industry_share_central),
        ("provincial", "省级", p.industry_share_provincial),
    ):
        base = int(data.get(f"{level}_total") or 0) - int(data.get(f"{level}_work_relief") or 0)
        industry = int(data.get(f"{level}_industry") or 0)
        if base > 0 and Decimal(industry) * 100 < minimum * base:
            share = (Decimal(industry) * 100 / base).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
            reasons.append(f"{label}资金用于产业发展占{share}%, 低于{minimum}% (industry share too low)")
    return reasons


INDUSTRY_SHARE = Guard("industry_share", "产业发展资金占比", lambda ctx: industry_share_reasons(ctx.data))
REVIEW_FIELDS, REVIEW_CHECKS = confirmations(
    "filing_checks",
    "备案审查要点",
    (
        ("within_fund_uses", "符合衔接资金使用范围"),
        ("all_assessed", "均已开展评估论证"),
        ("all_benefit_linked", "均已建立利益联结机制"),
        ("no_negative_list", "无负面清单项目"),
    ),
)
"""GZ 一(一)1: 不符合使用范围、未开展评估论证、未建立利益联结机制; 负面清单 (GZ 一(一)2)."""


def _consistent(ctx: GuardContext) -> list[str]:
    reasons = []
    for level, label in (("central", "中央"), ("provincial", "省级")):
        total = int(ctx.data.get(f"{level}_total") or 0)
        parts = int(ctx.data.get(f"{level}_work_relief") or 0) + int(ctx.data.get(f"{level}_industry") or 0)
        if parts > total:
            reasons.append(f"{label}资金分项之和超过总额 (parts exceed the total)")
    return reasons


CONSISTENT = Guard("filing_consistent", "资金数据一致", _consistent)


def build(p: Policy) -> Workflow:
    review_by = (p.filing_review_by.month, p.filing_review_by.day)
    return Workflow(
        key=KEY,
        version=1,
        title="年度计划备案审查",
        start_role=COUNTY_APPROVER,
        start_fields=(YEAR_FIELD, *FILING_FIELDS),
        description="县(市)备案, 州级集中审查, 形成审查问题清单, 限期整改、重新备案 (GZ 一(一)1)",
        states=(
            State("drafting", "编制计划", actor=COUNTY_APPROVER, withdrawable=True),
            State(
                "filed", "已备案", actor=PREFECTURE_BUREAU, deadline=Deadline(annual=review_by, remind=(7,))
            ),
            State(
                "under_review",
                "集中审查",
                actor=EXPERT,
                checklist=(INDUSTRY_SHARE, REVIEW_CHECKS),
                deadline=Deadline(annual=review_by, remind=(7, 1), escalate_to=PREFECTURE_BUREAU),
            ),
            State("issues_listed", "审查问题清单", actor=COUNTY_APPROVER),
            State(
                "rectifying",
                "限期整改",
                actor=COUNTY_APPROVER,
                deadline=Deadline(field="rectify_by", remind=(7, 1), escalate_to=PREFECTURE_BUREAU),
            ),
            State("refiled", "重新备案", actor=PREFECTURE_BUREAU),
            State("accepted", "审查通过", final=True),
        ),
        transitions=(
            T("file", "drafting", "filed", guard=CONSISTENT, fields=optional(FILING_FIELDS)),
            T("start_review", ("filed", "refiled"), "under_review"),
            T("review_opened", ("filed", "refiled"), "under_review", by=SYSTEM),
            T("accept", "under_review", "accepted", checked=True, fields=REVIEW_FIELDS),
            T(
                "list_issues",
                "under_review",
                "issues_listed",
                needs_comment=True,
                fields=(
                    Field("issues", "审查问题清单", max_length=4000),
                    Field("rectify_by", "整改期限(重新备案截止日期)", kind="date"),
                ),
            ),
            T("acknowledge", "issues_listed", "rectifying"),
            T("refile", "rectifying", "refiled", guard=CONSISTENT, fields=optional(FILING_FIELDS)),
        ),
        trigger_labels={
            "file": "备案",
            "start_review": "组织审查",
            "review_opened": "集中审查开始",
            "accept": "审查通过",
            "list_issues": "列出问题清单",
            "acknowledge": "签收问题清单",
            "refile": "整改后重新备案",
        },
    )
