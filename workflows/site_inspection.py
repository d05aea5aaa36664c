"""实地检查 (on-site inspection of a county's project-library data) [GZ 二(二)3; DOMAIN §2.4].

The monthly dispatch (:mod:`workflows.jobs`) starts one for a county whose library and
delivery data show at least ``dispatch.inspection_min_problems`` problems. The 州农牧农村局
inspects and records its findings; the county's 农牧农村局 (told when it is opened)
corrects the data; the bureau verifies.

inspecting → correcting → verifying → closed; verifying → correcting (退回).
"""

from __future__ import annotations

from engine.definitions import Field, State, T, Workflow
from workflows.common import YEAR_FIELD
from workflows.policy import Policy
from workflows.roles import COUNTY_APPROVER, PREFECTURE_BUREAU

KEY = "site_inspection"


def build(p: Policy) -> Workflow:
    return Workflow(
        key=KEY,
        version=1,
        title="项目库数据实地检查",
        start_role=PREFECTURE_BUREAU,
        title_field="subject",
        start_fields=(
            YEAR_FIELD,
            Field("subject", "事由"),
            Field("period", "调度月份"),
            Field("problem_count", "问题数", kind="int", min_value=0),
            Field("problems", "数据质量问题", max_length=4000),
        ),
        description="项目库系统数据质量问题较多的县(市)实地检查 (GZ 二(二)3)",
        states=(
            State("inspecting", "实地检查", actor=PREFECTURE_BUREAU, notify=(COUNTY_APPROVER,)),
            State("correcting", "问题整改", actor=COUNTY_APPROVER),
            State("verifying", "整改核实", actor=PREFECTURE_BUREAU),
            State("closed", "已办结", final=True),
        ),
        transitions=(
            T("record", "inspecting", "correcting", fields=(Field("findings", "检查发现", max_length=4000),)),
            T("report", "correcting", "verifying", fields=(Field("measures", "整改情况", max_length=4000),)),
            T("verify", "verifying", "closed"),
            T("return", "verifying", "correcting", needs_comment=True),
        ),
        trigger_labels={
            "record": "记录检查发现",
            "report": "报送整改情况",
            "verify": "核实办结",
            "return": "退回",
        },
    )
