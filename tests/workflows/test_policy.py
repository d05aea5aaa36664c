"""Policy data: the 2025 numbers load exactly; a malformed file is refused naming the field."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from workflows import policy
from workflows.policy import PolicyError, load_file, parse
from workflows.project_library import departments_for

RAW_2025 = (policy.HERE / "2025.toml").read_text(encoding="utf-8")


def test_2025_numbers_load_exactly():
    p = policy.load(2025)
    assert (p.prefecture_assessment_min, p.province_assessment_above) == (500 * 10**6, 3000 * 10**6)
    assert [(m.month, m.percent) for m in p.milestones] == [
        (4, Decimal(33)),
        (6, Decimal(50)),
        (7, Decimal(59)),
        (9, Decimal(75)),
        (10, Decimal(84)),
        (12, Decimal(100)),
    ]
    assert (p.industry_share_central, p.industry_share_provincial) == (Decimal(60), Decimal(50))
    assert (p.village_notice_days, p.settlement_months, p.handover_days) == (10, 3, 30)
    assert (p.extension_months_small, p.extension_months_large, p.retention_max_percent) == (2, 6, Decimal(3))
    assert (p.sweep_years, p.sweep_by.month, p.sweep_by.day) == (2, 8, 31)
    assert (p.filing_review_by.month, p.filing_review_by.day) == (10, 31)
    assert p.ranking_deductions == (300 * 10**6, 200 * 10**6, 100 * 10**6)
    assert p.representatives_present_min == Fraction(2, 3)
    assert all(i.text and i.source and i.since <= 2025 for i in p.negative_list)
    targets = {t.code: t for t in p.collaboration_targets}
    assert targets["actual_investment"].minimum == 40000 * 10**6  # 4亿元 in 分
    assert targets["rural_workers_employed"].minimum == 848
    assert (targets["tourism_routes"].minimum, targets["tourism_routes"].maximum) == (1, 2)
    assert p.departments_by_category["以工代赈"] == ("development_reform",)


def _broken(old: str, new: str) -> dict:
    assert old in RAW_2025, old
    return tomllib.loads(RAW_2025.replace(old, new, 1))


@pytest.mark.parametrize(
    ("old", "new", "fault"),
    [
        (
            "industry_share_central_percent = 60",
            "industry_share_central_percent = 60.0",
            "filing.industry_share_central_percent: write 60.0",
        ),
        (
            "industry_share_central_percent = 60",
            "industry_share_central_percent = 160",
            "a percentage must lie in 0–100",
        ),
        ("settlement_months = 3\n", "", "delivery.settlement_months: missing"),
        (
            '"以工代赈" = ["development_reform"]',
            '"以工代赈" = ["planning"]',
            "departments.by_category.以工代赈: unknown department code 'planning'",
        ),
        (
            "{ month = 12, percent = 100 }",
            "{ month = 12, percent = 99 }",
            "spending.milestones[5].percent: the last milestone must be 100",
        ),
        (
            "{ month = 7, percent = 59 }",
            "{ month = 7, percent = 49 }",
            "spending.milestones[2]: months must rise",
        ),
        ('sweep_by = "08-31"', 'sweep_by = "08-32"', "library.sweep_by: must be a date 'MM-DD'"),
        (
            "prefecture_assessment_min_wan = 500",
            'prefecture_assessment_min_wan = "500.0000001"',
            "exact to 1 分",
        ),
        (
            "province_assessment_above_wan = 3000",
            "province_assessment_above_wan = 300",
            "must not be below prefecture_assessment_min_wan",
        ),
        (
            'representatives_present_min = "2/3"',
            'representatives_present_min = "3/2"',
            "deliberation.representatives_present_min",
        ),
        (
            'amount_basis = "project_total"',
            'amount_basis = "by_feel"',
            "library.amount_basis: must be one of",
        ),
        ("since = 2017\n", "since = 2030\n", "negative_list[6].since: applies from 2030"),
        (
            'code = "staff_housing"',
            'code = "company_losses"',
            "negative_list: duplicate code 'company_losses'",
        ),
        ('unit = "户"', 'unit = "吨"', "collaboration_targets[0].unit"),
    ],
)
def test_a_bad_field_is_named(old, new, fault):
    with pytest.raises(PolicyError) as refused:
        parse(_broken(old, new), "2025.toml")
    assert any(fault in f for f in refused.value.faults), refused.value.faults
    assert all(f.startswith("2025.toml: ") for f in refused.value.faults)


def test_file_name_must_match_year(tmp_path):
    path = tmp_path / "2026.toml"
    path.write_text(RAW_2025, encoding="utf-8")
    with pytest.raises(PolicyError, match=r"2026\.toml: year: 2025 does not match the file name"):
        load_file(path)


def test_invalid_toml_is_refused(tmp_path):
    path = tmp_path / "2025.toml"
    path.write_text("year = = 2025", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"2025\.toml: not valid TOML"):
        load_file(path)


def test_unknown_year_is_refused():
    with pytest.raises(PolicyError, match="no policy for 1999"):
        policy.load(1999)


def test_a_county_may_set_its_own_review_departments():
    raw = tomllib.loads((Path(policy.__file__).parent / "2025.toml").read_text())
    raw["departments"]["by_county"] = {"513322": {"产业发展": ["agriculture", "commerce"]}}
    own = policy.parse(raw, "2025.toml")
    assert own.category_departments("产业发展", "513322") == ("agriculture", "commerce")
    assert own.category_departments("产业发展", "513301") == ("agriculture",)
    assert own.category_departments("以工代赈", "513322") == ("development_reform",)
    raw["departments"]["by_county"] = {"513322": {"不存在的类别": ["agriculture"], "产业发展": ["nobody"]}}
    with pytest.raises(policy.PolicyError) as err:
        policy.parse(raw, "2025.toml")
    assert "departments.by_county.513322.不存在的类别" in str(err.value)
    assert "unknown department code 'nobody'" in str(err.value)
    assert departments_for({"year": 2025, "category": "产业发展", "total": 1}) == ["agriculture"]
