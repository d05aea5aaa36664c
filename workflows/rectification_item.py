"""审查问题整改 (one rectification item of a 审查问题清单) [GZ 一(一)1; GZ 一(一)4; DOMAIN §3, §8].

The reviewer lists each problem found at the 备案审查 as its own item, with the date by
which the county must rectify it (限期整改): the item's clock is that entered date
(``Deadline(field="rectify_by")``), reminding the county and escalating to the 州农牧农村局
when it passes. The county reports what it did; the bureau verifies it or sends it back.
Money found spent on a 负面清单 item is tracked the same way (重新安排等额资金, GZ 一(一)4).

rectifying → verifying → rectified; verifying → rectifying (退回).
"""

from __future__ import annotations

from engine.definitions import Deadline, Field, State, T, Workflow
from workflows.common import YEAR_FIELD
from workflows.policy import Policy
from workflows.roles import COUNTY_APPROVER, EXPERT, PREFECTURE_BUREAU

KEY = "rectification_item"

KINDS = (
    "不符合衔接资金使用范围",
    "未开展评估论证",
    "未建立利益联结机制",
    "负面清单项目(重新安排等额资金)",
    "产业发展资金占比不足",
    "其他",
)
"""GZ 一(一)1 the problems the review looks for; GZ 一(一)4 负面清单 money re-arranged."""


def build(p: Policy) -> Workflow:
    return Workflow(
        key=KEY,
        version=1,
        title="审查问题整改",
        start_role=EXPERT,
        title_field="item",
        start_fields=(
            YEAR_FIELD,
            Field("filing", "备案审查编号", kind="int", required=False, min_value=1),
            Field("kind", "问题类别", kind="choice", choices=KINDS),
            Field("item", "问题描述", max_length=2000),
            Field("rectify_by", "整改期限", kind="date"),
        ),
        description="审查问题清单逐项限期整改 (GZ 一(一)1)",
        states=(
            State(
                "rectifying",
                "限期整改",
                actor=COUNTY_APPROVER,
                deadline=Deadline(field="rectify_by", remind=(7, 1), escalate_to=PREFECTURE_BUREAU),
            ),
            State("verifying", "整改核实", actor=PREFECTURE_BUREAU),
            State("rectified", "已整改", final=True),
        ),
        transitions=(
            T(
                "report",
                "rectifying",
                "verifying",
                fields=(Field("measures", "整改措施及结果", max_length=4000),),
            ),
            T("verify", "verifying", "rectified"),
            T("return", "verifying", "rectifying", needs_comment=True),
        ),
        trigger_labels={"report": "报送整改结果", "verify": "核实销号", "return": "退回重新整改"},
    )
