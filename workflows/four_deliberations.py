"""四议两公开 (four deliberations, two publications): a reusable sub-flow [GZ 一(三)2; DOMAIN §6].

提议 (村党组织) → 商议 (村两委会议) → 审议 (党员大会) → 决议 (村民会议/村民代表会议) →
决议公开 (notice, timer) → ``passed``. A vote that does not carry ends in ``failed``; a
meeting without its quorum is refused and must be held again. Step 6 (实施结果公开) comes
after implementation and is carried by the calling flow (e.g. ``asset_disposal``).
The final state names ``passed``/``failed`` are the triggers fired on a parent flow.
"""

from __future__ import annotations

from fractions import Fraction

from engine.definitions import SYSTEM, Deadline, Field, Guard, GuardContext, State, T, Workflow
from workflows.common import YEAR_FIELD, policy_of
from workflows.policy import Policy
from workflows.roles import VILLAGE_COMMITTEE, VILLAGE_PARTY_BRANCH

KEY = "four_deliberations"
VILLAGER_MEETING, REPRESENTATIVES_MEETING = "村民会议", "村民代表会议"

WITNESS = Field("township_witness", "乡镇见证人")


def _count(ctx: GuardContext, name: str) -> int:
    return int(ctx.form.get(name) or 0)


def _at_least(part: int, whole: int, share: Fraction) -> bool:
    return part >= share * whole


def _over(part: int, whole: int, share: Fraction) -> bool:
    return part > share * whole


def _attendance(ctx: GuardContext) -> list[str]:
    """Each step records due, present, for and against; the numbers must add up [L]."""
    due, present = _count(ctx, "due"), _count(ctx, "present")
    reasons = [] if due > 0 else ["应到人数须大于0 (nobody due)"]
    if present > due:
        reasons.append("实到人数超过应到人数 (more present than due)")
    if _count(ctx, "votes_for") + _count(ctx, "votes_against") > present:
        reasons.append("表决票数超过实到人数 (more votes than present)")
    return reasons


def _party_quorum(ctx: GuardContext) -> list[str]:
    """N: 党员大会 needs ≥ 2/3 of the members present."""
    reasons = _attendance(ctx)
    share = policy_of(ctx.data).party_meeting_present_min
    if not reasons and not _at_least(_count(ctx, "present"), _count(ctx, "due"), share):
        reasons.append(f"党员大会到会人数不足应到的{share} (quorum not met)")
    return reasons


def _party_passes(ctx: GuardContext) -> list[str]:
    """N: 党员大会 passes with more than half of the members due."""
    share = policy_of(ctx.data).party_meeting_pass_over
    if _over(_count(ctx, "votes_for"), _count(ctx, "due"), share):
        return []
    return [f"赞成票未超过应到党员的{share} (not carried)"]


def _resolution_quorum(ctx: GuardContext) -> list[str]:
    """N 村民委员会组织法: 村民会议 > 1/2 of adults or ≥ 2/3 of households; 代表会议 ≥ 2/3."""
    reasons = _attendance(ctx)
    if reasons:
        return reasons
    p = policy_of(ctx.data)
    due, present = _count(ctx, "due"), _count(ctx, "present")
    if ctx.form.get("meeting_kind") == REPRESENTATIVES_MEETING:
        if not _at_least(present, due, p.representatives_present_min):
            reasons.append(f"村民代表会议到会不足应到的{p.representatives_present_min} (quorum not met)")
        return reasons
    households_due, households_present = _count(ctx, "households_due"), _count(ctx, "households_present")
    if households_present > households_due:
        return ["到会户代表超过应到户数 (more households present than due)"]
    adults_ok = _over(present, due, p.villager_meeting_adults_over)
    households_ok = households_due > 0 and _at_least(
        households_present, households_due, p.villager_meeting_households_min
    )
    if not (adults_ok or households_ok):
        reasons.append(
            f"村民会议到会须超过成年村民的{p.villager_meeting_adults_over}"
            f"或不少于户代表的{p.villager_meeting_households_min} (quorum not met)"
        )
    return reasons


def _resolution_passes(ctx: GuardContext) -> list[str]:
    """N: a resolution passes with more than half of those present."""
    share = policy_of(ctx.data).resolution_pass_over
    if _over(_count(ctx, "votes_for"), _count(ctx, "present"), share):
        return []
    return [f"赞成票未超过到会人数的{share} (not carried)"]


PARTY_QUORUM = Guard("party_meeting_quorum", "党员大会法定人数", _party_quorum)
PARTY_PASSES = Guard("party_meeting_passes", "党员大会表决通过", _party_passes)
RESOLUTION_QUORUM = Guard("resolution_quorum", "村民(代表)会议法定人数", _resolution_quorum)
RESOLUTION_PASSES = Guard("resolution_passes", "村民(代表)会议表决通过", _resolution_passes)
MERGED = Guard(
    "merged_proposal",
    "书记主任一肩挑, 提议与商议合并",
    lambda ctx: [] if ctx.form.get("merged_with_discussion") is True else ["未合并 (not merged)"],
)
DISCUSSION_AGREED = Guard(
    "discussion_agreed",
    "村两委会议同意",
    lambda ctx: [] if ctx.form.get("agreed") is True else ["村两委会议未同意 (not agreed)"],
)

VOTE_FIELDS = (
    Field("due", "应到人数", kind="int", min_value=0),
    Field("present", "实到人数", kind="int", min_value=0),
    Field("votes_for", "赞成", kind="int", min_value=0),
    Field("votes_against", "反对", kind="int", min_value=0),
    WITNESS,
)


def build(p: Policy) -> Workflow:
    return Workflow(
        key=KEY,
        version=1,
        title="四议两公开",
        start_role=VILLAGE_PARTY_BRANCH,
        title_field="subject",
        start_fields=(
            YEAR_FIELD,
            Field("subject", "议题"),
            Field(
                "matter", "事项类型", kind="choice", choices=("集体资产运营方案", "收益分配方案", "资产处置")
            ),
        ),
        description="提议 → 商议 → 审议 → 决议 → 决议公开 (GZ 一(三)2)",
        states=(
            State("proposal", "村党组织提议", actor=VILLAGE_PARTY_BRANCH),
            State("discussion", "村两委会议商议", actor=VILLAGE_COMMITTEE),
            State("party_review", "党员大会审议", actor=VILLAGE_PARTY_BRANCH, checklist=(PARTY_QUORUM,)),
            State(
                "resolution", "村民(代表)会议决议", actor=VILLAGE_COMMITTEE, checklist=(RESOLUTION_QUORUM,)
            ),
            State(
                "resolution_notice",
                "决议公开",
                timer=Deadline(days=p.deliberation_notice_days, on_expiry="notice_ended"),
            ),
            State("passed", "决议通过", final=True),
            State("failed", "未通过", final=True),
        ),
        transitions=(
            T(
                "propose",
                "proposal",
                "party_review",
                guard=MERGED,
                fields=(
                    Field("motion_source", "提议来源"),
                    Field("merged_with_discussion", "书记主任一肩挑, 合并提议与商议", kind="bool"),
                ),
            ),
            T("propose", "proposal", "discussion", otherwise=True),
            T(
                "discuss",
                "discussion",
                "party_review",
                guard=DISCUSSION_AGREED,
                fields=(*VOTE_FIELDS, Field("agreed", "同意", kind="bool")),
            ),
            T("discuss", "discussion", "failed", otherwise=True),
            T("vote", "party_review", "resolution", guard=PARTY_PASSES, checked=True, fields=VOTE_FIELDS),
            T("vote", "party_review", "failed", otherwise=True, checked=True),
            T(
                "vote",
                "resolution",
                "resolution_notice",
                guard=RESOLUTION_PASSES,
                checked=True,
                fields=(
                    Field(
                        "meeting_kind",
                        "会议形式",
                        kind="choice",
                        choices=(VILLAGER_MEETING, REPRESENTATIVES_MEETING),
                    ),
                    *VOTE_FIELDS,
                    Field("households_due", "应到户代表", kind="int", required=False, min_value=0),
                    Field("households_present", "实到户代表", kind="int", required=False, min_value=0),
                ),
            ),
            T("vote", "resolution", "failed", otherwise=True, checked=True),
            T("notice_ended", "resolution_notice", "passed", by=SYSTEM),
        ),
        trigger_labels={
            "propose": "提议",
            "discuss": "商议",
            "vote": "表决",
            "notice_ended": "公示期满",
        },
    )
