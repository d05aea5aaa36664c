"""The Ganzi roles and department codes (角色与部门代码).

Org unit kinds: province → prefecture → county → township → village, and ``department``
units under a county or the prefecture. A department unit carries one of the ASCII
codes of :data:`DEPARTMENTS` in ``OrgUnit.dept``; the Chinese name is its label.
A role with ``dept`` is held at that department of the unit of its ``level``.
"""

from __future__ import annotations

from engine.definitions import Role

DEPARTMENTS: dict[str, str] = {
    "agriculture": "农牧农村",
    "finance": "财政",
    "development_reform": "发展改革",
    "transport": "交通运输",
    "water": "水利",
    "housing": "住建",
    "human_resources": "人社",
    "culture_tourism": "文广旅",
    "commerce": "商务",
    "organisation": "组织部",
}
"""Department code → Chinese name, the same set at county and prefecture level."""

VILLAGE_APPLICANT = "village_applicant"
VILLAGER = "villager"
VILLAGE_PARTY_BRANCH = "village_party_branch"
VILLAGE_COMMITTEE = "village_committee"
TOWNSHIP_REVIEWER = "township_reviewer"
COUNTY_DEPARTMENT_REVIEWER = "county_department_reviewer"
COUNTY_APPROVER = "county_approver"
COUNTY_FINANCE = "county_finance"
PREFECTURE_BUREAU = "prefecture_bureau"
PREFECTURE_SUPERVISOR = "prefecture_supervisor"
PROVINCE = "province_reviewer"
EXPERT = "third_party_expert"
AUDITOR = "auditor"
ADMIN = "admin"

ROLES: tuple[Role, ...] = (
    Role(VILLAGE_APPLICANT, "村级申报(村两委/驻村工作队)", "village"),
    Role(VILLAGER, "村民", "village"),
    Role(VILLAGE_PARTY_BRANCH, "村党组织", "village"),
    Role(VILLAGE_COMMITTEE, "村民委员会", "village"),
    Role(TOWNSHIP_REVIEWER, "乡镇审核", "township"),
    Role(COUNTY_DEPARTMENT_REVIEWER, "县级行业部门审查", "county"),
    Role(COUNTY_APPROVER, "县级审定(县农牧农村局)", "county", dept="agriculture"),
    Role(COUNTY_FINANCE, "县财政局", "county", dept="finance"),
    Role(PREFECTURE_BUREAU, "州农牧农村局", "prefecture", dept="agriculture"),
    Role(PREFECTURE_SUPERVISOR, "州级行业部门监管", "prefecture"),
    Role(PROVINCE, "省级提级论证", "province"),
    Role(EXPERT, "第三方专家(人才库)", "prefecture"),
    Role(AUDITOR, "审计/纪检(只读)", "county", read_only=True),
    Role(ADMIN, "系统管理员", "province"),
)
