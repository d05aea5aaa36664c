"""项目实施、结算与资产移交 (delivery, settlement, handover) [GZ 一(三)1-2; DOMAIN §4].

planned → implementing (拨付 recorded as they happen) → completed → settled (3 calendar
months) → handed_over (30 days) → registered (资产台账: the departments that take the asset
onto their books each acknowledge it, 会签签收; its township and village are told) →
in_operation. The settlement clock may be extended (中小型 2 / 大型 6 months, N 财建〔2016〕
503号) by the county's 财政局 with a reason: the extension moves the running clock on from
its current due time (延期), it does not restart it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from engine.definitions import Countersign, Deadline, Field, Guard, GuardContext, State, T, Workflow
from workflows.common import YEAR_FIELD, optional, policy_of, wan
from workflows.policy import Policy
from workflows.roles import (
    COUNTY_APPROVER,
    COUNTY_DEPARTMENT_REVIEWER,
    COUNTY_FINANCE,
    TOWNSHIP_REVIEWER,
    VILLAGE_APPLICANT,
)

KEY = "project_delivery"
OPERATING, PUBLIC, HOUSEHOLD = "经营性", "公益性", "到户类"
ASSET_CLASSES = (OPERATING, PUBLIC, HOUSEHOLD)
"""N 国办函〔2021〕51号: asset classes."""
COLLECTIVE, STATE_OWNED, HOUSEHOLDS = "村集体", "国有", "农户"
SMALL, LARGE = "中小型", "大型"
SECTOR_DEPARTMENTS = {"村组道路": "transport", "安全饮水": "water", "安全住房": "housing"}
"""GZ 一(三)2: 村组道路、安全饮水设施、安全住房 → 相关行业主管部门."""


def routing(data: Mapping[str, Any]) -> list[str]:
    """GZ 一(三)2: collective → 农牧农村 + 组织部门; state-owned → 财政; roads/water/housing → industry."""
    codes = []
    if data.get("ownership") == COLLECTIVE:
        codes += ["agriculture", "organisation"]
    if data.get("ownership") == STATE_OWNED:
        codes.append(policy_of(data).finance_department)
    if data.get("asset_sector") in SECTOR_DEPARTMENTS:
        codes.append(SECTOR_DEPARTMENTS[data["asset_sector"]])
    return list(dict.fromkeys(codes or policy_of(data).default_departments))


def _retention_cap(ctx: GuardContext) -> list[str]:
    """N: 质保金 at most retention_max_percent of the settled amount."""
    settled, retention = int(ctx.data.get("settled_amount") or 0), int(ctx.data.get("retention") or 0)
    cap = policy_of(ctx.data).retention_max_percent
    if Decimal(retention) * 100 <= cap * settled:
        return []
    return [f"质保金{wan(retention)}超过结算金额的{cap}% (retention above the cap)"]


def _household_class(ctx: GuardContext) -> list[str]:
    """N 国办函〔2021〕51号: 到户类 assets belong to the household, not the collective ledger."""
    household = ctx.data.get("asset_class") == HOUSEHOLD
    if household != (ctx.data.get("ownership") == HOUSEHOLDS):
        return ["到户类资产权属须为农户, 农户资产须为到户类 (household class and ownership must agree)"]
    return []


def _large_project(ctx: GuardContext) -> list[str]:
    return [] if ctx.data.get("project_size") == LARGE else ["非大型项目 (not a large project)"]


RETENTION_CAP = Guard("retention_cap", "质保金比例", _retention_cap)
HOUSEHOLD_CLASS = Guard("household_class", "到户类资产权属", _household_class)
LARGE_PROJECT = Guard("large_project", "大型项目", _large_project)

REGISTER_FIELDS = (
    Field("asset_count", "个数", kind="int", min_value=1),
    Field("original_value", "原值", kind="money", min_value=0),
    Field("ownership", "权属", kind="choice", choices=(COLLECTIVE, STATE_OWNED, HOUSEHOLDS)),
    Field("asset_category", "类别"),
    Field("asset_class", "资产类型", kind="choice", choices=ASSET_CLASSES),
    Field("asset_sector", "行业", kind="choice", choices=(*SECTOR_DEPARTMENTS, "其他")),
    Field("fund_source", "资金来源"),
    Field("caretaker", "管护主体"),
    Field("beneficiary_households", "受益户数", kind="int", min_value=0),
    Field("condition", "资产状况", required=False),
)
"""GZ 一(三)2 个数、原值、权属、类别, plus [D] fund source, 管护主体, beneficiaries, condition."""


DISBURSEMENT_FIELDS = (
    Field("disbursed_total", "累计拨付(不含质保金)", kind="money", min_value=0),
    Field("disbursed_on", "拨付登记日期", kind="date"),
)
"""拨付 (DOMAIN §4): the cumulative amount paid so far, 质保金 excluded, and when; feeds §7."""

EXTENSION_FIELDS = (Field("extension_reason", "延期理由"),)


def build(p: Policy) -> Workflow:
    escalate = COUNTY_APPROVER
    return Workflow(
        key=KEY,
        version=1,
        title="项目实施与资产移交",
        start_role=VILLAGE_APPLICANT,
        title_field="name",
        start_fields=(
            YEAR_FIELD,
            Field("name", "项目名称"),
            Field("library_project", "入库项目编号", kind="int", required=False, min_value=1),
            Field("project_size", "项目规模", kind="choice", choices=(SMALL, LARGE)),
            Field("allocated", "下达资金", kind="money", required=False, min_value=0),
        ),
        description=f"完工后{p.settlement_months}个月内结算决算, 其后{p.handover_days}天内资产移交 (GZ 一(三)1)",
        states=(
            State("planned", "已下达计划", actor=VILLAGE_APPLICANT),
            State("implementing", "实施中", actor=VILLAGE_APPLICANT),
            State(
                "completed",
                "已完工(待结算决算)",
                actor=VILLAGE_APPLICANT,
                deadline=Deadline(months=p.settlement_months, remind=(30, 7), escalate_to=escalate),
            ),
            State(
                "settled",
                "已结算决算(待移交)",
                actor=VILLAGE_APPLICANT,
                deadline=Deadline(days=p.handover_days, remind=(7,), escalate_to=escalate),
            ),
            State("handed_over", "已移交(待登记)", actor=COUNTY_APPROVER),
            State(
                "registered",
                "已登记台账(部门签收)",
                actor=COUNTY_DEPARTMENT_REVIEWER,
                countersign=Countersign(parties=lambda ctx: routing(ctx.data), on="acknowledge"),
                notify=(TOWNSHIP_REVIEWER, VILLAGE_APPLICANT),
            ),
            State("in_operation", "运营管护中", final=True),
        ),
        transitions=(
            T(
                "start_work",
                "planned",
                "implementing",
                fields=(Field("started_on", "开工日期", kind="date"),),
            ),
            T(
                "complete",
                "implementing",
                "completed",
                fields=(Field("completed_on", "完工日期", kind="date"),),
            ),
            *(
                T("disburse", step, step, record=True, fields=DISBURSEMENT_FIELDS)
                for step in ("implementing", "completed", "settled")
            ),
            *(
                T(
                    "extend",
                    "completed",
                    "completed",
                    by=COUNTY_FINANCE,
                    needs_comment=True,
                    fields=EXTENSION_FIELDS,
                    extends=Deadline(months=months),
                    max_times=1,
                    **branch,
                )
                for months, branch in (
                    (p.extension_months_large, {"guard": LARGE_PROJECT}),
                    (p.extension_months_small, {"otherwise": True}),
                )
            ),
            T(
                "settle",
                "completed",
                "settled",
                guard=RETENTION_CAP,
                fields=(
                    Field("settled_amount", "结算金额", kind="money", min_value=1),
                    Field("retention", "质保金", kind="money", min_value=0),
                    Field("settled_on", "结算决算日期", kind="date"),
                    *optional(DISBURSEMENT_FIELDS),
                ),
            ),
            T(
                "hand_over",
                "settled",
                "handed_over",
                fields=(
                    Field("handed_over_on", "移交日期", kind="date"),
                    Field("handover_document", "移交文件"),
                ),
            ),
            T("register", "handed_over", "registered", guard=HOUSEHOLD_CLASS, fields=REGISTER_FIELDS),
            T("acknowledge", "registered", "in_operation"),
        ),
        trigger_labels={
            "start_work": "开工",
            "complete": "完工",
            "disburse": "登记拨付",
            "extend": "批准延期",
            "settle": "结算决算",
            "hand_over": "资产移交",
            "register": "登记台账",
            "acknowledge": "签收",
        },
    )
