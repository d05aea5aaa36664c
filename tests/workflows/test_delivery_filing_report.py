"""Golden paths of project_delivery, plan_filing and quarterly_report, with their guards."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.errors import GuardFailed
from engine.store.models import DeadlineRow
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
            ("acknowledge", "township", None),
            ("acknowledge", "applicant", None),
        ],
        [
            *("planned", "implementing", "completed", "settled", "handed_over"),
            *("registered", "registered", "registered"),
            *("township_feedback", "village_feedback", "in_operation"),
        ],
    ),
    "large project extended six months": (
        {**DELIVERY_START, "project_size": "大型"},
        [
            *TO_COMPLETED,
            ("request_extension", "applicant", {"extension_reason": "审计决算未完成"}),
            ("approve_extension", "county_finance", None),
            ("settle", "applicant", SETTLE),
        ],
        ["planned", "implementing", "completed", "extension_review", "extended_large", "settled"],
    ),
    "small project extended two months": (
        DELIVERY_START,
        [
            *TO_COMPLETED,
            ("request_extension", "applicant", {"extension_reason": "结算资料补正"}),
            ("approve_extension", "county_finance", None),
        ],
        ["planned", "implementing", "completed", "extension_review", "extended_small"],
    ),
    "extension refused": (
        DELIVERY_START,
        [
            *TO_COMPLETED,
            ("request_extension", "applicant", {"extension_reason": "人手不足"}),
            ("refuse_extension", "county_finance", None),
        ],
        ["planned", "implementing", "completed", "extension_review", "completed"],
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
            ("list_issues", "expert", {"issues": "3个项目未开展评估论证"}),
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
