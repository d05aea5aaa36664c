"""Industry share at the 59.99% / 60% boundary, and the ranking with ties, hand-computed."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.forms import wan_to_fen
from tests.reports.conftest import read, xlsx
from workflows import policy
from workflows.demo import DEMO_COUNTY, dept_code
from workflows.reports import industry, ranking
from workflows.reports.importer import ImportFailed

P = policy.load(2025)
WAN = 10**6


def filing(central_total, central_wr, central_industry, prov_total="100", prov_wr="0", prov_industry="50"):
    return {
        "year": 2025,
        "plan_summary": "年度计划",
        "central_total": central_total,
        "central_work_relief": central_wr,
        "central_industry": central_industry,
        "provincial_total": prov_total,
        "provincial_work_relief": prov_wr,
        "provincial_industry": prov_industry,
    }


@pytest.mark.parametrize(
    ("industry_wan", "shown", "passed"),
    [
        ("479.92", "59.99", False),
        ("480", "60.00", True),
        ("479.999999", "59.99", False),
        ("800", "100.00", True),
    ],
)
def test_central_share_boundary_excludes_work_relief(industry_wan, shown, passed):
    """Base = 1000万 − 200万 以工代赈 = 800万; 480万 is exactly 60%."""
    central, provincial = industry.shares(
        P,
        {
            k: wan_to_fen(v)
            for k, v in filing("1000", "200", industry_wan).items()
            if k != "plan_summary" and k != "year"
        },
    )
    assert (central.base, central.percent, central.passed) == (800 * WAN, Decimal(shown), passed)
    assert (provincial.percent, provincial.passed) == (Decimal("50.00"), True)


def test_no_base_is_not_applicable():
    (central, _) = industry.shares(P, {"central_total": 5 * WAN, "central_work_relief": 5 * WAN})
    assert (central.base, central.percent, central.passed) == (0, None, None)


def test_plan_totals_from_rows():
    rows = [
        {"category": "产业发展", "fund_central": 480 * WAN, "fund_provincial": 10 * WAN},
        {"category": "以工代赈", "fund_central": 200 * WAN},
        {"category": "乡村建设", "fund_central": 320 * WAN, "fund_provincial": 10 * WAN},
    ]
    assert industry.plan_totals(P, rows) == {
        "central_total": 1000 * WAN,
        "central_work_relief": 200 * WAN,
        "central_industry": 480 * WAN,
        "provincial_total": 20 * WAN,
        "provincial_work_relief": 0,
        "provincial_industry": 10 * WAN,
    }


def test_county_shares_from_filed_plans_scoped_and_exported(drive, sessions, actor):
    unit = dept_code(DEMO_COUNTY, "agriculture")
    drive("plan_filing", unit, "county_approver", filing("1000", "200", "479.92"), [])
    with sessions() as s:
        (county,) = industry.county_shares(s, actor("pref_bureau"), P)
        assert industry.county_shares(s, actor("township"), P) == []
    assert (county.county, county.passed) == ("泸定县", False)
    table = read(industry.workbook(P, [county]), "产业发展资金占比")
    assert tuple(table[0]) == industry.HEADERS
    assert table[1][2:] == ["中央", 1000, 200, 800, Decimal("479.92"), Decimal("59.99"), 60, "未达标"]
    assert table[2][2:] == ["省级", 100, 0, 100, 50, 50, 50, "达标"]


def ranked(scores):
    return [
        (r.rank, r.county, r.adjustment // WAN if r.adjustment % WAN == 0 else r.adjustment)
        for r in ranking.rank(P, {k: Decimal(v) for k, v in scores.items()})
    ]


def test_ranking_without_ties():
    scores = {"A县": "90", "B县": "80", "C县": "70", "D县": "60", "E县": "50", "F县": "40", "G县": "30"}
    assert ranked(scores) == [
        (1, "A县", 300),
        (2, "B县", 200),
        (3, "C县", 100),
        (4, "D县", 0),
        (5, "E县", -100),
        (6, "F县", -200),
        (7, "G县", -300),
    ]


def test_ties_share_rank_and_the_amounts_of_their_positions():
    scores = {"A县": "90", "B县": "90", "C县": "70.5", "D县": "70.5", "E县": "50", "F县": "40", "G县": "40"}
    assert ranked(scores) == [
        (1, "A县", 250),
        (1, "B县", 250),
        (3, "C县", 50),
        (3, "D县", 50),
        (5, "E县", -100),
        (6, "F县", -250),
        (6, "G县", -250),
    ]


def test_an_indivisible_share_gives_the_remainder_fen_by_name():
    """Six counties; 3rd–5th tied: (100 − 100 − 200)万 / 3 = −66.666666…万."""
    scores = {"A县": "9", "B县": "8", "C县": "7", "D县": "7", "E县": "7", "F县": "1"}
    result = ranked(scores)
    assert result == [
        (1, "A县", 300),
        (2, "B县", 200),
        (3, "C县", -66_666_666),
        (3, "D县", -66_666_667),
        (3, "E县", -66_666_667),
        (6, "F县", -300),
    ]
    assert sum(r.adjustment for r in ranking.rank(P, {k: Decimal(v) for k, v in scores.items()})) == 0


def test_too_few_counties_are_refused():
    with pytest.raises(ValueError, match="too few"):
        ranking.rank(P, {c: Decimal(1) for c in "ABCDE"})


def test_scores_workbook_to_report_and_next_years_allocation(sessions, world, actor):
    data = xlsx(
        {
            "考评得分": [("县(市)", "得分"), ("泸定县", 88.5), ("康定市", "90")],
            "资金基数": [("县(市)", "金额(万元)"), ("泸定县", "1000")],
        }
    )
    with sessions() as s:
        scores, base = ranking.load(s, actor("pref_bureau"), data)
    assert scores == {"泸定县": Decimal("88.5"), "康定市": Decimal("90")}
    assert base == {"泸定县": 1000 * WAN}
    more = {**scores, **{f"{c}县": Decimal(i) for i, c in enumerate("ABCD")}}
    out = ranking.rank(P, more)
    book = ranking.workbook(out, base)
    assert read(book, "考评排名")[:3] == [
        ["名次", "县(市)", "得分", "奖惩(万元)", "说明"],
        [1, "康定市", 90, 300, "奖励"],
        [2, "泸定县", Decimal("88.5"), 200, "奖励"],
    ]
    assert read(book, "下年度资金调整")[2] == ["泸定县", 1000, 200, 1200]
    assert read(book, "下年度资金调整")[-1] == ["A县", 0, -300, -300]


def test_bad_scores_are_located(sessions, world, actor):
    data = xlsx({"考评得分": [("县(市)", "得分"), ("泸定县", "九十"), ("成都市", 1), ("泸定县", 2)]})
    with sessions() as s, pytest.raises(ImportFailed) as failed:
        ranking.load(s, actor("county_approver"), data)
    assert [(e.row, e.column, e.header) for e in failed.value.errors] == [
        (2, "B", "得分"),
        (3, "A", "县(市)"),
        (4, "B", "得分"),
    ]
