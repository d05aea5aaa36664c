"""不良资产处置: collective assets run 四议两公开 as a sub-flow first; state-owned go to 财政."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.errors import GuardFailed, InvalidForm
from engine.store.models import Instance
from tests.conftest import T0
from tests.workflows.test_four_deliberations import MERGED, PARTY_OK, REPS_OK
from workflows.asset_disposal import GROUNDS
from workflows.demo import DEMO_VILLAGE

RECORD = {
    "executed_on": "2025-09-01",
    "proceeds": "12",
    "proceeds_to_consolidation": True,
    "proceeds_use": "村集体牦牛养殖",
}


def disposal_form(**over) -> dict:
    form = {
        "year": 2025,
        "asset_name": "团结村冷库",
        "ledger_ref": "LD-2019-017",
        "ownership": "集体资产",
        "original_value": "80",
        "grounds": [GROUNDS[0], GROUNDS[5]],
        "method": "拍卖",
        "explanation": "设备老化, 持续亏损",
    }
    form.update(over)
    return form


def _child_of(sessions, iid):
    with sessions() as s:
        return s.scalars(select(Instance).where(Instance.parent_id == iid)).one()


def _state(sessions, iid):
    with sessions() as s:
        return s.get(Instance, iid).state


def _deliberate(drive_fire, child_id, party_vote):
    for trigger, who, form in [("propose", "party_branch", MERGED), ("vote", "party_branch", party_vote)]:
        drive_fire(child_id, trigger, who, form)


@pytest.fixture
def fire(runtime, sessions, actor):
    clock = iter(T0 + timedelta(hours=h) for h in range(100, 200))

    def run(iid, trigger, who, form=None, comment=None):
        now = next(clock)
        with sessions.begin() as s:
            return runtime.fire(
                s, iid, trigger, actor(who, now), now=now, form=form, comment=comment
            ).to_state

    return run


def test_collective_disposal_runs_the_deliberations_first(drive, sessions, fire):
    iid, trail = drive(
        "asset_disposal", DEMO_VILLAGE, "applicant", disposal_form(), [("submit", "applicant", None)]
    )
    assert trail == ["draft", "deliberation"]
    child = _child_of(sessions, iid)
    assert (child.workflow_key, child.state, child.data["asset_name"]) == (
        "four_deliberations",
        "proposal",
        "团结村冷库",
    )
    _deliberate(fire, child.id, PARTY_OK)
    fire(child.id, "vote", "village_committee", REPS_OK)
    assert _state(sessions, iid) == "deliberation"
    assert fire(child.id, "notice_ended", None) == "passed"
    assert _state(sessions, iid) == "township_review"
    rest = [
        ("approve", "township", None),
        ("approve", "county_approver", None),
        ("approve", "county_finance", None),
        ("record", "applicant", RECORD),
        ("notice_ended", None, None),
    ]
    assert [fire(iid, *step) for step in rest] == [
        "county_approval",
        "county_approval",
        "execution",
        "result_notice",
        "disposed",
    ]


def test_a_failed_deliberation_rejects_the_disposal(drive, sessions, fire):
    iid, _ = drive(
        "asset_disposal", DEMO_VILLAGE, "applicant", disposal_form(), [("submit", "applicant", None)]
    )
    child = _child_of(sessions, iid)
    _deliberate(fire, child.id, {**PARTY_OK, "votes_for": 10, "votes_against": 10})
    with sessions() as s:
        assert (s.get(Instance, child.id).state, s.get(Instance, iid).state) == ("failed", "rejected")
        assert s.get(Instance, iid).status == "completed"


STATE_OWNED = {
    "state-owned asset: department review, then 财政": (
        disposal_form(ownership="国有资产", department="transport", asset_name="县道养护站"),
        [
            ("submit", "applicant", None),
            ("approve", "dept_transport", None),
            ("approve", "county_finance", None),
            ("record", "applicant", {**RECORD, "proceeds": "0", "proceeds_to_consolidation": False}),
            ("notice_ended", None, None),
        ],
        ["draft", "department_review", "finance_approval", "execution", "result_notice", "disposed"],
    ),
    "returned by 财政, resubmitted": (
        disposal_form(ownership="国有资产", department="water"),
        [
            ("submit", "applicant", None),
            ("approve", "dept_water", None),
            ("return", "county_finance", None),
            ("submit", "applicant", {"method": "报废"}),
        ],
        ["draft", "department_review", "finance_approval", "draft", "department_review"],
    ),
}


@pytest.mark.parametrize("name", STATE_OWNED)
def test_state_owned_route(name, drive):
    form, steps, expected = STATE_OWNED[name]
    assert drive("asset_disposal", DEMO_VILLAGE, "applicant", form, steps)[1] == expected


def test_proceeds_must_go_back_to_consolidation(drive, fire):
    form = disposal_form(ownership="国有资产", department="transport")
    steps = [
        ("submit", "applicant", None),
        ("approve", "dept_transport", None),
        ("approve", "county_finance", None),
    ]
    iid, _ = drive("asset_disposal", DEMO_VILLAGE, "applicant", form, steps)
    with pytest.raises(GuardFailed, match="处置收益须用于巩固衔接"):
        fire(iid, "record", "applicant", {**RECORD, "proceeds_to_consolidation": False})


def test_state_owned_needs_its_department(drive, runtime, sessions, actor):
    iid, _ = drive("asset_disposal", DEMO_VILLAGE, "applicant", disposal_form(ownership="国有资产"), [])
    with sessions.begin() as s, pytest.raises(GuardFailed, match="国有资产须填写主管部门"):
        runtime.fire(s, iid, "submit", actor("applicant"), now=T0)


def test_at_least_one_ground_is_required(runtime, sessions, actor, world):
    with sessions.begin() as s, pytest.raises(InvalidForm) as refused:
        runtime.start(
            s,
            "asset_disposal",
            actor("applicant"),
            org_unit_id=world.units[DEMO_VILLAGE].id,
            form=disposal_form(grounds=[]),
            now=T0,
        )
    assert "grounds" in refused.value.errors
