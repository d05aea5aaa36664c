"""支出进度督办 (两书一函) [GZ 一(一)3; DOMAIN §7].

At each spending checkpoint a county below target gets one of these, started by the
calendar job (:mod:`workflows.jobs`): a 提醒函 (reminder notice) at its first breach of the
year, a 约谈通知书 (interview notice) at the next, then a 督办函 (supervision letter) [D: the
order]. The county's 农牧农村局 answers with its measures (县财政局 is told on issue); the
州农牧农村局 closes it or sends it back.

issued → answered → closed; answered → issued (退回).
"""

from __future__ import annotations

from engine.definitions import Field, State, T, Workflow
from workflows.common import YEAR_FIELD
from workflows.policy import Policy
from workflows.roles import COUNTY_APPROVER, COUNTY_FINANCE, PREFECTURE_BUREAU

KEY = "spending_supervision"
LEVELS = ("提醒函", "约谈通知书", "督办函")
"""两书一函, in the order a county receives them within a year."""


def level_for(breaches_before: int) -> str:
    """The notice for a county's next breach, given how many it had before this year."""
    return LEVELS[min(breaches_before, len(LEVELS) - 1)]


def build(p: Policy) -> Workflow:
    return Workflow(
        key=KEY,
        version=1,
        title="支出进度督办",
        start_role=PREFECTURE_BUREAU,
        title_field="subject",
        start_fields=(
            YEAR_FIELD,
            Field("subject", "事由"),
            Field("checkpoint", "节点(月)", kind="int", min_value=1, max_value=12),
            Field("level", "督办方式", kind="choice", choices=LEVELS),
            Field("spending_percent", "支出进度(%)", required=False),
            Field("target_percent", "目标(%)", required=False),
        ),
        description="两书一函: 提醒函 → 约谈通知书 → 督办函 (GZ 一(一)3)",
        states=(
            State("issued", "已下发", actor=COUNTY_APPROVER, notify=(COUNTY_FINANCE,)),
            State("answered", "已报送整改措施", actor=PREFECTURE_BUREAU),
            State("closed", "已办结", final=True),
        ),
        transitions=(
            T("answer", "issued", "answered", fields=(Field("measures", "整改措施", max_length=4000),)),
            T("close", "answered", "closed"),
            T("return", "answered", "issued", needs_comment=True),
        ),
        trigger_labels={"answer": "报送整改措施", "close": "办结", "return": "退回"},
    )
