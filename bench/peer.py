"""The same approval in SpiffWorkflow and in Shuangti, each persisting to SQLite after every step.

The flow: 申报 submit → 乡镇审核 → 县级审核 → an exclusive gateway on the amount: above 100万元
a 州级审核 step, else straight to the end; half the instances are above. SpiffWorkflow runs
it from BPMN XML (below) as a persistent deployment must: before each step the workflow's
JSON is read from an SQLite table and deserialized, the ready user task is completed, the
engine steps run, and the JSON is serialized and written back in one committed transaction.
Shuangti runs an equivalent definition through ``Runtime.start`` and ``Runtime.fire``, each in
its own transaction, with its tasks, outbox rows and hash-chained audit events. Both use
the engine's SQLite PRAGMAs on a file database, and the same instances are timed in rounds
that alternate the two engines. A step is one completed user task (three or four per
instance); creating the instance is timed too and not counted as a step.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timedelta
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser import BpmnParser
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import func, select

from bench.common import Target, database, ratio
from engine import audit, directory
from engine.clock import UTC
from engine.definitions import Field, Guard, Role, State, T, Workflow
from engine.machine import Registry
from engine.runtime import Runtime
from engine.scope import load_actor
from engine.store.db import make_engine, session_factory
from engine.store.models import AuditEvent, Instance, Notification

TITLE = "Peer engine: SpiffWorkflow vs Shuangti"
SIZES = {"full": {"n": 600, "rounds": 5}, "quick": {"n": 8, "rounds": 2}}

NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
THRESHOLD = 100 * 1_000_000
"""100万元 in 分: above it the prefecture reviews too."""

BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="grant_defs"
                  targetNamespace="https://shuangti.example/bench">
  <bpmn:process id="grant" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="to_submit" sourceRef="start" targetRef="submit"/>
    <bpmn:userTask id="submit" name="申报"/>
    <bpmn:sequenceFlow id="to_township" sourceRef="submit" targetRef="township_review"/>
    <bpmn:userTask id="township_review" name="乡镇审核"/>
    <bpmn:sequenceFlow id="to_county" sourceRef="township_review" targetRef="county_review"/>
    <bpmn:userTask id="county_review" name="县级审核"/>
    <bpmn:sequenceFlow id="to_amount" sourceRef="county_review" targetRef="amount"/>
    <bpmn:exclusiveGateway id="amount" default="small"/>
    <bpmn:sequenceFlow id="big" sourceRef="amount" targetRef="prefecture_review">
      <bpmn:conditionExpression>amount &gt; THRESHOLD</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="small" sourceRef="amount" targetRef="approved"/>
    <bpmn:userTask id="prefecture_review" name="州级审核"/>
    <bpmn:sequenceFlow id="to_end" sourceRef="prefecture_review" targetRef="approved"/>
    <bpmn:endEvent id="approved"/>
  </bpmn:process>
</bpmn:definitions>
""".replace("THRESHOLD", str(THRESHOLD))

ROLES = (
    Role("applicant", "申报人", "village"),
    Role("township_reviewer", "乡镇审核", "township"),
    Role("county_reviewer", "县级审核", "county"),
    Role("prefecture_reviewer", "州级审核", "prefecture"),
)
BIG = Guard("big", "金额超过100万", lambda c: [] if c.data["amount"] > THRESHOLD else ["not above"])
GRANT = Workflow(
    key="peer_grant",
    version=1,
    title="补助申请",
    start_role="applicant",
    title_field="name",
    start_fields=(Field("name", "名称"), Field("amount", "金额", kind="money", min_value=1)),
    states=(
        State("draft", "申报", actor="applicant"),
        State("township_review", "乡镇审核", actor="township_reviewer"),
        State("county_review", "县级审核", actor="county_reviewer"),
        State("prefecture_review", "州级审核", actor="prefecture_reviewer"),
        State("approved", "已批准", final=True),
    ),
    transitions=(
        T("submit", "draft", "township_review"),
        T("approve", "township_review", "county_review"),
        T("approve", "county_review", "prefecture_review", guard=BIG),
        T("approve", "county_review", "approved", otherwise=True),
        T("approve", "prefecture_review", "approved"),
    ),
    trigger_labels={"submit": "提交", "approve": "通过"},
)
STEPS = {"draft": ("submit", "applicant"), "township_review": ("approve", "township"),
         "county_review": ("approve", "county"), "prefecture_review": ("approve", "prefecture")}


def amount_of(i: int) -> int:
    """Every other instance is above the threshold."""
    return THRESHOLD + 5_000_000 if i % 2 else THRESHOLD // 2


def _connect(url: str) -> sqlite3.Connection:
    """A raw connection with the PRAGMAs of the engine's own SQLite connections."""
    engine = make_engine(url)
    with engine.connect() as c:
        pragmas = {p: c.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("journal_mode", "synchronous",
                                                                          "foreign_keys", "busy_timeout")}
    engine.dispose()
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    for p, v in pragmas.items():
        conn.execute(f"PRAGMA {p}={v}")
    return conn


class Spiff:
    """SpiffWorkflow with its JSON serializer, persisted to an SQLite table after every step."""

    def __init__(self, url: str) -> None:
        parser = BpmnParser()
        parser.add_bpmn_xml(etree.fromstring(BPMN.encode()), filename="peer_grant.bpmn")
        self.spec = parser.get_spec("grant")
        self.serializer = BpmnWorkflowSerializer()
        self.conn = _connect(url)
        self.conn.execute("CREATE TABLE IF NOT EXISTS spiff_instance (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")

    def start(self) -> int:
        wf = BpmnWorkflow(self.spec)
        wf.do_engine_steps()
        self.conn.execute("BEGIN")
        row = self.conn.execute("INSERT INTO spiff_instance (body) VALUES (?) RETURNING id",
                                (self.serializer.serialize_json(wf),)).fetchone()
        self.conn.execute("COMMIT")
        return row[0]

    def step(self, iid: int, amount: int) -> bool:
        """Complete the ready user task; True once the workflow has ended."""
        self.conn.execute("BEGIN")
        body = self.conn.execute("SELECT body FROM spiff_instance WHERE id = ?", (iid,)).fetchone()[0]
        wf = self.serializer.deserialize_json(body)
        task = wf.get_tasks(state=TaskState.READY, manual=True)[0]
        if task.task_spec.name == "submit":
            task.data["amount"] = amount
        task.data[f"{task.task_spec.name}_by"] = "同意"
        task.run()
        wf.do_engine_steps()
        self.conn.execute("UPDATE spiff_instance SET body = ? WHERE id = ?", (self.serializer.serialize_json(wf), iid))
        self.conn.execute("COMMIT")
        return wf.is_completed()

    def path(self, iid: int) -> list[str]:
        """The user tasks the stored workflow completed, in order."""
        body = self.conn.execute("SELECT body FROM spiff_instance WHERE id = ?", (iid,)).fetchone()[0]
        wf = self.serializer.deserialize_json(body)
        done = [t for t in wf.get_tasks(state=TaskState.COMPLETED) if t.task_spec.manual]
        return [t.task_spec.name for t in sorted(done, key=lambda t: t.last_state_change)]


class Shuangti:
    """The equivalent definition through the runtime, one transaction per start and per step."""

    def __init__(self, url: str) -> None:
        registry = Registry(ROLES)
        registry.register(GRANT)
        self.runtime = Runtime(registry)
        self.engine = make_engine(url)
        self.sessions = session_factory(self.engine)
        with self.sessions.begin() as s:
            def unit(code: str, kind: str, parent: Any = None) -> Any:
                return directory.add_unit(s, code=code, name=code, kind=kind, now=NOW, parent=parent)

            def person(name: str, role: str, at: Any) -> int:
                user = directory.add_user(s, username=name, display_name=name, password_hash="!", now=NOW)
                directory.grant(s, user, role, at, now=NOW)
                s.flush()
                return user.id

            prefecture = unit("gz", "prefecture")
            county = unit("gz-c", "county", prefecture)
            township = unit("gz-c-t", "township", county)
            village = unit("gz-c-t-v", "village", township)
            self.village = village.id
            users = {"applicant": person("applicant", "applicant", village),
                     "township": person("township", "township_reviewer", township),
                     "county": person("county", "county_reviewer", county),
                     "prefecture": person("prefecture", "prefecture_reviewer", prefecture)}
        with self.sessions() as s:
            self.actors = {k: load_actor(s, uid, NOW) for k, uid in users.items()}
        self.at = NOW

    def start(self, amount: int) -> int:
        with self.sessions.begin() as s:
            inst = self.runtime.start(s, GRANT.key, self.actors["applicant"], org_unit_id=self.village,
                                      form={"name": "牦牛养殖合作社", "amount": str(amount / 1_000_000)}, now=self.at)
            return inst.id

    def step(self, iid: int, state: str) -> str:
        """Fire the step's trigger as its actor; the state it moved to."""
        trigger, who = STEPS[state]
        self.at += timedelta(seconds=1)
        with self.sessions.begin() as s:
            return self.runtime.fire(s, iid, trigger, self.actors[who], now=self.at, comment="同意").to_state

    def outcome(self, ids: list[int]) -> dict[str, Any]:
        """States, audit events and outbox rows of ``ids``, and whether every chain verifies."""
        with self.sessions() as s:
            return {
                "states": dict(s.execute(select(Instance.state, func.count()).where(Instance.id.in_(ids))
                                         .group_by(Instance.state)).tuples().all()),
                "events": s.scalar(select(func.count()).where(AuditEvent.instance_id.in_(ids))),
                "notifications": s.scalar(select(func.count()).where(Notification.instance_id.in_(ids))),
                "broken_chains": sum(len(audit.verify(s, audit.instance_stream(i))) for i in ids),
                "paths": [list(s.scalars(select(AuditEvent.from_state).where(
                    AuditEvent.instance_id == i, AuditEvent.action == "transition").order_by(AuditEvent.seq)))
                    for i in ids],
            }


def run(backends: Any, n: int, rounds: int) -> dict[str, Any]:
    amounts = [amount_of(i) for i in range(n)]
    spent = {"spiff": 0.0, "shuangti": 0.0}
    steps = {"spiff": 0, "shuangti": 0}
    spiff_ids: list[int] = []
    our_ids: list[int] = []
    with database("sqlite") as url:
        spiff, ours = Spiff(url), Shuangti(url)
        for r in range(rounds):
            batch = amounts[r::rounds]
            t0 = time.perf_counter()
            for amount in batch:
                iid = spiff.start()
                spiff_ids.append(iid)
                while True:
                    steps["spiff"] += 1
                    if spiff.step(iid, amount):
                        break
            spent["spiff"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            for amount in batch:
                iid, state = ours.start(amount), "draft"
                our_ids.append(iid)
                while state != "approved":
                    steps["shuangti"] += 1
                    state = ours.step(iid, state)
            spent["shuangti"] += time.perf_counter() - t0
        order = [a for r in range(rounds) for a in amounts[r::rounds]]
        checked = ours.outcome(our_ids)
        paths: dict[str, dict[str, set]] = {"spiff": {}, "shuangti": {}}
        for iid, ours_path, amount in zip(spiff_ids, checked.pop("paths"), order, strict=True):
            size = "big" if amount > THRESHOLD else "small"
            paths["spiff"].setdefault(size, set()).add(tuple(spiff.path(iid)))
            paths["shuangti"].setdefault(size, set()).add(tuple(ours_path))
        spiff.conn.close()
        ours.engine.dispose()
    rates = {k: steps[k] / spent[k] for k in spent}
    return {
        "n": n,
        "steps": steps,
        "spiff_per_s": round(rates["spiff"], 1),
        "shuangti_per_s": round(rates["shuangti"], 1),
        "shuangti_vs_spiff": ratio(rates["shuangti"], rates["spiff"]),
        "paths": {engine: {k: sorted(list(p) for p in v) for k, v in sizes.items()}
                  for engine, sizes in paths.items()},
        "shuangti": checked,
    }


def markdown(result: dict[str, Any]) -> str:
    return "\n".join([
        f"{result['n']} instances each, half above the threshold.",
        "",
        "| engine | steps | steps/s | vs SpiffWorkflow |",
        "|---|---|---|---|",
        f"| SpiffWorkflow (JSON serializer, SQLite) | {result['steps']['spiff']} | {result['spiff_per_s']} | ×1 |",
        f"| Shuangti (`Runtime.fire`, audit chain, SQLite) | {result['steps']['shuangti']} | "
        f"{result['shuangti_per_s']} | ×{result['shuangti_vs_spiff']} |",
        "",
        f"Shuangti wrote {result['shuangti']['events']} audit events ({result['shuangti']['broken_chains']} broken "
        f"chains) and {result['shuangti']['notifications']} outbox rows; SpiffWorkflow's paths: "
        + "; ".join(f"{k}: {' → '.join(p[0])}" for k, p in sorted(result["paths"]["spiff"].items())) + ".",
    ])


def targets(result: dict[str, Any]) -> list[Target]:
    r = result["shuangti_vs_spiff"]
    return [Target("Shuangti steps/s vs SpiffWorkflow (SQLite, persisted per step)", f"×{r}", "≥ ×3", r >= 3)]
