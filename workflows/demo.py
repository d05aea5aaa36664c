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
from datetime import datetime

from engine import directory
from engine.deadlines import load_year
from engine.store.models import OrgUnit, User
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
