"""Excel import of proposals and plans: real .xlsx files, all or nothing, located errors, idempotent."""

from __future__ import annotations

from datetime import datetime

import pytest
from openpyxl.utils import get_column_letter
from sqlalchemy import func, select

from engine.store.models import Instance
from tests.conftest import T0
from tests.reports.conftest import read, xlsx
from workflows.demo import DEMO_VILLAGE, TO_LIBRARY, dept_code, project_form
from workflows.reports import exports, importer
from workflows.reports.importer import HELP_SHEET, ImportFailed, columns

GOOD = {
    "county": "泸定县",
    "township": "泸桥镇",
    "village": "团结村",
    "year": 2025,
    "name": "团结村高原蔬菜大棚",
    "category": "产业发展",
    "sectors": "",
    "content": "新建蔬菜大棚20个",
    "scale": "20个",
    "fund_central": 120.5,
    "fund_provincial": "30.000001",
    "period_start": datetime(2025, 6, 1),
    "period_end": "2026-06-30",
    "performance_target": "带动增收",
    "benefit_mechanism": "务工就业+入股分红",
    "households_exited": 25,
    "asset_ownership": "团结村股份经济合作社",
    "assessment": "可行",
    "negative_list_checked": "是",
    "related_to_consolidation": "是",
    "responsible_unit": "团结村村委会",
    "responsible_person": "扎西",
}


def sheet_rows(runtime, *rows, drop=()):
    cols = [c for c in columns(runtime) if c.key not in drop]
    return [[c.header for c in cols], *([r.get(c.key) for c in cols] for r in rows)]


def projects_file(runtime, *rows, drop=()):
    return xlsx({"项目申报": sheet_rows(runtime, *rows, drop=drop)})


def count(sessions, key="project_library"):
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(Instance).where(Instance.workflow_key == key))


def do_import(sessions, runtime, actor, data, who="applicant", fn=importer.import_projects):
    with sessions.begin() as s:
        return fn(s, runtime, actor(who), data, T0)


def test_template_has_the_headers_and_a_rule_per_column(runtime):
    data = importer.template(runtime, "projects")
    headers = read(data, "项目申报")[0]
    assert headers[:6] == ["县(市)", "乡镇", "村", "年度", "项目名称", "项目类别"]
    assert "中央衔接资金(万元)" in headers and "联农带农利益联结机制" in headers
    rules = read(data, HELP_SHEET)
    assert [r[0] for r in rules[1:]] == headers
    assert read(importer.template(runtime, "plan"), "年度计划")[0] == headers


def test_good_file_starts_drafts_through_the_runtime_and_again_creates_nothing(sessions, runtime, actor):
    second = {
        **GOOD,
        "name": "团结村入户道路硬化",
        "category": "乡村建设",
        "sectors": "交通、水利",
        "year": 2025.0,
        "fund_central": 100.0,
    }
    data = projects_file(runtime, GOOD, second)
    result = do_import(sessions, runtime, actor, data)
    assert len(result.created) == 2 and result.existing == []
    with sessions() as s:
        first = s.get(Instance, result.created[0])
        assert first.state == "draft" and first.title == "团结村高原蔬菜大棚"
        assert first.data["fund_central"] == 120_500_000
        assert first.data["fund_provincial"] == 30_000_001
        assert first.data["period_start"] == "2025-06-01"
        road = s.get(Instance, result.created[1]).data
        assert (road["sectors"], road["year"], road["fund_central"]) == (["交通", "水利"], 2025, 100 * 10**6)
    again = do_import(sessions, runtime, actor, data)
    assert again.created == [] and sorted(again.existing) == sorted(result.created)
    assert count(sessions) == 2


BAD_CELLS = {
    "amount finer than 1 分": ("fund_central", "12.3456789", "中央衔接资金(万元)", "精度"),
    "amount not a number": ("fund_provincial", "三十", "省级衔接资金(万元)", "不是有效金额"),
    "negative amount": ("fund_central", -5, "中央衔接资金(万元)", "不能小于"),
    "unknown county": ("county", "成都市", "县(市)", "未知的县"),
    "unknown township": ("township", "不存在镇", "乡镇", "无此乡镇"),
    "unknown village": ("village", "无名村", "村", "无此村"),
    "village outside the importer's scope": ("village", "幸福村", "村", "不在您的管辖范围"),
    "negative-list item": ("negative_list_hits", "交通工具及通讯设备", "自查涉及的负面清单事项", "负面清单"),
    "no benefit linkage": ("benefit_mechanism", None, "联农带农利益联结机制", "联农带农"),
    "unknown category": ("category", "旅游", "项目类别", "不在可选范围"),
    "bad date": ("period_start", "2025/13/01", "实施期限(起)", "日期格式"),
    "period ends before it starts": ("period_end", "2025-01-01", "实施期限(止)", "早于"),
    "missing name": ("name", None, "项目名称", "必填"),
    "self-check not done": ("negative_list_checked", "否", "已完成负面清单自查", "自查"),
}


@pytest.mark.parametrize("case", BAD_CELLS)
def test_one_bad_row_imports_nothing_and_names_sheet_row_column(sessions, runtime, actor, case):
    key, value, header, message = BAD_CELLS[case]
    bad = {**GOOD, "name": "团结村坏行", key: value}
    data = projects_file(runtime, GOOD, bad, {**GOOD, "name": "团结村第三行"})
    with pytest.raises(ImportFailed) as failed:
        do_import(sessions, runtime, actor, data)
    assert count(sessions) == 0
    errors = [e for e in failed.value.errors if e.header == header]
    assert errors, failed.value.errors
    error = errors[0]
    headers = sheet_rows(runtime)[0]
    letter = get_column_letter(headers.index(header) + 1)
    assert (error.sheet, error.row, error.column) == ("项目申报", 3, letter)
    assert message in error.message
    assert str(error).startswith(f"项目申报!{letter}3 [{header}]")


def test_every_bad_row_is_listed(sessions, runtime, actor):
    data = projects_file(
        runtime,
        {**GOOD, "fund_central": "x"},
        {**GOOD, "name": "第二", "county": "成都市"},
        {**GOOD, "name": "第三"},
        {**GOOD, "name": "第三"},
    )
    with pytest.raises(ImportFailed) as failed:
        do_import(sessions, runtime, actor, data)
    located = {(e.row, e.header) for e in failed.value.errors}
    assert located == {(2, "中央衔接资金(万元)"), (3, "县(市)"), (5, "项目名称")}
    assert "与第4行重复" in failed.value.errors[-1].message
    assert count(sessions) == 0


def test_missing_column_and_missing_sheet_are_refused(sessions, runtime, actor):
    with pytest.raises(ImportFailed) as failed:
        do_import(sessions, runtime, actor, projects_file(runtime, GOOD, drop=("benefit_mechanism",)))
    assert [(e.row, e.header, e.message) for e in failed.value.errors] == [
        (1, "联农带农利益联结机制", "缺少列 (column missing)")
    ]
    with pytest.raises(ImportFailed) as failed:
        do_import(sessions, runtime, actor, xlsx({"Sheet1": [["x"]]}))
    assert failed.value.errors[0].message == "缺少工作表 (sheet missing)"


def test_a_refusal_by_the_runtime_rolls_back_the_whole_file(sessions, runtime, actor):
    """The township reviewer sees 团结村 but may not start a project there: nothing remains."""
    data = projects_file(runtime, GOOD, {**GOOD, "name": "第二"})
    with pytest.raises(ImportFailed) as failed:
        do_import(sessions, runtime, actor, data, who="township")
    assert {e.row for e in failed.value.errors} == {2, 3}
    assert "系统拒绝" in failed.value.errors[0].message
    assert count(sessions) == 0


def test_export_then_import_round_trips(sessions, runtime, actor):
    """The library export is an import file: into the same database it duplicates nothing."""
    odd = {**GOOD, "name": "团结村公益性岗位", "category": "就业(公益性岗位)", "fund_central": "0.000001"}
    created = do_import(sessions, runtime, actor, projects_file(runtime, GOOD, odd)).created
    with sessions() as s:
        exported = exports.library(s, runtime, actor("applicant"))
        before = {i: s.get(Instance, i).data for i in created}
    again = do_import(sessions, runtime, actor, exported)
    assert again.created == [] and sorted(again.existing) == sorted(created)
    rows = read(exported, "项目申报")
    assert rows[0][0] == "编号" and rows[0][-3:] == ["合计(万元)", "状态", "优先安排"]
    assert [r[5] for r in rows[1:]] == ["团结村高原蔬菜大棚", "团结村公益性岗位"]
    with sessions() as s:
        assert {i: s.get(Instance, i).data for i in created} == before


REVIEWER = {"产业发展": "dept_agriculture", "以工代赈": "dept_development_reform"}


def _in_library(drive, names):
    def steps(category):
        return [(t, REVIEWER[category] if who == "dept_agriculture" else who, f) for t, who, f in TO_LIBRARY]

    return [
        drive("project_library", DEMO_VILLAGE, "applicant", project_form(n, c, wan), steps(c))[0]
        for n, c, wan in names
    ]


PLAN_PROJECTS = (("团结村茶叶加工厂", "产业发展", "300"), ("团结村以工代赈灌溉渠", "以工代赈", "100"))


def plan_row(name, category, wan):
    return {**GOOD, "name": name, "category": category, "fund_central": wan, "fund_provincial": None}


def test_plan_import_plans_library_projects_and_files_the_county_plan(sessions, runtime, actor, drive):
    ids = _in_library(drive, PLAN_PROJECTS)
    data = xlsx({"年度计划": sheet_rows(runtime, *(plan_row(*p) for p in PLAN_PROJECTS))})
    result = do_import(sessions, runtime, actor, data, who="county_approver", fn=importer.import_plan)
    with sessions() as s:
        assert [s.get(Instance, i).state for i in ids] == ["in_annual_plan"] * 2
        (filing,) = [s.get(Instance, i) for i in result.created]
        assert filing.workflow_key == "plan_filing" and filing.org_unit.code == dept_code(
            "513322", "agriculture"
        )
        assert filing.data["central_total"] == 400_000_000
        assert filing.data["central_work_relief"] == 100_000_000
        assert filing.data["central_industry"] == 300_000_000
        assert filing.data["provincial_total"] == 0
        exported = exports.annual_plan(s, runtime, actor("county_approver"), 2025)
    assert [r[5] for r in read(exported, "年度计划")[1:]] == [p[0] for p in PLAN_PROJECTS]
    assert read(exported, "汇总")[1][:3] == ["泸定县", 2, 400]
    again = do_import(sessions, runtime, actor, exported, who="county_approver", fn=importer.import_plan)
    assert again.created == [] and again.existing == result.created
    assert count(sessions, "plan_filing") == 1


def test_plan_refuses_a_project_not_in_the_library(sessions, runtime, actor, drive):
    _in_library(drive, PLAN_PROJECTS[:1])
    rows = [plan_row(*PLAN_PROJECTS[0]), plan_row("团结村未入库项目", "产业发展", "10")]
    data = xlsx({"年度计划": sheet_rows(runtime, *rows)})
    with pytest.raises(ImportFailed) as failed:
        do_import(sessions, runtime, actor, data, who="county_approver", fn=importer.import_plan)
    assert [(e.row, e.header) for e in failed.value.errors] == [(3, "项目名称")]
    assert "未入库" in failed.value.errors[0].message
    assert count(sessions, "plan_filing") == 0
    with sessions() as s:
        assert s.scalar(select(func.count()).where(Instance.state == "in_annual_plan")) == 0


def test_a_file_that_is_not_xlsx_is_refused_whole():
    from workflows.reports.importer import ImportFailed, open_workbook

    with pytest.raises(ImportFailed) as refused:
        open_workbook(b"name,amount\n\xe7\x89\x9b,1\n")
    assert [e.message for e in refused.value.errors] == ["不是有效的 Excel (.xlsx) 文件 (not an .xlsx file)"]
