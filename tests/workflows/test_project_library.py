"""项目入库 golden paths: each route with its expected trail of states, plus guards and scope."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from engine.errors import Forbidden, GuardFailed, NotFound, NotPossible
from engine.store.models import DeadlineRow, Instance, Task
from tests.conftest import T0
from workflows import policy
from workflows.demo import DEMO_VILLAGE
from workflows.project_library import (
    DEPARTMENT_FIELDS,
    ENTRY_GATE,
    TOWNSHIP_FIELDS,
    departments_for,
    priorities,
)

TOWNSHIP_OK = {f.name: True for f in TOWNSHIP_FIELDS}
DEPT_OK = {f.name: True for f in DEPARTMENT_FIELDS if f.kind == "bool"}
ASSESSED = {**DEPT_OK, "assessment": "县农牧农村局组织评估论证: 可行"}
PREF_ASSESSED = {"assessment": "州农牧农村局组织评估: 可行"}


def project_form(total_wan: str = "100", **over) -> dict:
    form = {
        "year": 2025,
        "name": "团结村牦牛养殖合作社",
        "category": "产业发展",
        "content": "新建牦牛养殖圈舍",
        "scale": "圈舍2000平方米",
        "fund_central": total_wan,
        "period_start": "2025-06-01",
        "period_end": "2025-12-31",
        "performance_target": "带动脱贫户增收",
        "benefit_mechanism": "入股分红",
        "households_exited": 30,
        "asset_ownership": "团结村股份经济合作社",
        "negative_list_checked": True,
        "related_to_consolidation": True,
        "responsible_unit": "团结村村委会",
        "responsible_person": "扎西",
    }
    form.update(over)
    return form


TO_TOWNSHIP = [("submit", "applicant", None), ("notice_ended", None, None)]
TOWNSHIP_PASS = [("approve", "township", TOWNSHIP_OK)]
COUNTY_PASS = [
    ("approve", "county_approver", None),
    ("approve", "county_finance", None),
    ("notice_ended", None, None),
]
NOTICE_TRAIL = ["draft", "village_notice", "township_review", "department_review"]
COUNTY_TRAIL = ["county_approval", "county_approval", "county_notice", "in_library"]
"""Arrive at 县审定, 农牧农村 signs, 财政 signs (→ 县级公告), the notice ends (→ 已入库)."""

ROUTES = {
    "499万 is approved at county level": (
        project_form("499"),
        [*TO_TOWNSHIP, *TOWNSHIP_PASS, ("approve", "dept_agriculture", ASSESSED), *COUNTY_PASS],
        [*NOTICE_TRAIL, *COUNTY_TRAIL],
    ),
    "500万 adds 财政 and goes to the prefecture": (
        project_form("500"),
        [
            *TO_TOWNSHIP,
            *TOWNSHIP_PASS,
            ("approve", "dept_agriculture", DEPT_OK),
            ("approve", "dept_finance", DEPT_OK),
            ("approve", "pref_bureau", PREF_ASSESSED),
            *COUNTY_PASS,
        ],
        [*NOTICE_TRAIL, "department_review", "prefecture_assessment", *COUNTY_TRAIL],
    ),
    "3000万 stays with the prefecture": (
        project_form("1000", fund_provincial="1500", fund_east_west="500"),
        [
            *TO_TOWNSHIP,
            *TOWNSHIP_PASS,
            ("approve", "dept_agriculture", DEPT_OK),
            ("approve", "dept_finance", DEPT_OK),
        ],
        [*NOTICE_TRAIL, "department_review", "prefecture_assessment"],
    ),
    "3001万 is reported to the province": (
        project_form("3001"),
        [
            *TO_TOWNSHIP,
            *TOWNSHIP_PASS,
            ("approve", "dept_agriculture", DEPT_OK),
            ("approve", "dept_finance", DEPT_OK),
            ("approve", "province", PREF_ASSESSED),
            *COUNTY_PASS,
            ("plan", "county_approver", None),
        ],
        [
            *NOTICE_TRAIL,
            "department_review",
            "province_assessment",
            *COUNTY_TRAIL,
            "in_annual_plan",
        ],
    ),
    "roads and water get a countersign of 交通运输 and 水利": (
        project_form("200", category="乡村建设", sectors=["交通", "水利"]),
        [
            *TO_TOWNSHIP,
            *TOWNSHIP_PASS,
            ("approve", "dept_transport", DEPT_OK),
            ("approve", "dept_water", ASSESSED),
        ],
        [*NOTICE_TRAIL, "department_review", "county_approval"],
    ),
    "objection in the village notice returns it to draft": (
        project_form(),
        [
            ("submit", "applicant", None),
            ("object", "villager", None),
            ("submit", "applicant", {"scale": "圈舍1800平方米"}),
        ],
        ["draft", "village_notice", "draft", "village_notice"],
    ),
    "objection in the county notice returns it to county approval": (
        project_form(),
        [
            *TO_TOWNSHIP,
            *TOWNSHIP_PASS,
            ("approve", "dept_agriculture", ASSESSED),
            *COUNTY_PASS[:2],
            ("object", "villager", None),
        ],
        [*NOTICE_TRAIL, "county_approval", "county_approval", "county_notice", "county_approval"],
    ),
    "returned by the township, revised and resubmitted": (
        project_form(),
        [
            *TO_TOWNSHIP,
            ("return", "township", None),
            ("submit", "applicant", {"benefit_mechanism": "务工+分红"}),
        ],
        ["draft", "village_notice", "township_review", "draft", "village_notice"],
    ),
    "returned by a department": (
        project_form("600"),
        [
            *TO_TOWNSHIP,
            *TOWNSHIP_PASS,
            ("approve", "dept_agriculture", DEPT_OK),
            ("return", "dept_finance", None),
        ],
        [*NOTICE_TRAIL, "department_review", "draft"],
    ),
    "rejected by the prefecture": (
        project_form("800"),
        [
            *TO_TOWNSHIP,
            *TOWNSHIP_PASS,
            ("approve", "dept_agriculture", DEPT_OK),
            ("approve", "dept_finance", DEPT_OK),
            ("reject", "pref_bureau", None),
        ],
        [*NOTICE_TRAIL, "department_review", "prefecture_assessment", "rejected"],
    ),
    "rejected at county approval": (
        project_form(),
        [
            *TO_TOWNSHIP,
            *TOWNSHIP_PASS,
            ("approve", "dept_agriculture", ASSESSED),
            ("reject", "county_finance", None),
        ],
        [*NOTICE_TRAIL, "county_approval", "rejected"],
    ),
    "the sweep removes a project idle for two years": (
        project_form(),
        [
            *TO_TOWNSHIP,
            *TOWNSHIP_PASS,
            ("approve", "dept_agriculture", ASSESSED),
            *COUNTY_PASS,
            ("sweep_due", None, None),
            ("confirm_removal", "county_approver", None),
        ],
        [*NOTICE_TRAIL, *COUNTY_TRAIL, "sweep_review", "removed"],
    ),
    "kept at the sweep, later removed as unrelated": (
        project_form(),
        [
            *TO_TOWNSHIP,
            *TOWNSHIP_PASS,
            ("approve", "dept_agriculture", ASSESSED),
            *COUNTY_PASS,
            ("sweep_due", None, None),
            ("keep", "county_approver", None),
            ("remove", "county_approver", None),
        ],
        [*NOTICE_TRAIL, *COUNTY_TRAIL, "sweep_review", "in_library", "removed"],
    ),
}


@pytest.mark.parametrize("name", ROUTES)
def test_route(name, drive, sessions):
    form, steps, expected = ROUTES[name]
    iid, trail = drive("project_library", DEMO_VILLAGE, "applicant", form, steps)
    assert trail == expected
    with sessions() as s:
        inst = s.get(Instance, iid)
        open_tasks = s.scalars(select(Task).where(Task.instance_id == iid, Task.status == "open")).all()
        if inst.state in ("rejected", "removed", "in_annual_plan"):
            assert inst.status == "completed" and open_tasks == []


def _fire(runtime, sessions, actor, iid, trigger, who, form=None, comment=None):
    with sessions.begin() as s:
        return runtime.fire(s, iid, trigger, actor(who), now=T0, form=form, comment=comment)


def test_village_notice_runs_ten_days_by_itself(drive, sessions):
    iid, _ = drive(
        "project_library", DEMO_VILLAGE, "applicant", project_form(), [("submit", "applicant", None)]
    )
    with sessions() as s:
        timer = s.scalars(
            select(DeadlineRow).where(DeadlineRow.instance_id == iid, DeadlineRow.kind == "timer")
        ).one()
    assert timer.trigger == "notice_ended"
    assert timer.due_at.isoformat() == "2025-05-16T15:59:59+00:00"  # 10 days, 23:59:59 Asia/Shanghai


def test_township_must_confirm_every_checklist_item(drive, runtime, sessions, actor):
    iid, _ = drive("project_library", DEMO_VILLAGE, "applicant", project_form(), TO_TOWNSHIP)
    with pytest.raises(GuardFailed) as refused:
        _fire(runtime, sessions, actor, iid, "approve", "township", {"chk_genuine": True})
    assert len(refused.value.reasons) == 7 and any("投资概算" in r for r in refused.value.reasons)


def test_household_projects_get_their_technical_review(drive, runtime, sessions, actor):
    form = project_form(category="到户类")
    iid, _ = drive("project_library", DEMO_VILLAGE, "applicant", form, [*TO_TOWNSHIP, *TOWNSHIP_PASS])
    with pytest.raises(GuardFailed) as refused:
        _fire(
            runtime,
            sessions,
            actor,
            iid,
            "approve",
            "dept_agriculture",
            {"chk_compliant": True, "chk_land_use": True},
        )
    assert [r.split(": ", 1)[1] for r in refused.value.reasons] == [
        "未确认: 激发内生动力 (not confirmed)",
        "未确认: 避免简单发钱发物 (not confirmed)",
    ]


def test_entry_gate_holds_at_county_approval(drive, runtime, sessions, actor):
    form = project_form(negative_list_hits=["vehicles_telecom"], performance_target="")
    iid, _ = drive(
        "project_library",
        DEMO_VILLAGE,
        "applicant",
        form,
        [*TO_TOWNSHIP, *TOWNSHIP_PASS, ("approve", "dept_agriculture", DEPT_OK)],
    )
    with pytest.raises(GuardFailed) as refused:
        _fire(runtime, sessions, actor, iid, "approve", "county_approver")
    assert refused.value.reasons == [
        "不属于负面清单: 属于负面清单: 交通工具及通讯设备 (vehicles and communication equipment)",
        "设置绩效目标: 未设置绩效目标 (no performance targets)",
        "开展评估论证: 未开展评估论证 (no assessment)",
    ]
    with sessions() as s:
        inst = s.get(Instance, iid)
        failing = [c.name for c in runtime.checklist(s, inst, T0) if c.reasons]
    assert failing == ["not_on_negative_list", "has_performance_targets", "has_assessment"]


@pytest.mark.parametrize(
    ("steps", "enforced"),
    [
        (TO_TOWNSHIP, []),
        ([*TO_TOWNSHIP, *TOWNSHIP_PASS], ["department_checks"]),
        (
            [*TO_TOWNSHIP, *TOWNSHIP_PASS, ("approve", "dept_agriculture", DEPT_OK)],
            [g.name for g in ENTRY_GATE],
        ),
    ],
    ids=["township_review", "department_review", "county_approval"],
)
def test_entry_gate_is_shown_at_every_review_step_and_enforced_at_county_approval(
    drive, runtime, sessions, steps, enforced
):
    iid, _ = drive("project_library", DEMO_VILLAGE, "applicant", project_form(performance_target=""), steps)
    with sessions() as s:
        items = runtime.checklist(s, s.get(Instance, iid), T0)
    shown = {c.name: c.enforced for c in items}
    assert {g.name for g in ENTRY_GATE} <= set(shown)
    assert sorted(n for n, e in shown.items() if e) == sorted(enforced)
    assert next(c for c in items if c.name == "has_performance_targets").reasons


def test_submit_needs_funds(runtime, sessions, actor, world):
    with sessions.begin() as s:
        inst = runtime.start(
            s,
            "project_library",
            actor("applicant"),
            org_unit_id=world.units[DEMO_VILLAGE].id,
            form=project_form("0"),
            now=T0,
        )
    with pytest.raises(GuardFailed, match="计划投入资金为零"):
        _fire(runtime, sessions, actor, inst.id, "submit", "applicant")


def test_scope_other_township_sees_nothing_villager_cannot_review(drive, runtime, sessions, actor):
    iid, _ = drive("project_library", DEMO_VILLAGE, "applicant", project_form(), TO_TOWNSHIP)
    with pytest.raises(NotFound):
        _fire(runtime, sessions, actor, iid, "approve", "township_other", TOWNSHIP_OK)
    with pytest.raises(Forbidden):
        _fire(runtime, sessions, actor, iid, "approve", "villager", TOWNSHIP_OK)
    with pytest.raises(Forbidden):
        _fire(runtime, sessions, actor, iid, "return", "auditor", comment="审计")


@pytest.mark.parametrize(
    ("total_wan", "category", "sectors", "expected"),
    [
        ("499.999999", "产业发展", [], ["agriculture"]),
        ("500", "产业发展", [], ["agriculture", "finance"]),
        ("100", "就业(公益性岗位)", [], ["human_resources"]),
        ("100", "以工代赈", [], ["development_reform"]),
        ("100", "巩固三保障", ["住房"], ["housing"]),
        ("100", "乡村建设", ["农文旅"], ["culture_tourism"]),
        ("100", "项目管理费", [], ["agriculture"]),
    ],
)
def test_departments_for_category(total_wan, category, sectors, expected):
    from engine.forms import wan_to_fen

    data = {"year": 2025, "category": category, "sectors": sectors, "fund_county": wan_to_fen(total_wan)}
    assert departments_for(data) == expected


def test_cumulative_enterprise_basis_is_pluggable(monkeypatch):
    original = policy.load
    monkeypatch.setattr(
        policy, "load", lambda year: replace(original(year), amount_basis="cumulative_enterprise")
    )
    data = {
        "year": 2025,
        "category": "产业发展",
        "fund_county": 300_000_000,
        "enterprise_prior_investment": 200_000_000,
    }
    assert departments_for(data) == ["agriculture", "finance"]


def test_priorities():
    assert priorities({"category": "以工代赈", "households_exited": 3, "benefit_mechanism": "务工"}) == [
        "以工代赈",
        "联农带农",
    ]
    assert priorities({"category": "产业发展", "households_exited": 0, "benefit_mechanism": "分红"}) == []


def test_withdraw_a_submission_until_the_next_step_acts(runtime, drive, sessions, actor):
    """撤回: the applicant during the village notice; the township until a department has signed."""
    iid, _ = drive(
        "project_library", DEMO_VILLAGE, "applicant", project_form(), [("submit", "applicant", None)]
    )
    with sessions.begin() as s:
        assert runtime.withdraw(s, iid, actor("applicant"), T0, comment="补充材料").state == "draft"
    iid, _ = drive(
        "project_library", DEMO_VILLAGE, "applicant", project_form(), [*TO_TOWNSHIP, *TOWNSHIP_PASS]
    )
    with sessions.begin() as s:
        assert runtime.withdraw(s, iid, actor("township"), T0).state == "township_review"
    _fire(runtime, sessions, actor, iid, "approve", "township", form=TOWNSHIP_OK)
    with sessions() as s:
        first_dept = s.scalars(
            select(Task).where(Task.instance_id == iid, Task.status == "open").order_by(Task.id)
        ).first()
    with sessions.begin() as s:
        runtime.claim(s, first_dept.id, actor(f"dept_{first_dept.party}"), T0)
    with sessions.begin() as s, pytest.raises(NotPossible, match="too late to withdraw"):
        runtime.withdraw(s, iid, actor("township"), T0)
