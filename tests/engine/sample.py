"""A small sample workflow and org tree, defined in the tests, that exercises the engine.

Grant request: a village applies → village notice (timer) → township review →
(county review when the amount is 100万 or more) → county departments countersign →
granted. Return and reject at each review; a resubmission goes back to the returner.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine import directory
from engine.definitions import SYSTEM, Countersign, Deadline, Field, Guard, Role, State, T, Workflow
from engine.machine import Registry
from engine.runtime import Runtime
from engine.store.models import OrgUnit, User
from tests.conftest import T0

ROLES = (
    Role("applicant", "申报人", "village"),
    Role("township_reviewer", "乡镇审核", "township"),
    Role("county_reviewer", "县级审核", "county", dept="agri"),
    Role("dept_reviewer", "部门审查", "county"),
    Role("auditor", "审计", "county", read_only=True),
    Role("villager", "村民", "village"),
)

PASSWORD = "secret-pass"
BIG = 100 * 1_000_000  # 100万元 in 分


def _amount_at_least(limit: int) -> Guard:
    return Guard(
        "amount_big", f"金额≥{limit // 1_000_000}万", lambda c: [] if c.data["amount"] >= limit else ["below"]
    )


HAS_PLAN = Guard("has_plan", "有实施方案", lambda c: [] if c.data.get("plan") else ["没有实施方案 (no plan)"])
HAS_TARGET = Guard(
    "has_target", "有绩效目标", lambda c: [] if c.data.get("target") else ["没有绩效目标 (no target)"]
)

GRANT = Workflow(
    key="grant",
    version=1,
    title="补助申请",
    start_role="applicant",
    supervisor_role="county_reviewer",
    title_field="name",
    start_fields=(
        Field("name", "名称"),
        Field("amount", "金额", kind="money", min_value=1),
        Field("plan", "实施方案", required=False),
        Field("target", "绩效目标", required=False),
        Field("depts", "部门", kind="multichoice", choices=("agri", "finance", "roads")),
    ),
    states=(
        State("draft", "拟定", actor="applicant", withdrawable=True),
        State("notice", "村内公示", timer=Deadline(days=10, on_expiry="notice_ended")),
        State(
            "township_review",
            "乡镇审核",
            actor="township_reviewer",
            checklist=(HAS_PLAN, HAS_TARGET),
            deadline=Deadline(working_days=5, remind=(2, 1), escalate_to="county_reviewer"),
        ),
        State("county_review", "县级审核", actor="county_reviewer"),
        State(
            "dept_review",
            "部门会签",
            actor="dept_reviewer",
            countersign=Countersign(parties=lambda ctx: ctx.data["depts"]),
        ),
        State("granted", "已批准", final=True),
        State("rejected", "不予批准", final=True),
    ),
    transitions=(
        T("submit", "draft", "notice", back_to_returner=True),
        T("notice_ended", "notice", "township_review", by=SYSTEM),
        T("object", "notice", "draft", by="villager", needs_comment=True),
        T("approve", "township_review", "county_review", guard=_amount_at_least(BIG), checked=True),
        T("approve", "township_review", "dept_review", otherwise=True, checked=True),
        T("approve", "county_review", "dept_review", fields=(Field("note", "意见", required=False),)),
        T("approve", "dept_review", "granted"),
        T("return", ("township_review", "county_review", "dept_review"), "draft", needs_comment=True),
        T("reject", ("township_review", "county_review", "dept_review"), "rejected", needs_comment=True),
    ),
    trigger_labels={"submit": "提交", "approve": "通过", "return": "退回", "reject": "不予批准"},
)


def make_runtime() -> Runtime:
    registry = Registry(ROLES)
    registry.register(GRANT)
    return Runtime(registry)


@dataclass
class World:
    """The sample org tree with one user per role; ``u`` maps a short name to a user."""

    units: dict[str, OrgUnit]
    u: dict[str, User]


def build_world(session) -> World:
    """province → county A (agri, finance, roads) → townships A1, A2 → villages; county B → B1 → b1v."""
    units: dict[str, OrgUnit] = {}

    def unit(code, kind, parent=None, dept=None):
        units[code] = directory.add_unit(
            session, code=code, name=code, kind=kind, now=T0, parent=units.get(parent), dept=dept
        )

    unit("prov", "province")
    for county in ("A", "B"):
        unit(county, "county", "prov")
        for dept in ("agri", "finance", "roads"):
            unit(f"{county}-{dept}", "department", county, dept=dept)
    for town, county in (("A1", "A"), ("A2", "A"), ("B1", "B")):
        unit(town, "township", county)
        unit(f"{town}v", "village", town)
    users: dict[str, User] = {}
    hashed = directory.hash_password(PASSWORD)

    def user(name, role, code):
        users[name] = directory.add_user(
            session, username=name, display_name=name, password_hash=hashed, now=T0
        )
        directory.grant(session, users[name], role, units[code], now=T0)

    user("applicant_a1", "applicant", "A1v")
    user("applicant_a2", "applicant", "A2v")
    user("villager_a1", "villager", "A1v")
    user("town_a1", "township_reviewer", "A1")
    user("town_a1_b", "township_reviewer", "A1")
    user("town_a2", "township_reviewer", "A2")
    user("town_b1", "township_reviewer", "B1")
    user("county_a", "county_reviewer", "A-agri")
    user("county_b", "county_reviewer", "B-agri")
    for dept in ("agri", "finance", "roads"):
        user(f"dept_{dept}", "dept_reviewer", f"A-{dept}")
    user("auditor_a", "auditor", "A")
    session.flush()
    return World(units, users)


def grant_form(amount_wan: str = "50", **over) -> dict:
    form = {
        "name": "牦牛养殖合作社",
        "amount": amount_wan,
        "plan": "方案",
        "target": "增收",
        "depts": ["agri", "finance"],
    }
    form.update(over)
    return form
