"""项目入库 (project library entry): 村申报 → 乡审核 → 部门审查 → 县审定 [GZ 二(二)3].

States and routes follow DOMAIN §2.2. Thresholds, notice days and the department table
come from the policy of the project's year (``data["year"]``); timers from the policy the
definition is built with. The yearly sweep (8月底前, GZ 二(二)3) is the calendar job
:func:`workflows.jobs.library_sweep`: it fires ``sweep_due`` on each project due for removal,
and the county confirms (or keeps) it at 清查待确认.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.definitions import SYSTEM, Countersign, Deadline, Field, Guard, GuardContext, State, T, Workflow
from workflows.common import (
    YEAR_FIELD,
    confirmations,
    fund_fields,
    has_text,
    optional,
    policy_of,
    total_funds,
    wan,
)
from workflows.policy import Policy
from workflows.roles import (
    COUNTY_APPROVER,
    COUNTY_DEPARTMENT_REVIEWER,
    PREFECTURE_BUREAU,
    PROVINCE,
    TOWNSHIP_REVIEWER,
    VILLAGE_APPLICANT,
    VILLAGER,
)

KEY = "project_library"
REVIEW_STATES = (
    "township_review",
    "department_review",
    "prefecture_assessment",
    "province_assessment",
    "county_approval",
)

HOUSEHOLD, INFRASTRUCTURE, INDUSTRY = "household", "infrastructure", "industry"
TECHNICAL_KIND = {
    "到户类": HOUSEHOLD,
    "乡村建设": INFRASTRUCTURE,
    "农田沟渠修复整治": INFRASTRUCTURE,
    "以工代赈": INFRASTRUCTURE,
    "巩固三保障": INFRASTRUCTURE,
    "产业发展": INDUSTRY,
}
"""Category → the technical review it gets (GZ 二(一)1): 到户类, 小型公益性基础设施, 帮扶产业. [D]"""

TECHNICAL_ITEMS: dict[str, tuple[tuple[str, str], ...]] = {
    HOUSEHOLD: (("tech_motivation", "激发内生动力"), ("tech_no_handout", "避免简单发钱发物")),
    INFRASTRUCTURE: (
        ("tech_necessity", "必要性"),
        ("tech_feasibility", "可行性"),
        ("tech_returns", "收益性"),
    ),
    INDUSTRY: (
        ("tech_viability", "实施可行性"),
        ("tech_investment", "投资合理性"),
        ("tech_output", "产出预期性"),
        ("tech_risk", "风险可控性"),
    ),
}
"""GZ 二(一)1: the technical review of each project type."""

TOWNSHIP_FIELDS, TOWNSHIP_CHECKS = confirmations(
    "township_checks",
    "乡镇审核要点",
    (
        ("chk_genuine", "真实性"),
        ("chk_necessary", "必要性"),
        ("chk_feasible", "可行性"),
        ("chk_complete", "完整性"),
        ("chk_estimate", "投资概算"),
        ("chk_fund_source", "资金来源"),
        ("chk_benefit", "联农带农"),
        ("chk_targets", "绩效目标"),
    ),
)
"""L: the township review checklist (真实性 … 绩效目标)."""

DEPARTMENT_COMMON = (("chk_compliant", "合规性"), ("chk_land_use", "土地使用"))


def _department_checks(ctx: GuardContext) -> list[str]:
    """DOMAIN §2.2: 合规性, 土地使用, and the category's technical review (GZ 二(一)1)."""
    kind = TECHNICAL_KIND.get(ctx.data.get("category", ""))
    items = DEPARTMENT_COMMON + (TECHNICAL_ITEMS[kind] if kind else ())
    return [f"未确认: {text} (not confirmed)" for code, text in items if ctx.form.get(code) is not True]


DEPARTMENT_CHECKS = Guard("department_checks", "部门审查要点", _department_checks)
ALL_DEPARTMENT_ITEMS = DEPARTMENT_COMMON + tuple(i for items in TECHNICAL_ITEMS.values() for i in items)
DEPARTMENT_FIELDS = (
    *(Field(code, text, kind="bool", required=False) for code, text in ALL_DEPARTMENT_ITEMS),
    Field("assessment", "评估论证意见", required=False, max_length=2000),
)


def assessed_amount(data: Mapping[str, Any]) -> int:
    """The amount compared with the thresholds, by the year's ``amount_basis`` (GZ 二(二)2; SC cumulative)."""
    total = total_funds(data)
    if policy_of(data).amount_basis == "cumulative_enterprise":
        return total + int(data.get("enterprise_prior_investment") or 0)
    return total


def _above_province(ctx: GuardContext) -> list[str]:
    """GZ 二(二)2: 3000万以上的项目需要报省提级论证."""
    limit = policy_of(ctx.data).province_assessment_above
    return [] if assessed_amount(ctx.data) > limit else [f"投资未超过{wan(limit)} (not above)"]


def _prefecture_band(ctx: GuardContext) -> list[str]:
    """GZ 二(二)2: 500万元—3000万元的项目由州农牧农村局组织评估 (both ends included)."""
    p = policy_of(ctx.data)
    amount = assessed_amount(ctx.data)
    if p.prefecture_assessment_min <= amount <= p.province_assessment_above:
        return []
    return [
        f"投资不在{wan(p.prefecture_assessment_min)}—{wan(p.province_assessment_above)}之间 (outside the band)"
    ]


ABOVE_PROVINCE = Guard("above_province_threshold", "报省提级论证", _above_province)
PREFECTURE_BAND = Guard("prefecture_assessment_band", "州级组织评估", _prefecture_band)


def departments_for(data: Mapping[str, Any], county: str | None = None) -> list[str]:
    """部门审查 parties: the category's and each sector's departments, plus 财政 from the threshold.

    DOMAIN §2.2 table [D, in the year's policy, overridable per county]; 财政 joins when the
    total ≥ finance_review_min.
    """
    p = policy_of(data)
    codes = list(p.category_departments(data.get("category", ""), county))
    for sector in data.get("sectors") or ():
        codes += p.departments_by_sector.get(sector, ())
    codes = codes or list(p.default_departments)
    if assessed_amount(data) >= p.finance_review_min:
        codes.append(p.finance_department)
    return list(dict.fromkeys(codes))


def approval_parties(data: Mapping[str, Any]) -> list[str]:
    """县审定 parties: 县农牧农村局 together with 县财政局 (DOMAIN §1, GZ 二(二)2)."""
    return list(policy_of(data).approval_departments)


def _not_on_negative_list(ctx: GuardContext) -> list[str]:
    """GZ 一(一)2 坚决杜绝负面清单项目; GZ 二(二)2 核实是否属于负面清单."""
    if ctx.data.get("negative_list_checked") is not True:
        return ["未完成负面清单自查 (negative-list self-check not done)"]
    p = policy_of(ctx.data)
    known = {i.code for i in p.negative_list}
    return [
        f"属于负面清单: {p.negative_item(c).text}"
        for c in ctx.data.get("negative_list_hits") or ()
        if c in known
    ]


ENTRY_GATE = (
    Guard("not_on_negative_list", "不属于负面清单", _not_on_negative_list),
    Guard(
        "related_to_consolidation",
        "与巩固拓展脱贫攻坚成果和衔接推进乡村振兴相关",
        lambda ctx: (
            [] if ctx.data.get("related_to_consolidation") is True else ["与巩固衔接无关 (unrelated)"]
        ),
    ),
    has_text(
        "has_benefit_mechanism",
        "建立利益联结机制",
        "benefit_mechanism",
        "未建立利益联结机制 (no benefit mechanism)",
    ),
    has_text(
        "has_performance_targets",
        "设置绩效目标",
        "performance_target",
        "未设置绩效目标 (no performance targets)",
    ),
    has_text("has_assessment", "开展评估论证", "assessment", "未开展评估论证 (no assessment)"),
)
"""GZ 二(二)2: 不符合入库要求的项目不得入库 — enforced at 县审定, shown (advisory) at every other review step."""


def _submittable(ctx: GuardContext) -> list[str]:
    """A project with no planned funds or no negative-list self-check is not submitted."""
    reasons = [] if total_funds(ctx.data) > 0 else ["计划投入资金为零 (no planned funds)"]
    if ctx.data.get("negative_list_checked") is not True:
        reasons.append("未完成负面清单自查 (negative-list self-check not done)")
    return reasons


SUBMITTABLE = Guard("submittable", "可提交", _submittable)

PRIORITY_CATEGORIES = ("到户类", "就业(公益性岗位)", "农田沟渠修复整治", "以工代赈")


def priorities(data: Mapping[str, Any]) -> list[str]:
    """GZ 一(一)2 优先安排: the priority tags a project earns, for display and reports."""
    tags = [c for c in PRIORITY_CATEGORIES if data.get("category") == c]
    households = sum(
        int(data.get(k) or 0) for k in ("households_exited", "households_monitored", "households_relocated")
    )
    if households and str(data.get("benefit_mechanism") or "").strip():
        tags.append("联农带农")
    return tags


def start_fields(p: Policy) -> tuple[Field, ...]:
    """The project record (DOMAIN §2.1); money in 万元, stored as 分."""
    return (
        YEAR_FIELD,
        Field("name", "项目名称"),
        Field("category", "项目类别", kind="choice", choices=p.categories),
        Field("sectors", "涉及行业", kind="multichoice", choices=p.sectors, required=False),
        Field("content", "建设内容", max_length=2000),
        Field("scale", "建设规模"),
        *fund_fields(),
        Field("enterprise_prior_investment", "同一主体累计已投入", kind="money", required=False, min_value=0),
        Field("period_start", "实施期限(起)", kind="date"),
        Field("period_end", "实施期限(止)", kind="date"),
        Field("performance_target", "绩效目标", required=False, max_length=2000),
        Field("benefit_mechanism", "联农带农利益联结机制", required=False, max_length=2000),
        Field("households_exited", "带动脱贫户", kind="int", required=False, min_value=0),
        Field("households_monitored", "带动监测户", kind="int", required=False, min_value=0),
        Field("households_relocated", "带动易地搬迁户", kind="int", required=False, min_value=0),
        Field("income_target", "增收目标", required=False),
        Field("asset_ownership", "资产权属(拟)"),
        Field("assessment", "评估论证", required=False, max_length=2000),
        Field("negative_list_checked", "已完成负面清单自查", kind="bool"),
        Field(
            "negative_list_hits",
            "自查涉及的负面清单事项",
            kind="multichoice",
            choices=tuple(i.code for i in p.negative_list),
            required=False,
        ),
        Field("related_to_consolidation", "与巩固衔接相关", kind="bool"),
        Field("responsible_unit", "责任单位"),
        Field("responsible_person", "责任人"),
    )


def build(p: Policy) -> Workflow:
    fields = start_fields(p)
    review = Deadline(
        working_days=p.review_working_days, remind=p.review_remind_days, escalate_to=COUNTY_APPROVER
    )
    assessment = (Field("assessment", "评估论证意见", max_length=2000),)
    return Workflow(
        key=KEY,
        version=1,
        title="项目入库",
        start_role=VILLAGE_APPLICANT,
        title_field="name",
        start_fields=fields,
        description="村申报 → 乡审核 → 部门审查 → 县审定 (GZ 二(二)3)",
        states=(
            State("draft", "村级申报", actor=VILLAGE_APPLICANT, withdrawable=True),
            State(
                "village_notice",
                "村内公示",
                timer=Deadline(days=p.village_notice_days, on_expiry="notice_ended"),
            ),
            State(
                "township_review",
                "乡镇审核",
                actor=TOWNSHIP_REVIEWER,
                advisory=ENTRY_GATE,
                deadline=review,
                withdrawable=True,
            ),
            State(
                "department_review",
                "行业部门审查",
                actor=COUNTY_DEPARTMENT_REVIEWER,
                checklist=(DEPARTMENT_CHECKS,),
                advisory=ENTRY_GATE,
                countersign=Countersign(
                    parties=lambda ctx: departments_for(ctx.data, ctx.units.get("county"))
                ),
                deadline=review,
            ),
            State("prefecture_assessment", "州级评估论证", actor=PREFECTURE_BUREAU, advisory=ENTRY_GATE),
            State("province_assessment", "省级提级论证", actor=PROVINCE, advisory=ENTRY_GATE),
            State(
                "county_approval",
                "县级审定",
                actor=COUNTY_APPROVER,
                checklist=ENTRY_GATE,
                countersign=Countersign(parties=lambda ctx: approval_parties(ctx.data)),
                deadline=review,
            ),
            State(
                "county_notice",
                "县级公告",
                timer=Deadline(days=p.county_notice_days, on_expiry="notice_ended"),
            ),
            State("in_library", "已入库", actor=COUNTY_APPROVER),
            State(
                "sweep_review",
                "清查待确认",
                actor=COUNTY_APPROVER,
                deadline=Deadline(annual=(p.sweep_by.month, p.sweep_by.day), remind=(7,)),
            ),
            State("in_annual_plan", "已纳入年度计划", final=True),
            State("removed", "已清除出库", final=True),
            State("rejected", "不予入库", final=True),
        ),
        transitions=(
            T("submit", "draft", "village_notice", guard=SUBMITTABLE, fields=optional(fields[1:])),
            T("notice_ended", "village_notice", "township_review", by=SYSTEM),
            T("object", "village_notice", "draft", by=VILLAGER, needs_comment=True),
            T(
                "approve",
                "township_review",
                "department_review",
                guard=TOWNSHIP_CHECKS,
                fields=TOWNSHIP_FIELDS,
            ),
            T(
                "approve",
                "department_review",
                "province_assessment",
                guard=ABOVE_PROVINCE,
                checked=True,
                fields=DEPARTMENT_FIELDS,
            ),
            T(
                "approve",
                "department_review",
                "prefecture_assessment",
                guard=PREFECTURE_BAND,
                checked=True,
                fields=DEPARTMENT_FIELDS,
            ),
            T(
                "approve",
                "department_review",
                "county_approval",
                otherwise=True,
                checked=True,
                fields=DEPARTMENT_FIELDS,
            ),
            T("approve", "prefecture_assessment", "county_approval", fields=assessment),
            T("approve", "province_assessment", "county_approval", fields=assessment),
            T("approve", "county_approval", "county_notice", checked=True, bulk=True),
            T("return", REVIEW_STATES, "draft", needs_comment=True),
            T("reject", REVIEW_STATES, "rejected", needs_comment=True),
            T("object", "county_notice", "county_approval", by=VILLAGER, needs_comment=True),
            T("notice_ended", "county_notice", "in_library", by=SYSTEM),
            T("plan", ("in_library", "sweep_review"), "in_annual_plan"),
            T("remove", "in_library", "removed", needs_comment=True),
            T("sweep_due", "in_library", "sweep_review", by=SYSTEM),
            T("confirm_removal", "sweep_review", "removed", needs_comment=True),
            T("keep", "sweep_review", "in_library", needs_comment=True),
        ),
        trigger_labels={
            "submit": "提交",
            "notice_ended": "公示期满",
            "object": "提出异议",
            "approve": "通过",
            "return": "退回修改",
            "reject": "不予入库",
            "plan": "纳入年度计划",
            "remove": "清除出库",
            "sweep_due": "清查到期",
            "confirm_removal": "确认清除",
            "keep": "保留",
        },
    )
