"""Collaboration targets from quarterly reports (hand-computed), the 通报, exports and the CLI."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine import directory
from tests.conftest import T0
from tests.reports.conftest import read
from tests.reports.test_import import GOOD, projects_file
from web import cli
from workflows import policy
from workflows.demo import DEMO_COUNTY, DEMO_VILLAGE, dept_code, project_form
from workflows.reports import exports, targets
from workflows.roles import COUNTY_APPROVER

P = policy.load(2025)
LUDING = {
    "work_relief_projects": 2,
    "farm_product_sales": "3500",
    "premium_brands": 1,
    "tourism_routes": 1,
    "collaboration_studies": 1,
    "zhejiang_enterprises": 5,
    "actual_investment": "12000.5",
    "rural_workers_employed": 300,
}
KANGDING = {
    "work_relief_projects": 1,
    "farm_product_sales": "3499.999999",
    "premium_brands": 3,
    "tourism_routes": 2,
    "featured_villages": 1,
    "collaboration_studies": 1,
    "zhejiang_enterprises": 4,
    "actual_investment": "100",
    "rural_workers_employed": 48,
}
REVIEWED = [("submit", "county_approver", None), ("review", "pref_bureau", None)]


@pytest.fixture
def reports(sessions, world, drive):
    with sessions.begin() as s:
        user = directory.add_user(
            s, username="kd_approver", display_name="康定市农牧农村局", password_hash="x", now=T0
        )
        directory.grant(
            s, user, COUNTY_APPROVER, directory.unit_by_code(s, dept_code("513301", "agriculture")), now=T0
        )
    world.users["kd_approver"] = user
    luding, kangding = dept_code(DEMO_COUNTY, "agriculture"), dept_code("513301", "agriculture")
    drive("quarterly_report", luding, "county_approver", {"year": 2025, "quarter": "2", **LUDING}, REVIEWED)
    drive(
        "quarterly_report",
        luding,
        "county_approver",
        {"year": 2025, "quarter": "1", "zhejiang_enterprises": 99},
        REVIEWED,
    )
    kd_steps = [
        ("submit", "kd_approver", None),
        ("review", "pref_bureau", None),
        ("publish", "pref_bureau", None),
    ]
    drive("quarterly_report", kangding, "kd_approver", {"year": 2025, "quarter": "2", **KANGDING}, kd_steps)
    drive(
        "quarterly_report",
        kangding,
        "kd_approver",
        {"year": 2025, "quarter": "2", "zhejiang_enterprises": 50},
        [],
    )


def by_code(items):
    return {i.target.code: i for i in items}


def test_progress_per_county_and_prefecture(sessions, actor, reports):
    with sessions() as s:
        b = targets.bulletin(s, actor("pref_bureau"), P, 2)
    assert [c.county for c in b.counties] == ["康定市", "泸定县"]
    kd, ld = (by_code(c.items) for c in b.counties)
    assert (ld["farm_product_sales"].value, ld["farm_product_sales"].met) == (3500 * 10**6, True)
    assert (kd["farm_product_sales"].value, kd["farm_product_sales"].met) == (3_499_999_999, False)
    assert kd["farm_product_sales"].percent == Decimal("99.99")
    assert (ld["featured_villages"].value, ld["featured_villages"].met) == (0, False)
    pref = by_code(b.prefecture)
    assert (pref["zhejiang_enterprises"].value, pref["zhejiang_enterprises"].percent) == (9, Decimal("50.00"))
    assert pref["actual_investment"].value == 12100_500_000
    assert pref["actual_investment"].percent == Decimal("30.25")
    totals = by_code(b.county_totals)
    assert (totals["work_relief_projects"].counties_met, totals["work_relief_projects"].counties) == (1, 2)
    assert (totals["premium_brands"].counties_met, totals["tourism_routes"].counties_met) == (1, 2)


def test_a_county_sees_only_itself_and_an_unreported_county_is_marked(sessions, actor, reports):
    with sessions() as s:
        (only,) = targets.bulletin(s, actor("county_approver"), P, 2).counties
        assert only.county == "泸定县"
        b = targets.bulletin(s, actor("pref_bureau"), P, 3)
    assert all(c.report_id is None and all(i.met is None for i in c.items) for c in b.counties)


def test_bulletin_excel_and_html(sessions, actor, reports):
    with sessions() as s:
        b = targets.bulletin(s, actor("pref_bureau"), P, 2)
    table = read(targets.workbook(b), "分县进度")
    assert table[0] == ["县(市)", "指标", "单位", "目标", "完成", "完成率(%)", "是否达标"]
    assert [
        "康定市",
        "采购和帮助销售本地区农副产品",
        "万元",
        "≥3500",
        Decimal("3499.999999"),
        Decimal("99.99"),
        "未达标",
    ] in table
    pref = read(targets.workbook(b), "全州进度")
    assert ["新增浙江结对地区来州投资企业", "户", "≥18", 9, 50, "未达标", None] in pref
    assert ["精品品牌", "个", "≥3/县", 4, None, None, "1/2"] in pref
    page = targets.html(b, T0)
    assert "2025年第2季度东西部协作帮扶工作通报" in page and "3499.999999" in page and "1–2" in page
    assert "<script" not in page


def test_exports_are_scoped_and_the_ledger_has_its_columns(sessions, runtime, actor, drive, world):
    from tests.workflows.test_delivery_filing_report import DELIVERY_ROUTES

    form, steps, _ = DELIVERY_ROUTES["settled, handed over, registered and routed"]
    drive("project_delivery", DEMO_VILLAGE, "applicant", form, steps[:5])
    with sessions() as s:
        ledger = read(exports.ledger(s, runtime, actor("pref_bureau")), "资产台账")
        hidden = read(exports.ledger(s, runtime, actor("township_other")), "资产台账")
    assert ledger[0][:10] == [
        "编号",
        "县(市)",
        "乡镇",
        "村",
        "项目名称",
        "个数",
        "原值(万元)",
        "权属",
        "类别",
        "资产类型",
    ]
    assert ledger[1][1:10] == [
        "泸定县",
        "泸桥镇",
        "团结村",
        "团结村牦牛养殖圈舍",
        1,
        100,
        "村集体",
        "村组道路",
        "公益性",
    ]
    assert hidden == [ledger[0]]


def test_audit_export_of_an_instance_and_of_a_county_period(sessions, runtime, actor, drive):
    form = project_form("团结村审计测试", "产业发展", "10")
    iid, _ = drive("project_library", DEMO_VILLAGE, "applicant", form, [("submit", "applicant", None)])
    with sessions() as s:
        one = read(exports.audit(s, runtime, actor("township"), instance_id=iid), "审计记录")
        county = exports.audit(
            s,
            runtime,
            actor("pref_bureau"),
            county=directory.unit_by_code(s, DEMO_COUNTY),
            start=T0.date(),
            end=T0.date(),
        )
        other = read(exports.audit(s, runtime, actor("township_other"), county=None), "审计记录")
        later = read(
            exports.audit(s, runtime, actor("pref_bureau"), start=T0.date().replace(day=7)), "审计记录"
        )
    assert one[0] == list(exports.AUDIT_HEADERS)
    assert [(r[4], r[8], r[9]) for r in one[1:]] == [
        ("start", None, "村级申报"),
        ("提交", "村级申报", "村内公示"),
    ]
    assert one[1][0] == "2025-05-06 09:00:00" and one[1][5] == "团结村两委"
    assert len(read(county, "审计记录")) == 3
    assert other == [one[0]] and later == [one[0]]


def test_cli_template_import_and_report(db_url, world, runtime, tmp_path, capsys):
    template = tmp_path / "t.xlsx"
    assert cli.main(["template", "projects", "--out", str(template)]) == 0
    assert read(template.read_bytes(), "项目申报")[0][:3] == ["县(市)", "乡镇", "村"]
    good, bad = tmp_path / "good.xlsx", tmp_path / "bad.xlsx"
    good.write_bytes(projects_file(runtime, GOOD))
    bad.write_bytes(projects_file(runtime, {**GOOD, "name": "坏", "county": "成都市"}))
    args = ["--db", db_url, "import", "projects"]
    assert cli.main([*args, str(good), "--as", "applicant"]) == 0
    assert cli.main([*args, str(good), "--as", "applicant"]) == 0
    assert cli.main([*args, str(bad), "--as", "applicant"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-4:] == [
        "imported: 1 new, 0 already present",
        "imported: 0 new, 1 already present",
        "nothing imported: 1 error(s)",
        "  项目申报!A2 [县(市)]: 未知的县(市): 成都市 (unknown county)",
    ]
    export = tmp_path / "library.xlsx"
    assert cli.main(["--db", db_url, "report", "library", "--as", "township", "--out", str(export)]) == 0
    assert [r[5] for r in read(export.read_bytes(), "项目申报")[1:]] == [GOOD["name"]]
