"""Browser tests: Debian's Chromium, driven by Playwright, against the app on a real server thread.

A village applicant starts a real 项目入库 project; township, department and county officers
each log in and act; the notice periods end (the scheduler's SYSTEM transitions, fired here
directly); the project reaches 已入库. The auditor sees the whole trail; another township
cannot open it by URL. Screenshots go to test-artifacts/; the README's in docs/screenshots/ are
rewritten only when ``SHUANGTI_SCREENSHOTS=1`` is set.
"""

from __future__ import annotations

import os
import struct
import subprocess
import threading
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from engine.scope import Actor
from engine.store.db import make_engine, migrate, session_factory
from engine.store.models import Instance
from tests.web.conftest import Clock
from web import create_app
from workflows import demo, project_library

pytestmark = pytest.mark.browser
playwright = pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).parents[2]
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START = datetime(2025, 6, 2, 1, 0, tzinfo=UTC)


def snapshot(page, name: str) -> None:
    """A full-page screenshot in test-artifacts/, and in docs/screenshots/ when SHUANGTI_SCREENSHOTS=1."""
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    assert png_pixels(path.read_bytes())[1] > 200
    if os.environ.get("SHUANGTI_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / name).write_bytes(path.read_bytes())


@pytest.fixture(scope="module")
def chromium():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt install chromium)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def site(tmp_path):
    """The real Ganzi flows on a fresh SQLite database, served on 127.0.0.1 at a free port."""
    url = f"sqlite:///{tmp_path / 'browser.db'}"
    migrate(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    with sessions.begin() as s:
        world = demo.build_world(s, START)
    clock = Clock(START)
    app = create_app(
        {
            "SECRET_KEY": "browser-test",
            "SHUANGTI_DB": url,
            "CLOCK": lambda: clock.now,
            "UPLOAD_DIR": str(tmp_path / "attachments"),
        }
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {
            "base": f"http://127.0.0.1:{server.server_port}",
            "app": app,
            "sessions": sessions,
            "world": world,
            "clock": clock,
        }
    finally:
        server.shutdown()
        thread.join(timeout=10)
        app.extensions["shuangti"]["engine"].dispose()
        engine.dispose()


def login(chromium, site, username: str):
    page = chromium.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900}).new_page()
    page.goto(site["base"] + "/login")
    page.fill("#username", username)
    page.fill("#password", demo.PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/tasks/")
    return page


def system_fires(site, iid: int, trigger: str) -> None:
    """What the scheduler does when a notice period ends: a SYSTEM transition through the runtime."""
    runtime = site["app"].extensions["shuangti"]["runtime"]
    with site["sessions"].begin() as s:
        runtime.fire(s, iid, trigger, Actor.system(), now=site["clock"].now)


def state_of(page) -> str:
    return page.inner_text("strong.state")


def approve_with_every_check(page, comment: str) -> None:
    for box in page.query_selector_all("form.act input[type=checkbox][name^='field.']"):
        box.check()
    page.fill("#comment", comment)
    page.click("form.act button[value=approve]")
    page.wait_for_load_state()
    assert page.query_selector(".alert") is None, page.inner_text(".alert")


def act_from_queue(chromium, site, username: str, iid: int, comment: str) -> str:
    site["clock"].advance(hours=1)
    page = login(chromium, site, username)
    page.click(f"a[href='/instances/{iid}']")
    approve_with_every_check(page, comment)
    state = state_of(page)
    page.context.close()
    return state


def png_pixels(data: bytes) -> tuple[int, int, list[bytes], int]:
    """Width, height, unfiltered rows and bytes per pixel of an 8-bit non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and interlace == 0 and color in (2, 6)
    bpp = 3 if color == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, rows, bpp


def dark_pixels(png: bytes) -> int:
    width, _, rows, bpp = png_pixels(png)
    return sum(1 for row in rows for x in range(width) if sum(row[x * bpp : x * bpp + 3]) < 3 * 110)


def assert_chinese_rendered(page) -> None:
    """The CJK font is installed, and Chinese headings render as distinct dark glyphs, not blanks or boxes."""
    status = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", "fonts-wqy-zenhei"], capture_output=True, text=True
    )
    assert status.stdout == "install ok installed", "apt install fonts-wqy-zenhei"
    headers = page.query_selector_all("table.list th")
    texts = [h.inner_text() for h in headers[:2]]
    assert texts == ["事项", "环节"]
    first, second = (h.screenshot() for h in headers[:2])
    assert dark_pixels(first) > 40 and dark_pixels(second) > 40, "heading text is blank"
    assert png_pixels(first)[2] != png_pixels(second)[2], "different characters drew identical boxes (tofu)"


def test_a_project_walks_to_in_library_and_the_auditor_sees_it_all(chromium, site):
    ARTIFACTS.mkdir(exist_ok=True)

    page = login(chromium, site, "applicant")
    page.click("text=发起")
    page.click("text=项目入库")
    page.fill("#year", "2025")
    page.fill("#name", "团结村青稞加工坊")
    page.select_option("#category", "产业发展")
    page.fill("#content", "青稞加工坊及设备")
    page.fill("#scale", "厂房300平方米")
    page.fill("#fund_central", "90")
    page.fill("#period_start", "2025-07-01")
    page.fill("#period_end", "2026-06-30")
    page.click("button[type=submit]")
    assert "请修改标出的内容" in page.content(), "required fields left empty are refused"
    assert page.input_value("#name") == "团结村青稞加工坊", "entered values are kept"
    assert page.query_selector("#error-asset_ownership") is not None
    page.fill("#performance_target", "带动25户脱贫户增收")
    page.fill("#benefit_mechanism", "务工就业+入股分红")
    page.fill("#asset_ownership", "团结村股份经济合作社")
    page.fill("#assessment", "村两委组织论证，可行")
    page.check("#negative_list_checked")
    page.check("#related_to_consolidation")
    page.fill("#responsible_unit", "团结村村委会")
    page.fill("#responsible_person", "扎西")
    page.click("button[type=submit]")
    page.wait_for_url("**/instances/*")
    iid = int(page.url.rsplit("/", 1)[1])
    assert "90 万元" in page.inner_text("dl.data")
    page.click("form.act button[value=submit]")
    page.wait_for_load_state()
    assert state_of(page) == "村内公示"
    page.context.close()

    site["clock"].advance(days=11)
    system_fires(site, iid, "notice_ended")

    page = login(chromium, site, "applicant")
    page.goto(f"{site['base']}/instances/{iid}")
    page.fill(".op input[name=comment]", "请尽快审核")
    page.click("button.urge")
    page.wait_for_load_state()
    assert "已催办 1 次" in page.inner_text("#approvals")
    page.context.close()

    page = login(chromium, site, "township")
    assert_chinese_rendered(page)
    assert page.inner_text("#messages-link").startswith("我的消息")
    snapshot(page, "task-queue.png")
    page.context.close()
    assert act_from_queue(chromium, site, "township", iid, "材料真实完整，同意") == "行业部门审查"

    with site["sessions"]() as s:
        data = s.get(Instance, iid).data
    for dept in project_library.departments_for(data):
        act_from_queue(chromium, site, f"dept_{dept}", iid, "符合行业要求")
    approvers = {"agriculture": "county_approver", "finance": "county_finance"}
    states = [
        act_from_queue(chromium, site, approvers[d], iid, "同意入库")
        for d in project_library.approval_parties(data)
    ]
    assert states[-1] == "县级公告"

    site["clock"].advance(days=11)
    system_fires(site, iid, "notice_ended")

    page = login(chromium, site, "auditor")
    page.goto(f"{site['base']}/instances/{iid}")
    assert state_of(page) == "已入库"
    assert page.inner_text("#chain") == "审计链校验通过"
    trail = page.inner_text("table.trail")
    assert "催办" in trail
    for who in ("团结村两委", "泸桥镇审核", "泸定县农牧农村局", "泸定县财政局", "SYSTEM"):
        assert who in trail
    rows = page.query_selector_all("table.trail tbody tr")
    expected = (
        2
        + 1
        + 2
        + len(project_library.departments_for(data))
        + len(project_library.approval_parties(data))
        + 1
    )
    assert len(rows) == expected
    assert "县级公告 → 已入库" in trail
    diagram = page.query_selector(".diagram img")
    assert diagram.evaluate("img => img.complete && img.naturalWidth > 0")
    snapshot(page, "instance.png")
    page.context.close()

    page = login(chromium, site, "township_other")
    response = page.goto(f"{site['base']}/instances/{iid}")
    assert response.status == 404
    assert "团结村青稞加工坊" not in page.content()
    page.context.close()


def test_phone_width_layout_has_no_horizontal_scroll(chromium, site):
    context = chromium.new_context(locale="zh-CN", viewport={"width": 375, "height": 740}, is_mobile=True)
    page = context.new_page()
    page.goto(site["base"] + "/login")
    page.fill("#username", "township")
    page.fill("#password", demo.PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/tasks/")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.screenshot(path=str(ARTIFACTS / "phone-task-queue.png"), full_page=True)
    context.close()


def test_english_switch_in_the_browser(chromium, site):
    page = login(chromium, site, "township")
    page.click("button[value=en]")
    page.wait_for_load_state()
    assert "My tasks" in page.inner_text("header")
    page.context.close()
