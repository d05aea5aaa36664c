"""不良资产处置 (disposal of non-performing assets) [GZ 一(三)3; DOMAIN §5].

Collective assets: 四议两公开 (sub-flow ``four_deliberations``) → 乡镇审核 → 县农牧农村 +
财政 审批 (会签) → 处置执行 (proceeds recorded) → 实施结果公开 → 已处置 (台账更新).
State-owned assets: 单位申请 → 主管部门审核 → 财政审批 → 处置执行 → 实施结果公开 → 已处置.
No asset leaves the ledger except through this flow [N].
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.definitions import SYSTEM, Countersign, Deadline, Field, Guard, GuardContext, State, T, Workflow
from workflows.common import YEAR_FIELD, optional, policy_of
from workflows.policy import Policy
from workflows.roles import (
    COUNTY_APPROVER,
    COUNTY_DEPARTMENT_REVIEWER,
    COUNTY_FINANCE,
    DEPARTMENTS,
    TOWNSHIP_REVIEWER,
    VILLAGE_APPLICANT,
)

KEY = "asset_disposal"
COLLECTIVE, STATE_OWNED = "集体资产", "国有资产"

GROUNDS = (
    "已超过使用年限且无法满足巩固脱贫成果任务需要",
    "因政策或技术原因确需淘汰或无法维修、无维修价值",
    "因自然灾害等不可抗力造成损毁",
    "因基本建设需拆除",
    "依照相关规定需处置",
    "因市场原因造成持续亏损、盘活无望、前景黯淡",
)
"""GZ 一(三)3: the six grounds; at least one is recorded."""

METHODS = ("拍卖", "转让", "转产", "报停", "报损", "报废")
"""L: disposal methods."""

REVIEW_STATES = ("township_review", "county_approval", "department_review", "finance_approval")


def _collective(ctx: GuardContext) -> list[str]:
    """GZ 一(三)2: collective assets follow 四议两公开 first."""
    return [] if ctx.data.get("ownership") == COLLECTIVE else ["非集体资产 (not collective)"]


def _proceeds_to_consolidation(ctx: GuardContext) -> list[str]:
    """GZ 一(三)3: 处置收益用于巩固拓展脱贫攻坚成果同乡村振兴有效衔接."""
    if int(ctx.data.get("proceeds") or 0) == 0:
        return []
    reasons = []
    if ctx.data.get("proceeds_to_consolidation") is not True:
        reasons.append("处置收益须用于巩固衔接 (proceeds must go to consolidation)")
    if not str(ctx.data.get("proceeds_use") or "").strip():
        reasons.append("须记录收益去向 (record where the proceeds went)")
    return reasons


COLLECTIVE_ASSET = Guard("collective_asset", "集体资产", _collective)
PROCEEDS_USED = Guard("proceeds_to_consolidation", "收益用于巩固衔接", _proceeds_to_consolidation)


def owning_department(data: Mapping[str, Any]) -> list[str]:
    """State-owned assets are reviewed by the department that holds them [L]."""
    return [data["department"]]


def approval_parties(data: Mapping[str, Any]) -> list[str]:
    """县农牧农村 + 财政 approve a collective disposal (DOMAIN §5)."""
    return list(policy_of(data).approval_departments)


START_FIELDS = (
    YEAR_FIELD,
    Field("asset_name", "资产名称"),
    Field("ledger_ref", "台账编号"),
    Field("ownership", "资产权属", kind="choice", choices=(COLLECTIVE, STATE_OWNED)),
    Field("department", "主管部门(国有资产)", kind="choice", choices=tuple(DEPARTMENTS), required=False),
    Field("original_value", "原值", kind="money", min_value=0),
    Field("grounds", "处置理由", kind="multichoice", choices=GROUNDS),
    Field("method", "处置方式", kind="choice", choices=METHODS),
    Field("explanation", "情况说明", max_length=2000),
)


def _department_named(ctx: GuardContext) -> list[str]:
    if ctx.data.get("ownership") == STATE_OWNED and not ctx.data.get("department"):
        return ["国有资产须填写主管部门 (name the department)"]
    return []


DEPARTMENT_NAMED = Guard("department_named", "国有资产主管部门", _department_named)


def build(p: Policy) -> Workflow:
    return Workflow(
        key=KEY,
        version=1,
        title="不良资产处置",
        start_role=VILLAGE_APPLICANT,
        title_field="asset_name",
        start_fields=START_FIELDS,
        description="集体资产: 四议两公开 → 乡审核 → 县审批 → 执行 → 结果公开; 国有资产: 部门审核 → 财政审批",
        states=(
            State(
                "draft", "处置申请", actor=VILLAGE_APPLICANT, checklist=(DEPARTMENT_NAMED,), withdrawable=True
            ),
            State("deliberation", "四议两公开", subflow="four_deliberations"),
            State("township_review", "乡镇审核", actor=TOWNSHIP_REVIEWER),
            State(
                "county_approval",
                "县农牧农村+财政审批",
                actor=COUNTY_APPROVER,
                countersign=Countersign(parties=lambda ctx: approval_parties(ctx.data)),
            ),
            State(
                "department_review",
                "主管部门审核",
                actor=COUNTY_DEPARTMENT_REVIEWER,
                countersign=Countersign(parties=lambda ctx: owning_department(ctx.data)),
            ),
            State("finance_approval", "财政审批", actor=COUNTY_FINANCE),
            State("execution", "处置执行", actor=VILLAGE_APPLICANT),
            State(
                "result_notice",
                "实施结果公开",
                timer=Deadline(days=p.deliberation_notice_days, on_expiry="notice_ended"),
            ),
            State("disposed", "已处置(台账已更新)", final=True),
            State("rejected", "不予处置", final=True),
        ),
        transitions=(
            T(
                "submit",
                "draft",
                "deliberation",
                guard=COLLECTIVE_ASSET,
                checked=True,
                fields=optional(START_FIELDS[1:]),
            ),
            T(
                "submit",
                "draft",
                "department_review",
                otherwise=True,
                checked=True,
                fields=optional(START_FIELDS[1:]),
            ),
            T("passed", "deliberation", "township_review", by=SYSTEM),
            T("failed", "deliberation", "rejected", by=SYSTEM),
            T("approve", "township_review", "county_approval"),
            T("approve", "county_approval", "execution"),
            T("approve", "department_review", "finance_approval"),
            T("approve", "finance_approval", "execution"),
            T("return", REVIEW_STATES, "draft", needs_comment=True),
            T("reject", REVIEW_STATES, "rejected", needs_comment=True),
            T(
                "record",
                "execution",
                "result_notice",
                guard=PROCEEDS_USED,
                fields=(
                    Field("executed_on", "处置日期", kind="date"),
                    Field("proceeds", "处置收益", kind="money", min_value=0),
                    Field("proceeds_to_consolidation", "收益用于巩固衔接", kind="bool"),
                    Field("proceeds_use", "收益去向", required=False),
                ),
            ),
            T("notice_ended", "result_notice", "disposed", by=SYSTEM),
        ),
        trigger_labels={
            "submit": "提交",
            "passed": "四议两公开通过",
            "failed": "四议两公开未通过",
            "approve": "同意",
            "return": "退回修改",
            "reject": "不予处置",
            "record": "登记处置结果",
            "notice_ended": "公示期满",
        },
    )
