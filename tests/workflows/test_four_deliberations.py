"""四议两公开 golden paths, and the quorum guards on the numbers entered."""

from __future__ import annotations

import pytest

from engine.errors import GuardFailed
from tests.conftest import T0
from workflows.demo import DEMO_VILLAGE

START = {"year": 2025, "subject": "团结村牦牛合作社收益分配方案", "matter": "收益分配方案"}
WITNESS = {"township_witness": "泸桥镇 李明"}
MERGED = {"motion_source": "村党支部", "merged_with_discussion": True}
SEPARATE = {"motion_source": "村党支部", "merged_with_discussion": False}
PARTY_OK = {"due": 30, "present": 20, "votes_for": 16, "votes_against": 2, **WITNESS}
REPS_OK = {
    "meeting_kind": "村民代表会议",
    "due": 30,
    "present": 20,
    "votes_for": 11,
    "votes_against": 5,
    **WITNESS,
}
HOUSEHOLDS_OK = {
    "meeting_kind": "村民会议",
    "due": 400,
    "present": 150,
    "households_due": 120,
    "households_present": 80,
    "votes_for": 76,
    "votes_against": 10,
    **WITNESS,
}

ROUTES = {
    "merged proposal, representatives' meeting, notice ends": (
        [
            ("propose", "party_branch", MERGED),
            ("vote", "party_branch", PARTY_OK),
            ("vote", "village_committee", REPS_OK),
            ("notice_ended", None, None),
        ],
        ["proposal", "party_review", "resolution", "resolution_notice", "passed"],
    ),
    "all four steps, villagers' meeting by household quorum": (
        [
            ("propose", "party_branch", SEPARATE),
            (
                "discuss",
                "village_committee",
                {"due": 7, "present": 7, "votes_for": 7, "votes_against": 0, "agreed": True, **WITNESS},
            ),
            ("vote", "party_branch", PARTY_OK),
            ("vote", "village_committee", HOUSEHOLDS_OK),
            ("notice_ended", None, None),
        ],
        ["proposal", "discussion", "party_review", "resolution", "resolution_notice", "passed"],
    ),
    "the two committees do not agree": (
        [
            ("propose", "party_branch", SEPARATE),
            (
                "discuss",
                "village_committee",
                {"due": 7, "present": 6, "votes_for": 2, "votes_against": 4, "agreed": False, **WITNESS},
            ),
        ],
        ["proposal", "discussion", "failed"],
    ),
    "party members vote exactly half of those due: not carried": (
        [("propose", "party_branch", MERGED), ("vote", "party_branch", {**PARTY_OK, "votes_for": 15})],
        ["proposal", "party_review", "failed"],
    ),
    "representatives vote exactly half of those present: not carried": (
        [
            ("propose", "party_branch", MERGED),
            ("vote", "party_branch", PARTY_OK),
            ("vote", "village_committee", {**REPS_OK, "votes_for": 10, "votes_against": 10}),
        ],
        ["proposal", "party_review", "resolution", "failed"],
    ),
}


@pytest.mark.parametrize("name", ROUTES)
def test_route(name, drive):
    steps, expected = ROUTES[name]
    _, trail = drive("four_deliberations", DEMO_VILLAGE, "party_branch", START, steps)
    assert trail == expected


@pytest.mark.parametrize(
    ("state_steps", "form", "reason"),
    [
        ([], {**PARTY_OK, "present": 19}, "党员大会到会人数不足应到的2/3"),
        ([], {**PARTY_OK, "present": 10, "votes_for": 16}, "表决票数超过实到人数"),
        ([("vote", "party_branch", PARTY_OK)], {**REPS_OK, "present": 19}, "村民代表会议到会不足应到的2/3"),
        (
            [("vote", "party_branch", PARTY_OK)],
            {**HOUSEHOLDS_OK, "present": 200, "households_present": 79},
            "村民会议到会须超过成年村民的1/2或不少于户代表的2/3",
        ),
    ],
)
def test_quorum_is_checked_on_the_numbers(drive, runtime, sessions, actor, state_steps, form, reason):
    iid, trail = drive(
        "four_deliberations",
        DEMO_VILLAGE,
        "party_branch",
        START,
        [("propose", "party_branch", MERGED), *state_steps],
    )
    who = "party_branch" if trail[-1] == "party_review" else "village_committee"
    with sessions.begin() as s, pytest.raises(GuardFailed) as refused:
        runtime.fire(s, iid, "vote", actor(who), now=T0, form=form)
    assert any(reason in r for r in refused.value.reasons), refused.value.reasons
