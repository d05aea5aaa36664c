"""The web app under concurrent load: gunicorn workers on PostgreSQL, approvers racing.

A fresh PostgreSQL database gets the 泸定县 part of the Ganzi demo world, extra approvers
(several per step, each with an API token) and ``project_library`` instances waiting at
乡镇审核, 行业部门审查 and 县级审定 (a two-party 会签). gunicorn serves ``web:create_app()``
against it on 127.0.0.1 with several workers, and client threads in this process work for a
bounded time as their users would: list the queue (API, and the HTML 我的待办 with a
logged-in session), open an instance and, if it still offers 通过, approve it through the
API with the version they saw, now and then re-sending an approve (same idempotency key).
Clients of the same step pick from the same queue, so some race for one instance: the
loser's 409 is counted, not an error.

Afterwards the database is checked: every 2xx approve is exactly one audit event (none lost,
none duplicated, no task approved twice), no instance has two open tasks for one step and
party, and every audit chain verifies. On a machine without PostgreSQL the section skips.

``python -m bench.web --seconds 60 --workers 4 --clients 8 --doc docs/reliability.md`` runs
the load alone and rewrites the block between the load markers of that document.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func, select

from bench.common import PG_ADMIN, Target, database, pg_reachable
from engine import audit, directory
from engine.clock import utcnow
from engine.scope import Actor, load_actor
from engine.store.db import make_engine, session_factory
from engine.store.models import AuditEvent, Task
from workflows import build_runtime, demo
from workflows.roles import COUNTY_APPROVER, COUNTY_DEPARTMENT_REVIEWER, TOWNSHIP_REVIEWER

TITLE = "Web under load (并发负载)"
SIZES = {
    "full": {"seconds": 45, "workers": 3, "clients": 8, "instances": 450},
    "quick": {"seconds": 4, "workers": 2, "clients": 6, "instances": 24},
}
ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- load:begin -->", "<!-- load:end -->"

COUNTY = (demo.DEMO_COUNTY, "泸定县")
AGRICULTURE = demo.dept_code(demo.DEMO_COUNTY, "agriculture")
FINANCE = demo.dept_code(demo.DEMO_COUNTY, "finance")
GROUPS = (
    ("township", TOWNSHIP_REVIEWER, (demo.DEMO_TOWNSHIP,)),
    ("agriculture", COUNTY_DEPARTMENT_REVIEWER, (AGRICULTURE,)),
    ("approval_agriculture", COUNTY_APPROVER, (AGRICULTURE,)),
    ("approval_finance", COUNTY_APPROVER, (FINANCE,)),
    ("approval_both", COUNTY_APPROVER, (AGRICULTURE, FINANCE)),
)
"""The approvers: (name, role, org unit codes); client i works for group i mod 5. An
``approval_both`` user signs the 县级审定 会签 for both parties, as one person may in a small county."""
USERS_PER_GROUP = 2
FORMS = {"township_review": demo.TOWNSHIP_OK, "department_review": demo.ASSESSED, "county_approval": {}}
"""The approve form each step asks for."""
STAGES = (
    demo.TO_TOWNSHIP,
    demo.TO_TOWNSHIP,
    demo.TO_DEPARTMENT,
    demo.TO_COUNTY,
    [*demo.TO_COUNTY, ("approve", "county_approver", None)],
)
"""Where the seeded instances wait (round robin): 乡镇审核 twice as often, 县级审定 with one party signed."""
PICK = 6
"""A client picks at random among the first PICK tasks of its queue, so clients of one step collide."""
REPLAY_EVERY = 10
"""Each client sends its 1st, 11th, 21st… successful approve again, with the same idempotency key."""
DOUBLE_EVERY = 12
"""Each client's 2nd, 14th, 26th… approve is a double click: sent twice at once, no expected_version."""
QUEUE_PAGE_EVERY = 3
"""Every third round a client also loads the HTML 我的待办 page."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed(url: str, instances: int, now: datetime) -> list[dict[str, Any]]:
    """The demo county, USERS_PER_GROUP approvers per group with tokens, and the waiting instances."""
    engine = make_engine(url)
    sessions = session_factory(engine)
    runtime = build_runtime()
    users = []
    with sessions.begin() as s:
        world = demo.build_world(s, now, counties=(COUNTY,))
        password_hash = world.users["applicant"].password_hash
        for name, role, unit_codes in GROUPS:
            for k in range(1, USERS_PER_GROUP + 1):
                user = directory.add_user(
                    s,
                    username=f"load_{name}_{k}",
                    display_name=f"负载{name}{k}",
                    password_hash=password_hash,
                    now=now,
                )
                for code in unit_codes:
                    directory.grant(s, user, role, world.units[code], now=now)
                token = directory.issue_api_token(s, user, now=now)
                users.append({"group": name, "username": user.username, "token": token})
        ids = {u: world.users[u].id for u in ("applicant", "township", "dept_agriculture", "county_approver")}
        village = world.units[demo.DEMO_VILLAGE].id
    for first in range(0, instances, 50):
        with sessions.begin() as s:
            for i in range(first, min(first + 50, instances)):
                start = now - timedelta(days=20, minutes=i)
                form = demo.project_form(f"负载测试项目{i + 1:04d}", "产业发展", "100")
                inst = runtime.start(
                    s,
                    "project_library",
                    load_actor(s, ids["applicant"], start),
                    org_unit_id=village,
                    form=form,
                    now=start,
                )
                for h, (trigger, who, step_form) in enumerate(STAGES[i % len(STAGES)], start=1):
                    at = start + timedelta(hours=h)
                    actor = Actor.system() if who is None else load_actor(s, ids[who], at)
                    runtime.fire(s, inst.id, trigger, actor, now=at, form=step_form)
    engine.dispose()
    return users


class Server:
    """gunicorn serving ``web:create_app()`` on 127.0.0.1; always terminated on exit."""

    def __init__(self, url: str, workers: int, log: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "SHUANGTI_DB": url, "SHUANGTI_SECRET_KEY": secrets.token_hex(16)}
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-w",
                    str(workers),
                    "-b",
                    f"127.0.0.1:{self.port}",
                    "--timeout",
                    "60",
                    "web:create_app()",
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def __enter__(self) -> Server:
        try:
            self._wait()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text()[-2000:]
                raise RuntimeError(f"gunicorn exited ({self.proc.returncode}): {tail}")
            try:
                if requests.get(f"{self.base}/login", timeout=30).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"gunicorn did not answer within 120 s: {self.log.read_text()[-2000:]}")

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Client(threading.Thread):
    """One approver working their queue until ``end``; records (kind, status, seconds) per request."""

    def __init__(self, base: str, user: dict[str, Any], end: float, seed: int):
        super().__init__(daemon=True)
        self.base, self.user, self.end = base, user, end
        self.rng = random.Random(seed)
        self.api = requests.Session()
        self.api.headers["Authorization"] = f"Bearer {user['token']}"
        self.browser = requests.Session()
        self.samples: list[tuple[str, int, float]] = []
        self.approved: list[int] = []
        self.replays: list[tuple[int, int]] = []
        self.unanswered = 0
        self.gone = 0
        self.attempts = 0
        self.doubles: list[tuple[int, int]] = []

    def call(
        self, kind: str, session: requests.Session, method: str, path: str, **kw
    ) -> requests.Response | None:
        t0 = time.perf_counter()
        try:
            response = session.request(method, self.base + path, timeout=60, **kw)
        except requests.RequestException:
            self.samples.append((kind, 0, time.perf_counter() - t0))
            self.unanswered += kind == "approve"
            return None
        self.samples.append((kind, response.status_code, time.perf_counter() - t0))
        return response

    def login(self) -> None:
        page = self.call("login", self.browser, "GET", "/login")
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.text if page is not None else "")
        self.call(
            "login",
            self.browser,
            "POST",
            "/login",
            data={
                "username": self.user["username"],
                "password": demo.PASSWORD,
                "csrf_token": found.group(1) if found else "",
            },
        )

    def approve(self, task: dict[str, Any]) -> None:
        inst = self.call("instance", self.api, "GET", f"/api/v1/instances/{task['instance_id']}")
        if inst is None or inst.status_code != 200:
            return
        if not any(a["trigger"] == "approve" and a["allowed"] for a in inst.json()["actions"]):
            self.gone += 1
            return
        body = {
            "trigger": "approve",
            "form": FORMS.get(task["state"], {}),
            "expected_version": inst.json()["version"],
            "idempotency_key": uuid.uuid4().hex,
        }
        path = f"/api/v1/instances/{task['instance_id']}/fire"
        self.attempts += 1
        if self.attempts % DOUBLE_EVERY == 2:
            self.double_click(path, body)
            return
        done = self.call("approve", self.api, "POST", path, json=body)
        if done is None or done.status_code != 200:
            return
        event_id = done.json()["event_id"]
        self.approved.append(event_id)
        if len(self.approved) % REPLAY_EVERY == 1:
            again = self.call("approve_replay", self.api, "POST", path, json=body)
            if again is not None and again.status_code == 200:
                self.replays.append((event_id, again.json()["event_id"]))

    def double_click(self, path: str, body: dict[str, Any]) -> None:
        """Send one approve twice at once, without ``expected_version``: it may take effect only once."""
        body = {k: v for k, v in body.items() if k != "expected_version"}
        answers: list[requests.Response | None] = [None, None]

        def send(n: int) -> None:
            with requests.Session() as session:
                session.headers.update(self.api.headers)
                answers[n] = self.call("approve_double", session, "POST", path, json=body)

        pair = [threading.Thread(target=send, args=(n,)) for n in (0, 1)]
        for t in pair:
            t.start()
        for t in pair:
            t.join()
        fired = [a.json()["event_id"] for a in answers if a is not None and a.status_code == 200]
        fresh = [
            a.json()["event_id"]
            for a in answers
            if a is not None and a.status_code == 200 and not a.json()["replayed"]
        ]
        self.approved += fresh
        self.doubles.append((len(fired), len(fresh)))

    def run(self) -> None:
        self.login()
        rounds = 0
        while rounds == 0 or time.monotonic() < self.end:
            rounds += 1
            if rounds % QUEUE_PAGE_EVERY == 1:
                self.call("queue_page", self.browser, "GET", "/tasks/")
            listed = self.call("api_tasks", self.api, "GET", "/api/v1/tasks?per_page=20")
            items = listed.json()["items"] if listed is not None and listed.status_code == 200 else []
            if not items:
                time.sleep(0.2)
                continue
            self.approve(self.rng.choice(items[:PICK]))


def member(by_group: dict[str, list[dict[str, Any]]], i: int) -> dict[str, Any]:
    """Client ``i``'s user: group i mod 5, and the next user of that group for each round of five."""
    return by_group[GROUPS[i % len(GROUPS)][0]][(i // len(GROUPS)) % USERS_PER_GROUP]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def check(url: str, before_id: int, approved: list[int]) -> dict[str, Any]:
    """Compare the 2xx approves with the audit trail, look for doubled open tasks, verify every chain."""
    engine = make_engine(url)
    with session_factory(engine)() as s:
        events = s.execute(
            select(AuditEvent.id, AuditEvent.instance_id, AuditEvent.detail).where(
                AuditEvent.id > before_id, AuditEvent.trigger == "approve"
            )
        ).all()
        doubled_open = s.execute(
            select(Task.instance_id, Task.state, Task.party)
            .where(Task.status == "open")
            .group_by(Task.instance_id, Task.state, Task.party)
            .having(func.count() > 1)
        ).all()
        breaks = [str(b) for b in audit.verify(s)]
    engine.dispose()
    answered, recorded = Counter(approved), {e.id for e in events}
    per_task = Counter((e.instance_id, (e.detail or {}).get("task_id")) for e in events)
    return {
        "approved_2xx": len(approved),
        "approve_events": len(events),
        "lost": len(set(answered) - recorded),
        "duplicated": len(recorded - set(answered))
        + sum(n - 1 for n in answered.values())
        + sum(n - 1 for n in per_task.values()),
        "doubled_open_tasks": len(doubled_open),
        "audit_breaks": breaks,
    }


def load(url: str, *, seconds: float, workers: int, clients: int, instances: int) -> dict[str, Any]:
    """Seed ``url``, serve it with gunicorn, drive the clients for ``seconds``, then check the database."""
    t0 = time.perf_counter()
    users = seed(url, instances, utcnow())
    seed_s = time.perf_counter() - t0
    engine = make_engine(url)
    with session_factory(engine)() as s:
        before_id = s.scalar(select(func.coalesce(func.max(AuditEvent.id), 0)))
    engine.dispose()
    by_group = defaultdict(list)
    for u in users:
        by_group[u["group"]].append(u)
    with tempfile.TemporaryDirectory(prefix="shuangti-load-") as tmp:
        log = Path(tmp) / "gunicorn.log"
        with Server(url, workers, log) as server:
            end = time.monotonic() + seconds
            team = [Client(server.base, member(by_group, i), end, seed=i) for i in range(clients)]
            started = time.perf_counter()
            for c in team:
                c.start()
            for c in team:
                c.join()
            elapsed = time.perf_counter() - started
        tracebacks = [line for line in log.read_text(errors="replace").splitlines() if "Error" in line][-10:]
    samples = [x for c in team for x in c.samples]
    kinds: dict[str, Any] = {}
    for kind in sorted({k for k, _, _ in samples}):
        times = [t * 1000 for k, _, t in samples if k == kind]
        kinds[kind] = {
            "n": len(times),
            "p50_ms": round(statistics.median(times), 1),
            "p99_ms": round(percentile(times, 0.99), 1),
            "status": dict(sorted(Counter(str(st) for k, st, _ in samples if k == kind).items())),
        }
    status = Counter(str(st) for _, st, _ in samples)
    replays = [pair for c in team for pair in c.replays]
    doubles = [pair for c in team for pair in c.doubles]
    return {
        "seconds": round(elapsed, 1),
        "seed_seconds": round(seed_s, 1),
        "workers": workers,
        "clients": clients,
        "instances": instances,
        "requests": len(samples),
        "requests_per_s": round(len(samples) / elapsed, 1),
        "kinds": kinds,
        "status": dict(sorted(status.items())),
        "server_errors": sum(n for code, n in status.items() if code.startswith("5")),
        "no_response": status.get("0", 0),
        "conflicts": status.get("409", 0),
        "unanswered_approves": sum(c.unanswered for c in team),
        "gone": sum(c.gone for c in team),
        "double_clicks": len(doubles),
        "double_clicks_fired_twice": sum(fresh > 1 for _, fresh in doubles),
        "double_clicks_answered_twice": sum(fired > 1 for fired, _ in doubles),
        "replays": len(replays),
        "replay_mismatch": sum(a != b for a, b in replays),
        "log_errors": tracebacks,
        **check(url, before_id, [e for c in team for e in c.approved]),
    }


def run(backends, seconds: float, workers: int, clients: int, instances: int) -> dict[str, Any]:
    if "postgresql" not in backends:
        return {"skipped": f"PostgreSQL not reachable at {PG_ADMIN}: the load run needs a server database"}
    with database("postgresql") as url:
        return load(url, seconds=seconds, workers=workers, clients=clients, instances=instances)


def markdown(result: dict[str, Any]) -> str:
    if "skipped" in result:
        return f"Skipped: {result['skipped']}."
    r = result
    lines = [
        f"{r['clients']} clients, {r['workers']} gunicorn workers, {r['seconds']:.0f} s of load over "
        f"{r['instances']} instances (seeded in {r['seed_seconds']:.0f} s): **{r['requests']} requests, "
        f"{r['requests_per_s']} per second**.",
        "",
        "| request | n | p50 ms | p99 ms | status codes |",
        "|---|---|---|---|---|",
    ]
    for kind, k in r["kinds"].items():
        codes = ", ".join(f"{code}: {n}" for code, n in k["status"].items())
        lines.append(f"| {kind} | {k['n']} | {k['p50_ms']} | {k['p99_ms']} | {codes} |")
    lines += [
        "",
        "| check | result |",
        "|---|---|",
        f"| status codes | {', '.join(f'{c}: {n}' for c, n in r['status'].items())} |",
        f"| 5xx | {r['server_errors']} |",
        f"| no answer (connection error or timeout) | {r['no_response']} |",
        f"| conflicts (409, expected) | {r['conflicts']} |",
        f"| tasks gone before the approve (instance page offered no approve) | {r['gone']} |",
        f"| approves answered 2xx / audit approve events | {r['approved_2xx']} / {r['approve_events']} |",
        f"| lost / duplicated transitions | {r['lost']} / {r['duplicated']} |",
        f"| replayed approves (same idempotency key) / answered with another event | "
        f"{r['replays']} / {r['replay_mismatch']} |",
        f"| double clicks (same key, no version) / fired twice / both answered 2xx | {r['double_clicks']} / "
        f"{r['double_clicks_fired_twice']} / {r['double_clicks_answered_twice']} |",
        f"| instances with two open tasks for one step and party | {r['doubled_open_tasks']} |",
        f"| audit chains | {'all verify' if not r['audit_breaks'] else '; '.join(r['audit_breaks'])} |",
    ]
    if r["log_errors"]:
        lines += ["", "Server log errors:", "", *(f"    {line}" for line in r["log_errors"])]
    return "\n".join(lines)


def targets(result: dict[str, Any]) -> list[Target]:
    if "skipped" in result:
        return []
    r = result
    whole = not (
        r["lost"]
        or r["duplicated"]
        or r["doubled_open_tasks"]
        or r["audit_breaks"]
        or r["replay_mismatch"]
        or r["double_clicks_fired_twice"]
    )
    return [
        Target("5xx answers under load", str(r["server_errors"]), "0", r["server_errors"] == 0),
        Target(
            "lost / duplicated transitions (audit, open tasks, chains)",
            f"{r['lost']} / {r['duplicated']}, {r['doubled_open_tasks']} doubled open tasks, "
            f"{len(r['audit_breaks'])} broken chains",
            "0 / 0, none, none",
            whole,
        ),
    ]


def rewrite(doc: Path, block: str) -> None:
    """Replace what lies between the load markers of ``doc`` with ``block``."""
    text = doc.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{doc} has no {BEGIN} … {END} block")
    head, rest = text.split(BEGIN, 1)
    doc.write_text(f"{head}{BEGIN}\n{block.strip()}\n{END}{rest.split(END, 1)[1]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.web", description="the load run on PostgreSQL")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--instances", type=int, help="seeded instances; default 15 per second of load")
    parser.add_argument("--doc", type=Path, help="rewrite the load block of this Markdown file")
    args = parser.parse_args(argv)
    if not pg_reachable():
        print(f"PostgreSQL not reachable at {PG_ADMIN}: nothing to load", file=sys.stderr)
        return 1
    instances = args.instances or int(15 * args.seconds)
    load_before, started = os.getloadavg(), datetime.now().astimezone().isoformat(timespec="seconds")
    result = run(("postgresql",), args.seconds, args.workers, args.clients, instances)
    load_after = os.getloadavg()
    command = "python -m bench.web " + " ".join(argv if argv is not None else sys.argv[1:])
    block = "\n".join(
        [
            f"**Command:** `{command}`, started {started} on "
            f"{os.cpu_count()} cores; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after "
            "(the machine was shared, so the figures are a floor, not a capacity).",
            "",
            markdown(result),
            "",
            "Targets: "
            + "; ".join(
                f"{t.what}: {t.figure} (target {t.target}, {'met' if t.met else 'NOT met'})"
                for t in targets(result)
            )
            + ".",
        ]
    )
    print(block)
    if args.doc:
        rewrite(args.doc, block)
        print(f"rewrote the load block of {args.doc}")
    return 0 if all(t.met for t in targets(result)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
