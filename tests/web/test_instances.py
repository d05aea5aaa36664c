"""The instance page and its actions: every refusal maps to its status and changes nothing."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

from openpyxl import load_workbook
from sqlalchemy import select, text

from engine.store.models import AuditEvent
from web.diagrams import CURRENT, TAKEN


def fire(b, iid, trigger, version, **extra):
    return b.post(f"/instances/{iid}/fire", {"trigger": trigger, "expected_version": str(version), **extra})


def events(sessions, iid):
    with sessions() as s:
        return s.scalars(
            select(AuditEvent).where(AuditEvent.instance_id == iid).order_by(AuditEvent.seq)
        ).all()


def test_page_shows_money_in_wan_checklist_actions_and_trail(make_instance, browser):
    iid = make_instance("123.45")
    html = browser("town_a1").get(f"/instances/{iid}").get_data(as_text=True)
    assert "123.45 万元" in html
    assert "✔ 有实施方案" in html and "✔ 有绩效目标" in html
    buttons = re.findall(r'name="trigger" value="(\w+)"[^>]*>([^<]+)</button>', html)
    assert buttons == [("approve", "通过"), ("return", "退回"), ("reject", "不予批准")]
    assert "审计链校验通过" in html
    assert "2025-05-06 09:00:00" in html, "audit times are shown in Asia/Shanghai (T0 is 01:00 UTC)"
    assert html.count("<tr>") >= 3


def test_failed_checklist_items_show_their_reasons(make_instance, browser):
    iid = make_instance(plan="")
    html = browser("town_a1").get(f"/instances/{iid}").get_data(as_text=True)
    assert "✘ 有实施方案" in html and "没有实施方案" in html and "(no plan)" not in html
    assert "✔ 有绩效目标" in html


def test_approve_moves_on_and_records_comment(make_instance, browser, load, sessions):
    iid = make_instance()
    r = fire(browser("town_a1"), iid, "approve", load(iid).version_id, comment="同意")
    assert r.status_code == 302
    assert load(iid).state == "dept_review"
    last = events(sessions, iid)[-1]
    assert (last.trigger, last.comment, last.actor_name, last.role) == (
        "approve",
        "同意",
        "town_a1",
        "township_reviewer",
    )


def test_stale_version_is_409_and_changes_nothing(make_instance, browser, load):
    iid = make_instance()
    before = load(iid).version_id
    r = fire(browser("town_a1"), iid, "approve", before - 1)
    assert r.status_code == 409 and "请刷新后重试" in r.get_data(as_text=True)
    assert (load(iid).state, load(iid).version_id) == ("township_review", before)


def test_guard_failure_is_422_with_every_reason(make_instance, browser, load):
    iid = make_instance(plan="", target="")
    r = fire(browser("town_a1"), iid, "approve", load(iid).version_id)
    html = r.get_data(as_text=True)
    assert r.status_code == 422
    assert "没有实施方案" in html and "没有绩效目标" in html
    assert load(iid).state == "township_review"


def test_missing_reason_is_422_next_to_the_comment(make_instance, browser, load):
    iid = make_instance()
    r = fire(browser("town_a1"), iid, "return", load(iid).version_id, comment="  ")
    assert r.status_code == 422 and "须填写理由" in r.get_data(as_text=True)
    assert load(iid).state == "township_review"


def test_not_your_task_is_403(make_instance, browser, load):
    iid = make_instance()
    r = fire(browser("applicant_a1"), iid, "approve", load(iid).version_id)
    assert r.status_code == 403
    assert load(iid).state == "township_review"


def test_read_only_auditor_is_403(make_instance, browser, load):
    iid = make_instance()
    assert fire(browser("auditor_a"), iid, "approve", load(iid).version_id).status_code == 403


def test_action_not_possible_in_this_state_is_409(make_instance, browser, load):
    iid = make_instance()
    assert fire(browser("town_a1"), iid, "submit", load(iid).version_id).status_code == 409
    assert fire(browser("town_a1"), iid, "no_such_trigger", load(iid).version_id).status_code == 409


def test_out_of_scope_fire_is_404(make_instance, browser, load):
    iid = make_instance()
    r = fire(browser("town_a2"), iid, "approve", load(iid).version_id)
    assert r.status_code == 404 and "township_review" not in r.get_data(as_text=True)
    assert load(iid).state == "township_review"


def test_fire_without_csrf_is_refused(make_instance, browser, load):
    iid = make_instance()
    b = browser("town_a1")
    r = b.client.post(f"/instances/{iid}/fire", data={"trigger": "approve"})
    assert r.status_code == 400
    assert load(iid).state == "township_review"


def test_double_submit_with_one_idempotency_key_fires_once(make_instance, browser, load, sessions):
    iid = make_instance()
    b = browser("town_a1")
    version = load(iid).version_id
    for _ in range(2):
        assert fire(b, iid, "approve", version, idempotency_key="k-1").status_code == 302
    assert [e.trigger for e in events(sessions, iid)].count("approve") == 1


def test_attachments_are_hashed_stored_and_served_in_scope(make_instance, browser, load, sessions, app):
    iid = make_instance()
    content = "乡镇审核意见书".encode()
    digest = hashlib.sha256(content).hexdigest()
    b = browser("town_a1")
    r = fire(b, iid, "approve", load(iid).version_id, attachments=(io.BytesIO(content), "意见书.txt"))
    assert r.status_code == 302
    assert events(sessions, iid)[-1].detail["attachments"] == [
        {"name": "意见书.txt", "sha256": digest, "size": len(content)}
    ]
    got = b.get(f"/instances/{iid}/attachments/{digest}")
    assert got.status_code == 200 and got.data == content
    assert browser("town_b1").get(f"/instances/{iid}/attachments/{digest}").status_code == 404
    assert b.get(f"/instances/{iid}/attachments/{'0' * 64}").status_code == 404


def test_refused_fire_stores_no_attachment(make_instance, browser, load, app):
    iid = make_instance()
    fire(browser("town_a1"), iid, "approve", 0, attachments=(io.BytesIO(b"x"), "a.txt"))
    assert not (Path(app.config["UPLOAD_DIR"]) / str(iid)).exists()


def test_diagram_marks_current_state_and_path_taken(make_instance, browser):
    iid = make_instance()
    svg = browser("town_a1").get(f"/instances/{iid}/diagram.svg").get_data(as_text=True)
    assert svg.startswith("<svg")
    node = re.search(
        r'<g id="node\d+" class="node">\s*<title>township_review</title>.*?</g>', svg, re.S
    ).group(0)
    assert CURRENT.lower() in node.lower()
    taken = re.findall(r'<g id="edge\d+" class="edge">\s*<title>(.*?)</title>.*?</g>', svg, re.S)
    edges = {t.replace("&#45;&gt;", "->") for t in taken}
    assert {"draft->notice", "notice->township_review"} <= edges
    marked = re.findall(r'<g id="edge\d+" class="edge">\s*<title>(.*?)</title>(.*?)</g>', svg, re.S)
    green = {t.replace("&#45;&gt;", "->") for t, body in marked if TAKEN.lower() in body.lower()}
    assert green == {"draft->notice", "notice->township_review"}


def test_audit_exports_csv_and_excel(make_instance, browser):
    iid = make_instance()
    b = browser("auditor_a")
    csv_text = b.get(f"/instances/{iid}/audit.csv").get_data(as_text=True)
    lines = csv_text.lstrip("\ufeff").splitlines()
    assert lines[0].startswith("时间,经办人,代理谁,角色,单位,操作")
    assert len(lines) == 4 and "applicant_a1" in lines[1] and "发起" in lines[1]
    assert "拟定,村内公示" in lines[2] and "SYSTEM" in lines[3]
    book = load_workbook(io.BytesIO(b.get(f"/instances/{iid}/audit.xlsx").data))
    rows = list(book.active.iter_rows(values_only=True))
    assert rows[0][:3] == ("时间", "经办人", "代理谁") and len(rows) == 4
    assert rows[2][5] == "提交"


def test_broken_chain_shows_a_red_badge(make_instance, browser, sessions):
    iid = make_instance()
    with sessions.begin() as s:
        s.execute(
            text("UPDATE audit_stream SET length = length + 1 WHERE key = :k"), {"k": f"instance:{iid}"}
        )
    html = browser("auditor_a").get(f"/instances/{iid}").get_data(as_text=True)
    assert "审计链已损坏" in html and "审计链校验通过" not in html


def test_instance_list_shows_only_what_is_in_scope(make_instance, browser):
    mine = make_instance(name="本乡项目")
    other = make_instance(village="A2v", applicant="applicant_a2", name="邻乡项目")
    html = browser("town_a1").get("/instances/").get_data(as_text=True)
    assert f"/instances/{mine}" in html and f"/instances/{other}" not in html and "邻乡项目" not in html
