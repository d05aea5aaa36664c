"""Demo data (演示数据): the Ganzi org tree, one user per role, calendars and live instances.

``seed(session, now)`` builds 四川省 → 甘孜州 (with its departments) → the 18 counties (each
with its departments), townships and villages in several counties, the demo users of
docs/demo-users.md, the 2025 and 2026 working-day calendars, and projects in every state
of ``project_library`` plus delivery and disposal instances, some overdue. Every instance
is driven through the real :class:`~engine.runtime.Runtime` (start/fire), never written
directly. Township and village names are illustrative, not an official gazetteer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from engine import directory
from engine.deadlines import load_year
from engine.runtime import Runtime
from engine.scope import Actor, load_actor
from engine.store.models import Instance, OrgUnit, User
from workflows import asset_disposal, build_runtime, project_library
from workflows.roles import (
    ADMIN,
    AUDITOR,
    COUNTY_APPROVER,
    COUNTY_DEPARTMENT_REVIEWER,
    COUNTY_FINANCE,
    DEPARTMENTS,
    EXPERT,
    PREFECTURE_BUREAU,
    PREFECTURE_SUPERVISOR,
    PROVINCE,
    TOWNSHIP_REVIEWER,
    VILLAGE_APPLICANT,
    VILLAGE_COMMITTEE,
    VILLAGE_PARTY_BRANCH,
    VILLAGER,
)

PASSWORD = "shuangti-demo"
"""The one password of every demo user (documented in docs/demo-users.md)."""

PROVINCE_UNIT = ("510000", "四川省")
PREFECTURE_UNIT = ("513300", "甘孜州")
COUNTIES: tuple[tuple[str, str], ...] = (
    ("513301", "康定市"),
    ("513322", "泸定县"),
    ("513323", "丹巴县"),
    ("513324", "九龙县"),
    ("513325", "雅江县"),
    ("513326", "道孚县"),
    ("513327", "炉霍县"),
    ("513328", "甘孜县"),
    ("513329", "新龙县"),
    ("513330", "德格县"),
    ("513331", "白玉县"),
    ("513332", "石渠县"),
    ("513333", "色达县"),
    ("513334", "理塘县"),
    ("513335", "巴塘县"),
    ("513336", "乡城县"),
    ("513337", "稻城县"),
    ("513338", "得荣县"),
)
"""The 18 counties (县/市) of 甘孜州 with their administrative division codes."""

TOWNSHIPS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "513322": (("泸桥镇", ("团结村", "幸福村")), ("冷碛镇", ("红旗村",))),
    "513301": (("姑咱镇", ("新华村",)),),
    "513334": (("高城镇", ("德西村",)),),
    "513337": (("桑堆镇", ("吉乙村",)),),
}
"""Townships and villages of the demo counties (illustrative names)."""

DEMO_COUNTY = "513322"
DEMO_TOWNSHIP = "51332201"
DEMO_VILLAGE = "51332201001"
OTHER_TOWNSHIP = "51332202"
OTHER_VILLAGE = "51332202001"


def dept_code(unit_code: str, dept: str) -> str:
    """The org unit code of department ``dept`` under the county or prefecture ``unit_code``."""
    return f"{unit_code}-{dept}"


def build_org(session, now: datetime, counties: tuple[tuple[str, str], ...] = COUNTIES) -> dict[str, OrgUnit]:
    """The org tree; returns every unit by its code."""
    units: dict[str, OrgUnit] = {}

    def add(code: str, name: str, kind: str, parent: str | None, dept: str | None = None) -> OrgUnit:
        units[code] = directory.add_unit(
            session,
            code=code,
            name=name,
            kind=kind,
            now=now,
            parent=units.get(parent) if parent else None,
            dept=dept,
        )
        return units[code]

    def departments(code: str, level_name: str) -> None:
        for dept, label in DEPARTMENTS.items():
            add(dept_code(code, dept), f"{level_name}{label}", "department", code, dept)

    add(*PROVINCE_UNIT, "province", None)
    add(*PREFECTURE_UNIT, "prefecture", PROVINCE_UNIT[0])
    departments(PREFECTURE_UNIT[0], "州")
    for code, name in counties:
        add(code, name, "county", PREFECTURE_UNIT[0])
        departments(code, name)
        for t, (township, villages) in enumerate(TOWNSHIPS.get(code, ()), start=1):
            tcode = f"{code}{t:02d}"
            add(tcode, township, "township", code)
            for v, village in enumerate(villages, start=1):
                add(f"{tcode}{v:03d}", village, "village", tcode)
    return units


PEOPLE: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("admin", "系统管理员", ((ADMIN, PROVINCE_UNIT[0]),)),
    ("province", "省级论证员", ((PROVINCE, PROVINCE_UNIT[0]),)),
    ("pref_bureau", "州农牧农村局", ((PREFECTURE_BUREAU, dept_code(PREFECTURE_UNIT[0], "agriculture")),)),
    (
        "pref_supervisor",
        "州交通运输局监管",
        ((PREFECTURE_SUPERVISOR, dept_code(PREFECTURE_UNIT[0], "transport")),),
    ),
    ("expert", "第三方专家", ((EXPERT, PREFECTURE_UNIT[0]),)),
    ("auditor", "泸定县审计", ((AUDITOR, DEMO_COUNTY),)),
    ("county_approver", "泸定县农牧农村局", ((COUNTY_APPROVER, dept_code(DEMO_COUNTY, "agriculture")),)),
    (
        "county_finance",
        "泸定县财政局",
        (
            (COUNTY_FINANCE, dept_code(DEMO_COUNTY, "finance")),
            (COUNTY_APPROVER, dept_code(DEMO_COUNTY, "finance")),
        ),
    ),
    *(
        (f"dept_{dept}", f"泸定县{label}", ((COUNTY_DEPARTMENT_REVIEWER, dept_code(DEMO_COUNTY, dept)),))
        for dept, label in DEPARTMENTS.items()
    ),
    ("township", "泸桥镇审核", ((TOWNSHIP_REVIEWER, DEMO_TOWNSHIP),)),
    ("township_other", "冷碛镇审核", ((TOWNSHIP_REVIEWER, OTHER_TOWNSHIP),)),
    ("applicant", "团结村两委", ((VILLAGE_APPLICANT, DEMO_VILLAGE),)),
    ("applicant_other", "红旗村两委", ((VILLAGE_APPLICANT, OTHER_VILLAGE),)),
    ("villager", "团结村村民", ((VILLAGER, DEMO_VILLAGE),)),
    ("party_branch", "团结村党支部", ((VILLAGE_PARTY_BRANCH, DEMO_VILLAGE),)),
    ("village_committee", "团结村村委会", ((VILLAGE_COMMITTEE, DEMO_VILLAGE),)),
)
"""Demo users: (username, display name, ((role, org unit code), ...))."""


def add_people(session, units: dict[str, OrgUnit], now: datetime, password_hash: str) -> dict[str, User]:
    """The demo users of :data:`PEOPLE`, all with the one pre-hashed password."""
    users: dict[str, User] = {}
    for username, display, grants in PEOPLE:
        user = directory.add_user(
            session, username=username, display_name=display, password_hash=password_hash, now=now
        )
        for role, code in grants:
            directory.grant(session, user, role, units[code], now=now)
        users[username] = user
    return users


@dataclass
class World:
    """The seeded org tree and users, by code and by username."""

    units: dict[str, OrgUnit]
    users: dict[str, User]


def build_world(session, now: datetime, counties: tuple[tuple[str, str], ...] = COUNTIES) -> World:
    """Calendars, org tree and demo users (no instances)."""
    for year in (2025, 2026):
        load_year(session, year)
    units = build_org(session, now, counties)
    users = add_people(session, units, now, directory.hash_password(PASSWORD))
    session.flush()
    return World(units, users)


TOWNSHIP_OK = {f.name: True for f in project_library.TOWNSHIP_FIELDS}
DEPT_OK = {f.name: True for f in project_library.DEPARTMENT_FIELDS if f.kind == "bool"}
ASSESSED = {**DEPT_OK, "assessment": "县级行业部门评估论证: 可行"}
TO_TOWNSHIP = [("submit", "applicant", None), ("notice_ended", None, None)]
TO_DEPARTMENT = [*TO_TOWNSHIP, ("approve", "township", TOWNSHIP_OK)]
TO_COUNTY = [*TO_DEPARTMENT, ("approve", "dept_agriculture", ASSESSED)]
TO_NOTICE = [*TO_COUNTY, ("approve", "county_approver", None), ("approve", "county_finance", None)]
TO_LIBRARY = [*TO_NOTICE, ("notice_ended", None, None)]
BIG_TO_DEPARTMENT_DONE = [
    *TO_DEPARTMENT,
    ("approve", "dept_agriculture", DEPT_OK),
    ("approve", "dept_finance", DEPT_OK),
]

LIBRARY_PROJECTS: tuple[tuple[str, str, str, int, list], ...] = (
    ("团结村高原蔬菜大棚", "产业发展", "120", 1, []),
    ("团结村入户道路硬化", "乡村建设", "80", 3, [("submit", "applicant", None)]),
    ("团结村公益性岗位开发", "就业(公益性岗位)", "30", 30, TO_TOWNSHIP),
    ("团结村农田沟渠修复", "农田沟渠修复整治", "260", 30, TO_DEPARTMENT),
    ("泸桥镇牦牛产业园", "产业发展", "1500", 20, BIG_TO_DEPARTMENT_DONE),
    ("泸定县农产品冷链物流中心", "产业发展", "3200", 20, BIG_TO_DEPARTMENT_DONE),
    ("团结村以工代赈灌溉渠", "以工代赈", "450", 25, [*TO_TOWNSHIP, ("approve", "township", TOWNSHIP_OK)]),
    ("团结村到户养殖补助", "到户类", "60", 20, [*TO_DEPARTMENT, ("approve", "dept_agriculture", ASSESSED)]),
    ("团结村特色民宿改造", "产业发展", "200", 15, TO_NOTICE),
    ("团结村茶叶加工厂", "产业发展", "300", 40, TO_LIBRARY),
    ("团结村光伏村级电站", "产业发展", "350", 100, [*TO_LIBRARY, ("sweep_due", None, None)]),
    ("团结村核桃初加工", "产业发展", "90", 60, [*TO_LIBRARY, ("plan", "county_approver", None)]),
    ("团结村旧村委会办公楼改造", "产业发展", "70", 60, [*TO_LIBRARY, ("remove", "county_approver", None)]),
    ("团结村车辆购置", "产业发展", "40", 40, [*TO_TOWNSHIP, ("reject", "township", None)]),
)
"""(name, category, total 万元, days ago started, steps): one or more projects in every state."""

DELIVERY = (
    (
        "团结村牦牛圈舍",
        150,
        [
            ("start_work", "applicant", {"started_on": "2025-03-01"}),
            ("complete", "applicant", {"completed_on": "2025-04-01"}),
        ],
    ),
    ("团结村饮水管网", 20, [("start_work", "applicant", {"started_on": "2025-04-01"})]),
)
"""(name, days ago started, steps): the first is completed and overdue for settlement."""


def _drive(session, runtime, world, key, unit_code, starter, form, steps, start: datetime) -> Instance:
    inst = runtime.start(
        session,
        key,
        load_actor(session, world.users[starter].id, start),
        org_unit_id=world.units[unit_code].id,
        form=form,
        now=start,
    )
    wf = runtime.registry.get(key).workflow
    for i, (trigger, who, step_form) in enumerate(steps, start=1):
        at = start + timedelta(hours=i)
        actor = Actor.system() if who is None else load_actor(session, world.users[who].id, at)
        needs = any(t.needs_comment for t in wf.transitions_from(inst.state, trigger))
        runtime.fire(
            session, inst.id, trigger, actor, now=at, form=step_form, comment="演示: 理由" if needs else None
        )
    return inst


def project_form(name: str, category: str, total_wan: str) -> dict:
    return {
        "year": 2025,
        "name": name,
        "category": category,
        "sectors": ["交通"] if category == "乡村建设" else [],
        "content": f"{name}建设",
        "scale": "按实施方案",
        "fund_central": total_wan,
        "period_start": "2025-06-01",
        "period_end": "2026-06-30",
        "performance_target": "带动脱贫户、监测户增收",
        "benefit_mechanism": "务工就业+入股分红",
        "households_exited": 25,
        "asset_ownership": "团结村股份经济合作社",
        "negative_list_checked": True,
        "related_to_consolidation": True,
        "responsible_unit": "团结村村委会",
        "responsible_person": "扎西",
    }


def seed(session, now: datetime, runtime: Runtime | None = None) -> World:
    """The whole demo, driven through the runtime at ``now`` (instances start in the past)."""
    runtime = runtime or build_runtime()
    world = build_world(session, now)
    for name, category, total, days_ago, steps in LIBRARY_PROJECTS:
        form = project_form(name, category, total)
        _drive(
            session,
            runtime,
            world,
            "project_library",
            DEMO_VILLAGE,
            "applicant",
            form,
            steps,
            now - timedelta(days=days_ago),
        )
    for name, days_ago, steps in DELIVERY:
        form = {"year": 2025, "name": name, "project_size": "中小型"}
        _drive(
            session,
            runtime,
            world,
            "project_delivery",
            DEMO_VILLAGE,
            "applicant",
            form,
            steps,
            now - timedelta(days=days_ago),
        )
    disposal = {
        "year": 2025,
        "asset_name": "团结村旧冷库",
        "ledger_ref": "LD-2019-017",
        "ownership": "集体资产",
        "original_value": "80",
        "grounds": [asset_disposal.GROUNDS[0]],
        "method": "拍卖",
        "explanation": "设备老化, 持续亏损",
    }
    _drive(
        session,
        runtime,
        world,
        "asset_disposal",
        DEMO_VILLAGE,
        "applicant",
        disposal,
        [("submit", "applicant", None)],
        now - timedelta(days=5),
    )
    state_owned = {
        **disposal,
        "asset_name": "县道养护站旧车库",
        "ownership": "国有资产",
        "department": "transport",
    }
    _drive(
        session,
        runtime,
        world,
        "asset_disposal",
        DEMO_VILLAGE,
        "applicant",
        state_owned,
        [("submit", "applicant", None)],
        now - timedelta(days=3),
    )
    session.flush()
    return world
