"""Golden paths of project_delivery, plan_filing and quarterly_report, with their guards."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.errors import Forbidden, GuardFailed, InvalidForm
from engine.store.models import DeadlineRow, Notification, Task
from tests.conftest import T0
from workflows import policy
from workflows.demo import DEMO_COUNTY, DEMO_VILLAGE, dept_code
from workflows.plan_filing import industry_share_reasons
from workflows.project_delivery import routing
from workflows.quarterly_report import progress

DELIVERY_START = {"year": 2025, "name": "团结村牦牛养殖圈舍", "library_project": 1, "project_size": "中小型"}
SETTLE = {"settled_amount": "100", "retention": "3", "settled_on": "2025-07-01"}
HANDOVER = {"handed_over_on": "2025-07-20", "handover_document": "移交书〔2025〕1号"}
REGISTER = {
    "asset_count": 1,
    "original_value": "100",
    "ownership": "村集体",
    "asset_category": "村组道路",
    "asset_class": "公益性",
    "asset_sector": "村组道路",
    "fund_source": "中央衔接资金",
    "caretaker": "团结村村委会",
    "beneficiary_households": 45,
}
TO_COMPLETED = [
    ("start_work", "applicant", {"started_on": "2025-06-01"}),
    ("complete", "applicant", {"completed_on": "2025-06-30"}),
]

DELIVERY_ROUTES = {
    "settled, handed over, registered and routed": (
        DELIVERY_START,
        [
            *TO_COMPLETED,
            ("settle", "applicant", SETTLE),
            ("hand_over", "applicant", HANDOVER),
            ("register", "county_approver", REGISTER),
            ("acknowledge", "dept_agriculture", None),
            ("acknowledge", "dept_organisation", None),
            ("acknowledge", "dept_transport", None),
        ],
        [
            *("planned", "implementing", "completed", "settled", "handed_over"),
            *("registered", "registered", "registered", "in_operation"),
        ],
    ),
    "disbursements recorded while implementing, then settled": (
        {**DELIVERY_START, "allocated": "100"},
        [
            ("start_work", "applicant", {"started_on": "2025-06-01"}),
            ("disburse", "applicant", {"disbursed_total": "30", "disbursed_on": "2025-06-10"}),
            ("disburse", "applicant", {"disbursed_total": "60", "disbursed_on": "2025-06-20"}),
            ("complete", "applicant", {"completed_on": "2025-06-30"}),
            ("settle", "applicant", {**SETTLE, "disbursed_total": "97", "disbursed_on": "2025-07-01"}),
        ],
        ["planned", "implementing", "implementing", "implementing", "completed", "settled"],
    ),
}


@pytest.mark.parametrize("name", DELIVERY_ROUTES)
def test_delivery_route(name, drive):
    form, steps, expected = DELIVERY_ROUTES[name]
    assert drive("project_delivery", DEMO_VILLAGE, "applicant", form, steps)[1] == expected


def _breach(sessions, iid, state):
    with sessions() as s:
        return s.scalars(
            select(DeadlineRow).where(
                DeadlineRow.instance_id == iid, DeadlineRow.state == state, DeadlineRow.kind == "breach"
            )
        ).one()


def test_township_and_village_are_told_of_the_registered_asset(drive, sessions, world):
    form, steps, _ = DELIVERY_ROUTES["settled, handed over, registered and routed"]
    iid, _ = drive("project_delivery", DEMO_VILLAGE, "applicant", form, steps[:5])
    with sessions() as s:
        told = s.scalars(
            select(Notification.user_id).where(
                Notification.instance_id == iid, Notification.kind == "entered"
            )
        ).all()
        tasks = s.scalars(select(Task.party).where(Task.instance_id == iid, Task.state == "registered")).all()
    assert sorted(told) == sorted([world.users["township"].id, world.users["applicant"].id])
    assert sorted(tasks) == ["agriculture", "organisation", "transport"]


@pytest.mark.parametrize(
    ("size", "extended_due"),
    [("中小型", "2025-10-06T15:59:59+00:00"), ("大型", "2026-02-06T15:59:59+00:00")],
)
def test_extension_moves_the_settlement_clock_from_its_due_time(drive, sessions, size, extended_due):
    """N 财建〔2016〕503号: 2 (中小型) or 6 (大型) months more, counted from the current due date."""
    extend = ("extend", "county_finance", {"extension_reason": "审计决算未完成"})
    iid, trail = drive(
        "project_delivery",
        DEMO_VILLAGE,
        "applicant",
        {**DELIVERY_START, "project_size": size},
        [*TO_COMPLETED, extend],
    )
    assert trail[-2:] == ["completed", "completed"]
    with sessions() as s:
        task = s.scalars(select(Task).where(Task.instance_id == iid, Task.status == "open")).one()
        reminders = s.scalars(
            select(DeadlineRow.due_at).where(DeadlineRow.instance_id == iid, DeadlineRow.kind == "remind")
        ).all()
    assert _breach(sessions, iid, "completed").due_at.isoformat() == extended_due
    assert task.due_at.isoformat() == extended_due
    assert all(r.isoformat() > "2025-08-06" for r in reminders)


def test_only_the_finance_bureau_extends_and_with_a_reason(drive, runtime, sessions, actor):
    iid, _ = drive("project_delivery", DEMO_VILLAGE, "applicant", DELIVERY_START, TO_COMPLETED)
    with sessions.begin() as s, pytest.raises(Forbidden):
        runtime.fire(
            s, iid, "extend", actor("applicant"), now=T0, form={"extension_reason": "x"}, comment="x"
        )
    with sessions.begin() as s, pytest.raises(InvalidForm):
        runtime.fire(s, iid, "extend", actor("county_finance"), now=T0, form={"extension_reason": "x"})


def test_settlement_is_due_three_calendar_months_after_completion(drive, sessions):
    iid, _ = drive("project_delivery", DEMO_VILLAGE, "applicant", DELIVERY_START, TO_COMPLETED)
    due = _breach(sessions, iid, "completed")
    assert (due.due_at.isoformat(), due.escalate_to) == ("2025-08-06T15:59:59+00:00", "county_approver")


def test_handover_is_due_thirty_days_after_settlement(drive, sessions):
    iid, _ = drive(
        "project_delivery",
        DEMO_VILLAGE,
        "applicant",
        DELIVERY_START,
        [*TO_COMPLETED, ("settle", "applicant", SETTLE)],
    )
    assert _breach(sessions, iid, "settled").due_at.isoformat() == "2025-06-05T15:59:59+00:00"


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        ({**SETTLE, "retention": "3.000001"}, "质保金3.000001万元超过结算金额的3%"),
    ],
)
def test_retention_is_capped(drive, form, reason):
    with pytest.raises(GuardFailed, match=reason):
        drive(
            "project_delivery",
            DEMO_VILLAGE,
            "applicant",
            DELIVERY_START,
            [*TO_COMPLETED, ("settle", "applicant", form)],
        )


def test_household_assets_belong_to_households(drive):
    steps = [*TO_COMPLETED, ("settle", "applicant", SETTLE), ("hand_over", "applicant", HANDOVER)]
    with pytest.raises(GuardFailed, match="到户类资产权属须为农户"):
        drive(
            "project_delivery",
            DEMO_VILLAGE,
            "applicant",
            DELIVERY_START,
            [*steps, ("register", "county_approver", {**REGISTER, "asset_class": "到户类"})],
        )


@pytest.mark.parametrize(
    ("ownership", "sector", "expected"),
    [
        ("村集体", "其他", ["agriculture", "organisation"]),
        ("国有", "安全饮水", ["finance", "water"]),
        ("国有", "安全住房", ["finance", "housing"]),
        ("农户", "其他", ["agriculture"]),
    ],
)
def test_routing_after_registration(ownership, sector, expected):
    assert routing({"year": 2025, "ownership": ownership, "asset_sector": sector}) == expected


FILING_START = {
    "year": 2025,
    "plan_summary": "泸定县2025年度衔接资金项目实施计划",
    "central_total": "10000",
    "central_work_relief": "1000",
    "central_industry": "5400",
    "provincial_total": "2000",
    "provincial_work_relief": "0",
    "provincial_industry": "1000",
}
CHECKS_OK = {
    "within_fund_uses": True,
    "all_assessed": True,
    "all_benefit_linked": True,
    "no_negative_list": True,
}
FILING_ROUTES = {
    "accepted at the concentrated review": (
        [
            ("file", "county_approver", None),
            ("start_review", "pref_bureau", None),
            ("accept", "expert", CHECKS_OK),
        ],
        ["drafting", "filed", "under_review", "accepted"],
    ),
    "issues listed, rectified and refiled": (
        [
            ("file", "county_approver", None),
            ("start_review", "pref_bureau", None),
            ("list_issues", "expert", {"issues": "3个项目未开展评估论证", "rectify_by": "2025-06-30"}),
            ("acknowledge", "county_approver", None),
            ("refile", "county_approver", {"central_industry": "5500"}),
            ("start_review", "pref_bureau", None),
            ("accept", "expert", CHECKS_OK),
        ],
        [
            "drafting",
            "filed",
            "under_review",
            "issues_listed",
            "rectifying",
            "refiled",
            "under_review",
            "accepted",
        ],
    ),
}


@pytest.mark.parametrize("name", FILING_ROUTES)
def test_filing_route(name, drive):
    steps, expected = FILING_ROUTES[name]
    unit = dept_code(DEMO_COUNTY, "agriculture")
    assert drive("plan_filing", unit, "county_approver", FILING_START, steps)[1] == expected


def test_filing_review_is_due_by_october_31_and_refiling_by_the_date_entered(drive, sessions):
    unit = dept_code(DEMO_COUNTY, "agriculture")
    steps = FILING_ROUTES["issues listed, rectified and refiled"][0]
    filed, _ = drive("plan_filing", unit, "county_approver", FILING_START, steps[:2])
    listed, _ = drive("plan_filing", unit, "county_approver", FILING_START, steps[:4])
    assert _breach(sessions, filed, "under_review").due_at.isoformat() == "2025-10-31T15:59:59+00:00"
    rectifying = _breach(sessions, listed, "rectifying")
    assert (rectifying.due_at.isoformat(), rectifying.escalate_to) == (
        "2025-06-30T15:59:59+00:00",
        "prefecture_bureau",
    )


def test_each_rectification_item_has_its_own_deadline(drive, sessions):
    unit = dept_code(DEMO_COUNTY, "agriculture")
    items = [("未开展评估论证", "2025-06-15"), ("负面清单项目(重新安排等额资金)", "2025-07-31")]
    ids = [
        drive(
            "rectification_item",
            unit,
            "expert",
            {"year": 2025, "kind": kind, "item": f"问题: {kind}", "rectify_by": by},
            [("report", "county_approver", {"measures": "已整改"}), ("verify", "pref_bureau", None)][:n],
        )
        for n, (kind, by) in enumerate(items)
    ]
    assert [trail for _, trail in ids] == [["rectifying"], ["rectifying", "verifying"]]
    assert _breach(sessions, ids[0][0], "rectifying").due_at.isoformat() == "2025-06-15T15:59:59+00:00"
    assert _breach(sessions, ids[1][0], "rectifying").due_at.isoformat() == "2025-07-31T15:59:59+00:00"


def test_filing_cannot_be_accepted_below_the_industry_share(drive):
    form = {**FILING_START, "central_industry": "5399.99"}
    steps = [
        ("file", "county_approver", None),
        ("start_review", "pref_bureau", None),
        ("accept", "expert", CHECKS_OK),
    ]
    with pytest.raises(GuardFailed, match=r"中央资金用于产业发展占59\.99%, 低于60%"):
        drive("plan_filing", dept_code(DEMO_COUNTY, "agriculture"), "county_approver", form, steps)


@pytest.mark.parametrize(
    ("industry_wan", "work_relief_wan", "ok"),
    [(540, 100, True), (539, 100, False), (600, 0, True), (599, 0, False)],
)
def test_industry_share_excludes_work_relief(industry_wan, work_relief_wan, ok):
    data = {"year": 2025, "central_total": 1000 * 10**6, "central_work_relief": work_relief_wan * 10**6}
    data["central_industry"] = industry_wan * 10**6
    assert (industry_share_reasons(data) == []) is ok


def test_quarterly_report_route(drive):
    unit = dept_code(DEMO_COUNTY, "agriculture")
    start = {"year": 2025, "quarter": "2", "farm_product_sales": "1200", "premium_brands": 3}
    steps = [
        ("submit", "county_approver", None),
        ("return", "pref_bureau", None),
        ("submit", "county_approver", {"work_relief_projects": 2}),
        ("review", "pref_bureau", None),
        ("publish", "pref_bureau", None),
    ]
    trail = drive("quarterly_report", unit, "county_approver", start, steps)[1]
    assert trail == ["drafting", "submitted", "drafting", "submitted", "reviewed", "published"]


def test_quarterly_progress_against_county_targets():
    data = {"farm_product_sales": 3500 * 10**6, "premium_brands": 2, "work_relief_projects": 2}
    met = {p.target.code: p.met for p in progress(policy.load(2025), data)}
    assert met == {
        "work_relief_projects": True,
        "farm_product_sales": True,
        "premium_brands": False,
        "tourism_routes": False,
        "featured_villages": False,
        "collaboration_studies": False,
    }
