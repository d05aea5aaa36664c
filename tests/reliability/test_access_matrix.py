"""Access matrix: every endpoint of the route table × every role × objects in and out of sight.

The rule (docs/reliability.md, "Access control"), in this order:
anonymous → a page redirects to /login (302), the API answers 401;
a role with no entry to an area (administration, a start form it cannot use) → 403, whatever the object;
an object outside the actor's org scope → 404, exactly like one that does not exist;
in sight → reads 200, actions reach the engine, whose rules decide (200/201/302/403/409/422).
A refused action changes nothing; a list, dashboard or export never holds anything out of sight.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from engine.store.models import Task
from tests.reliability.access_world import ADMINS, PROJECTS, ROLES, World, browser, fingerprint, world

__all__ = ["world"]

ENGINE = frozenset({200, 201, 302, 403, 409, 422})
"""In sight and allowed in: the engine decides (covered action by action in tests/web and tests/engine)."""
REFUSED = frozenset({401, 403, 404, 422})
MISSING = 10**7
SIGHT = {
    "village": {"LQ"},
    "township": {"LQ"},
    "other_township": {"LC"},
    "county": {"LQ", "LC"},
    "auditor": {"LQ", "LC"},
    "other_county": {"KD"},
    "prefecture": {"LQ", "LC", "KD"},
    "county_admin": {"LQ", "LC"},
    "admin": {"LQ", "LC", "KD"},
}
"""Which of the three projects each role sees (泸桥镇, 冷碛镇 of 泸定县; 姑咱镇 of 康定市)."""
COUNTY_SIGHT = {"county": {"LD"}, "auditor": {"LD"}, "county_admin": {"LD"}, "other_county": {"KD"}}
COUNTY_SIGHT |= {"prefecture": {"LD", "KD"}, "admin": {"LD", "KD"}}
COUNTIES = {"LD": ("513322", "泸定县"), "KD": ("513301", "康定市")}
COUNTY_OF = {"LQ": "LD", "LC": "LD", "KD": "KD"}
TOWNSHIP_OF = {"LQ": ("51332201", "泸桥镇"), "LC": ("51332202", "冷碛镇"), "KD": ("51330101", "姑咱镇")}
WORKS = {"township": {"LQ"}, "other_township": {"LC"}}
"""Whose queue holds which project's open task (each waits at its township's review)."""
STARTERS = frozenset({"village"})
OBJECTS = {
    "inst": ("LQ", "LC", "KD", "missing"),
    "task": ("LQ", "LC", "KD", "missing", "mismatch"),
    "unit": ("LQ", "LC", "KD"),
    "county": ("LD", "KD", "missing"),
    "note": ("township", "township_other"),
    "target": ("near", "far", "missing"),
}
"""Object kinds: projects (and their task, attachment), a task under another project's URL, villages
to start at, counties, a township officer's notification, users an administrator acts on."""
TARGET_UNIT = {"spare_ld_a": "51332202", "spare_ld_b": "51332202", "spare_kd": "51330101"}


@dataclass(frozen=True)
class Rule:
    """One way to call an endpoint and what it answers when allowed."""

    path: str
    method: str = "GET"
    objects: str | None = None
    ok: int | frozenset[int] = 200
    right: frozenset[str] | None = None
    anon: int | None = None
    data: tuple[tuple[str, str], ...] = ()
    shows: str | None = None
    hidden: int = 404
    fresh: bool = False

    @property
    def api(self) -> bool:
        return self.path.startswith("/api/")


def _get(path: str, **kw) -> Rule:
    return Rule(path, **kw)


def _post(path: str, ok=ENGINE, **kw) -> Rule:
    return Rule(path, "POST", ok=ok, **kw)


TASK_ACTIONS = ("claim", "unclaim", "reassign", "delegate", "hand_back", "urge")
INSTANCE_ACTIONS = ("withdraw", "suspend", "resume", "add_signer", "remove_signer")
COUNTY_Q = "?county={county}"
TARGET_FORM = (("user_id", "{user}"), ("org_unit_id", "{unit}"), ("role", "villager"))
SUBSTITUTE_FORM = (
    ("user_id", "{user}"),
    ("substitute_id", "{other}"),
    ("starts_at", "2025-05-07T09:00"),
    ("ends_at", "2025-05-08T09:00"),
)

ACCESS: dict[str, tuple[Rule, ...]] = {
    "static": (_get("/static/style.css", anon=200),),
    "index": (_get("/", anon=302, ok=302),),
    "auth.login": (
        _get("/login", anon=200),
        _post("/login", ok=401, anon=401, data=(("username", "nobody"), ("password", "wrong-password"))),
    ),
    "auth.logout": (_post("/logout", ok=302, fresh=True),),
    "set_language": (_post("/lang", ok=302, anon=302, data=(("lang", "zh"),)),),
    "tasks.queue": (
        _get("/tasks/", shows="work"),
        _get("/tasks/?org={t_LC}", shows="work"),
        _get("/tasks/?org={t_KD}&overdue=1&due_days=30", shows="none"),
    ),
    "tasks.claim": (_post("/tasks/{task}/claim", objects="inst"),),
    "tasks.unclaim": (_post("/tasks/{task}/unclaim", objects="inst"),),
    "tasks.bulk": (
        _post("/tasks/bulk", objects="inst", ok=200, hidden=200, data=(("item", "{inst}:approve"),)),
    ),
    "instances.index": (
        _get("/instances/", shows="sight"),
        _get("/instances/?workflow=project_library&page=1", shows="sight"),
    ),
    "instances.show": (_get("/instances/{inst}", objects="inst"),),
    "instances.diagram": (_get("/instances/{inst}/diagram.svg", objects="inst"),),
    "instances.attachment": (_get("/instances/{inst}/attachments/{sha}", objects="inst"),),
    "instances.audit_csv": (_get("/instances/{inst}/audit.csv", objects="inst"),),
    "instances.audit_xlsx": (_get("/instances/{inst}/audit.xlsx", objects="inst"),),
    "instances.fire": (_post("/instances/{inst}/fire", objects="inst", data=(("trigger", "approve"),)),),
    "instances.start_list": (_get("/start/", shows="none"),),
    "instances.start": (
        _get("/start/project_library", right=STARTERS, shows="none"),
        _post("/start/project_library", objects="unit", data=(("org_unit_id", "{unit}"),)),
    ),
    **{
        f"approvals.{name}": (_post(f"/instances/{{inst}}/tasks/{{task}}/{name}", objects="task"),)
        for name in TASK_ACTIONS
    },
    **{
        f"approvals.{name}": (_post(f"/instances/{{inst}}/{name}", objects="inst"),)
        for name in INSTANCE_ACTIONS
    },
    "messages.inbox": (_get("/messages/", shows="none"),),
    "messages.read": (_post("/messages/{note}/read", ok=302, objects="note"),),
    "messages.read_all": (_post("/messages/read-all", ok=302),),
    "dashboards.deadlines": (_get("/dashboards/deadlines", shows="none"),),
    "reports.index": (_get("/reports/", shows="none"),),
    "reports.library_xlsx": (
        _get("/reports/library.xlsx", shows="none"),
        _get("/reports/library.xlsx" + COUNTY_Q, objects="county", shows="none"),
    ),
    "reports.plan_xlsx": (
        _get("/reports/plan.xlsx", shows="none"),
        _get("/reports/plan.xlsx" + COUNTY_Q, objects="county", shows="none"),
    ),
    "reports.ledger_xlsx": (
        _get("/reports/ledger.xlsx", shows="none"),
        _get("/reports/ledger.xlsx" + COUNTY_Q, objects="county", shows="none"),
    ),
    "reports.audit_xlsx": (
        _get("/reports/audit.xlsx?instance={inst}", objects="inst", shows="none"),
        _get("/reports/audit.xlsx" + COUNTY_Q, objects="county", shows="none"),
    ),
    "reports.industry_xlsx": (_get("/reports/industry.xlsx", shows="none"),),
    "reports.targets_html": (_get("/reports/targets?quarter=1", shows="none"),),
    "reports.targets_xlsx": (_get("/reports/targets.xlsx?quarter=1", shows="none"),),
    "reports.spending_dashboard": (_get("/reports/spending", shows="none"),),
    "reports.library_dashboard": (
        _get("/reports/library", shows="none"),
        _get("/reports/library" + COUNTY_Q, objects="county", shows="none"),
    ),
    "reports.ledger_dashboard": (
        _get("/reports/ledger", shows="none"),
        _get("/reports/ledger" + COUNTY_Q, objects="county", shows="none"),
    ),
    "reports.spending_xlsx": (_post("/reports/spending.xlsx", ok=422),),
    "reports.ranking_xlsx": (_post("/reports/ranking.xlsx", ok=422),),
    "reports.template": (_get("/import/template/projects.xlsx"),),
    "reports.import_file": (_post("/import/projects", ok=422),),
    "admin.index": (_get("/admin/", right=ADMINS, shows="none"),),
    "admin.workflows": (_get("/admin/workflows", right=ADMINS),),
    "admin.workflow": (_get("/admin/workflows/project_library/1", right=ADMINS),),
    "admin.workflow_diagram": (_get("/admin/workflows/project_library/1/diagram.svg", right=ADMINS),),
    "admin.add_user": (_post("/admin/users", ok=422, right=ADMINS),),
    "admin.add_unit": (_post("/admin/units", ok=422, right=ADMINS),),
    "admin.grant": (_post("/admin/memberships", objects="target", right=ADMINS, data=TARGET_FORM),),
    "admin.add_substitute": (
        _post("/admin/substitutes", objects="target", right=ADMINS, data=SUBSTITUTE_FORM),
    ),
    "admin.revoke": (_post("/admin/memberships/{membership}/revoke", objects="target", right=ADMINS),),
    "admin.deactivate": (_post("/admin/users/{user}/deactivate", objects="target", right=ADMINS),),
    "admin.end_substitute": (_post("/admin/substitutes/{substitute}/end", objects="target", right=ADMINS),),
    "admin.issue_token": (_post("/admin/users/{user}/token", objects="target", right=ADMINS),),
    "api.openapi": (_get("/api/v1/openapi.json", anon=200),),
    "api.tasks": (
        _get("/api/v1/tasks", shows="work"),
        _get("/api/v1/tasks?workflow=project_library", shows="work"),
    ),
    "api.start": (
        _post(
            "/api/v1/instances",
            objects="unit",
            data=(("workflow", "project_library"), ("org_unit_id", "{unit}")),
        ),
    ),
    "api.instance": (_get("/api/v1/instances/{inst}", objects="inst"),),
    "api.audit_trail": (_get("/api/v1/instances/{inst}/audit", objects="inst"),),
    "api.diagram": (_get("/api/v1/instances/{inst}/diagram.svg", objects="inst"),),
    "api.fire": (_post("/api/v1/instances/{inst}/fire", objects="inst", data=(("trigger", "approve"),)),),
    **{f"api.{name}": (_post(f"/api/v1/tasks/{{task}}/{name}", objects="inst"),) for name in TASK_ACTIONS},
    **{
        f"api.{name}": (_post(f"/api/v1/instances/{{inst}}/{name}", objects="inst"),)
        for name in INSTANCE_ACTIONS
    },
}
"""Endpoint → the ways the matrix calls it. A new endpoint must be added here (the first test says so)."""


@dataclass(frozen=True)
class Case:
    endpoint: str
    rule: Rule
    role: str
    obj: str | None
    expected: int | frozenset[int]

    @property
    def hidden(self) -> bool:
        return self.obj is not None and not visible(self.role, self.rule.objects, self.obj)

    def __str__(self) -> str:
        return f"{self.endpoint} {self.rule.method} {self.rule.path} as {self.role} on {self.obj}"


def visible(role: str, kind: str, obj: str) -> bool:
    if kind in ("inst", "task", "unit"):
        return obj in SIGHT.get(role, ())
    if kind == "county":
        return obj in COUNTY_SIGHT.get(role, ())
    if kind == "note":
        return ROLES[role] == obj
    return obj == "near" or (obj == "far" and role == "admin")


def expected(rule: Rule, role: str, obj: str | None) -> int | frozenset[int]:
    if role == "anonymous":
        return rule.anon if rule.anon is not None else (401 if rule.api else 302)
    if rule.right is not None and role not in rule.right:
        return 403
    if obj is not None and not visible(role, rule.objects, obj):
        return rule.hidden
    return rule.ok


def objects(rule: Rule) -> tuple[str | None, ...]:
    """The objects a rule is tried on; a write skips a missing id (reads already show it equals out of sight)."""
    if rule.objects is None:
        return (None,)
    return tuple(o for o in OBJECTS[rule.objects] if rule.method == "GET" or o != "missing")


def cases() -> Iterator[Case]:
    for endpoint, rules in ACCESS.items():
        for rule in rules:
            for role in ROLES:
                for obj in objects(rule):
                    yield Case(endpoint, rule, role, obj, expected(rule, role, obj))


def values(w: World, case: Case) -> dict[str, object]:
    """The ids that fill the case's path and form."""
    found: dict[str, object] = {f"t_{k}": w.units[code] for k, (code, _name) in TOWNSHIP_OF.items()}
    kind, obj = case.rule.objects, case.obj
    if kind in ("inst", "task"):
        key = "LQ" if obj == "mismatch" else obj
        found["inst"] = w.instances.get(key, MISSING)
        found["task"] = w.tasks["KD" if obj == "mismatch" else key] if obj != "missing" else MISSING
        found["sha"] = w.attachments.get(key, "0" * 64)
    elif kind == "unit":
        found["unit"] = w.units[PROJECTS[obj][0]]
    elif kind == "county":
        found["county"] = COUNTIES[obj][0] if obj in COUNTIES else "999999"
    elif kind == "note":
        found["note"] = w.notes[obj]
    elif kind == "target":
        name = {"near": "spare_ld_a" if case.role == "county_admin" else "spare_ld_b", "far": "spare_kd"}.get(
            obj
        )
        other = "spare_ld_a" if name == "spare_ld_b" else "spare_ld_b"
        found |= {
            "user": w.users[name] if name else MISSING,
            "other": w.users[other],
            "unit": w.units[TARGET_UNIT[name]] if name else MISSING,
            "membership": w.memberships[f"{name}:expert"] if name else MISSING,
            "substitute": w.substitutes[name] if name else MISSING,
        }
    return found


class Caller:
    """Sends cases: pages through a logged-in browser per role, the API with each role's bearer token."""

    def __init__(self, w: World):
        self.world = w
        self.browsers = {role: browser(w, role) for role in ROLES}

    def send(self, case: Case):
        rule, ids = case.rule, values(self.world, case)
        path = rule.path.format(**ids)
        data = {k: v.format(**ids) for k, v in rule.data}
        if rule.api:
            client = self.world.app.test_client()
            token = self.world.tokens.get(case.role)
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            if rule.method == "GET":
                return client.get(path, headers=headers)
            body = {k: int(v) if v.isdigit() else v for k, v in data.items()}
            return client.post(path, json=body or None, headers=headers)
        if not rule.fresh:
            b = self.browsers[case.role]
            return b.client.get(path) if rule.method == "GET" else b.post(path, data)
        response = browser(self.world, case.role).post(path, data)
        self.browsers[case.role] = browser(self.world, case.role)  # logout ended the role's other sessions
        return response


def status_ok(case: Case, response) -> bool:
    """The expected status; an anonymous page's 302 must lead to the login page."""
    if isinstance(case.expected, frozenset):
        return response.status_code in case.expected
    if case.role == "anonymous" and case.rule.anon is None and response.status_code == 302:
        return response.location.split("?")[0] == "/login"
    return response.status_code == case.expected


def text_of(response) -> str:
    """The body as text: JSON without escapes, every XML part of an .xlsx, else the decoded bytes."""
    if response.mimetype == "application/json":
        return json.dumps(response.get_json(), ensure_ascii=False)
    data = response.get_data()
    if data[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(data)) as book:
            return "".join(book.read(n).decode() for n in book.namelist() if n.endswith(".xml"))
    return data.decode("utf-8", "replace")


def hidden_markers(role: str) -> set[str]:
    """Titles and townships of projects the role must not see; counties where it sees nothing."""
    unseen = PROJECTS.keys() - SIGHT[role]
    seen_counties = {COUNTY_OF[k] for k in SIGHT[role]}
    return (
        {PROJECTS[k][2] for k in unseen}
        | {TOWNSHIP_OF[k][1] for k in unseen}
        | {name for c, (_code, name) in COUNTIES.items() if c not in seen_counties}
    )


def content_faults(case: Case, response) -> list[str]:
    rule = case.rule
    if response.status_code != 200 or case.role == "anonymous" or not (rule.shows or rule.objects):
        return []
    text = text_of(response)
    faults = [f"{case}: shows {m!r}" for m in sorted(hidden_markers(case.role)) if m in text]
    must = {"sight": SIGHT[case.role], "work": WORKS.get(case.role, set())}.get(rule.shows, set())
    faults += [f"{case}: lacks {PROJECTS[k][2]!r}" for k in sorted(must) if PROJECTS[k][2] not in text]
    return faults


def run(w: World, chosen: list[Case]) -> list[str]:
    if "caller" not in w.cache:
        w.cache["caller"] = Caller(w)
    caller, faults = w.cache["caller"], []
    for case in chosen:
        r = caller.send(case)
        if not status_ok(case, r):
            faults.append(f"{case}: expected {case.expected}, got {r.status_code} {r.location or ''}")
        faults += content_faults(case, r)
    return faults


def refusal(case: Case) -> bool:
    """A write the rule refuses (or a batch item out of sight): it must change nothing."""
    return case.rule.method != "GET" and (case.role == "anonymous" or case.hidden or case.expected in REFUSED)


def test_every_endpoint_and_method_has_an_access_rule(world):
    """The route table and ACCESS agree: a new endpoint (or method) fails here, by name."""
    table = {r.endpoint: r.methods - {"HEAD", "OPTIONS"} for r in world.app.url_map.iter_rules()}
    assert not table.keys() - ACCESS.keys(), "\n".join(
        f"no access rule for endpoint {e}" for e in sorted(table.keys() - ACCESS.keys())
    )
    assert not ACCESS.keys() - table.keys(), (
        f"rules for endpoints that no longer exist: {ACCESS.keys() - table.keys()}"
    )
    adapter = world.app.url_map.bind("localhost")
    for endpoint, rules in ACCESS.items():
        assert {r.method for r in rules} == table[endpoint], f"methods of {endpoint}: {table[endpoint]}"
        for rule in rules:
            sample = re.sub(r"\{(\w+)\}", "1", rule.path).split("?")[0]
            assert adapter.match(sample, method=rule.method)[0] == endpoint, rule.path


def test_reads_follow_the_rule_and_never_show_what_is_out_of_sight(world):
    """Every GET × role × object: 302/401, 403, 404 or 200, and lists hold only what the role sees."""
    faults = run(world, [c for c in cases() if c.rule.method == "GET"])
    assert not faults, "\n".join(faults)


def test_refused_writes_change_nothing(world):
    """Writes by anonymous, by a role without the right, or on an object out of sight are refused, with no trace."""
    chosen = [c for c in cases() if refusal(c)]
    assert {c.expected for c in chosen} >= {302, 401, 403, 404}
    before = fingerprint(world.sessions)
    faults = run(world, chosen)
    assert not faults, "\n".join(faults)
    assert fingerprint(world.sessions) == before


def test_writes_in_sight_reach_the_engine(world):
    """Every other write reaches the engine: never 401/404/500, and administrators act on their own users."""
    chosen = [c for c in cases() if c.rule.method != "GET" and not refusal(c)]
    faults = run(world, chosen)
    assert not faults, "\n".join(faults)


@pytest.mark.parametrize("role", ["township", "other_township"])
def test_a_township_officer_claims_only_their_own_townships_task(world, role):
    """Claiming the neighbour's task is 404 with no trace; their own task ends up theirs."""
    own, other = ("LQ", "LC") if role == "township" else ("LC", "LQ")
    b = browser(world, role)
    before = fingerprint(world.sessions)
    assert b.post(f"/tasks/{world.tasks[other]}/claim").status_code == 404
    assert fingerprint(world.sessions) == before
    r = b.post(f"/instances/{world.instances[own]}/tasks/{world.tasks[own]}/claim")
    assert r.status_code in (302, 409), "409: already claimed by the matrix's own writes"
    with world.sessions() as s:
        assert s.get(Task, world.tasks[own]).assignee_id == world.users[ROLES[role]]
