"""报表: exports scoped by the user, all-or-nothing imports with an error table, templates, dashboards.

These run the real Ganzi workflows (``workflows:build_runtime``) on two counties of the demo tree.
"""

from __future__ import annotations

import io
import re

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from engine.scope import load_actor
from engine.store.models import Instance, OrgUnit, User
from tests.conftest import T0
from tests.web.conftest import Browser
from tests.workflows.conftest import TEST_COUNTIES
from web import create_app
from workflows import demo
from workflows.reports import importer


@pytest.fixture
def ganzi(sessions, db_url, tmp_path):
    with sessions.begin() as s:
        demo.build_world(s, T0, TEST_COUNTIES)
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret",
            "SHUANGTI_DB": db_url,
            "CLOCK": lambda: T0,
            "UPLOAD_DIR": str(tmp_path / "attachments"),
        }
    )
    yield app
    app.extensions["shuangti"]["engine"].dispose()


@pytest.fixture
def user(ganzi):
    def make(name: str) -> Browser:
        b = Browser(ganzi.test_client())
        assert b.login(name, demo.PASSWORD).status_code == 302
        return b

    return make


def sheet_rows(data: bytes, title: str) -> list[tuple]:
    return list(load_workbook(io.BytesIO(data))[title].iter_rows(values_only=True))


def upload(rows: list[list]) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = importer.SHEETS[importer.PROJECTS]
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_templates_download_and_unknown_is_404(user):
    b = user("applicant")
    for kind in ("projects", "plan", "spending", "ranking"):
        r = b.get(f"/import/template/{kind}.xlsx")
        assert r.status_code == 200 and r.data[:2] == b"PK"
    assert b.get("/import/template/nope.xlsx").status_code == 404


def test_a_bad_import_is_422_with_every_fault_and_imports_nothing(user, ganzi, sessions):
    b = user("applicant")
    headers = list(sheet_rows(b.get("/import/template/projects.xlsx").data, importer.SHEETS["projects"])[0])
    data = upload([headers, ["x"] * len(headers)])
    r = b.post("/import/projects", {"file": (io.BytesIO(data), "p.xlsx")}, content_type="multipart/form-data")
    html = r.get_data(as_text=True)
    assert r.status_code == 422 and "未导入任何数据" in html
    assert len(re.findall(r"<tr><td", html)) >= 2 and importer.SHEETS["projects"] in html
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Instance)) == 0
    r = b.post("/import/projects", {}, content_type="multipart/form-data")
    assert r.status_code == 422
    assert b.post("/import/nope", {}).status_code == 404
    token_less = b.client.post("/import/projects", data={"file": (io.BytesIO(data), "p.xlsx")})
    assert token_less.status_code == 400


def test_exports_hold_only_what_the_user_sees(user, ganzi, sessions):
    with sessions.begin() as s:
        runtime = ganzi.extensions["shuangti"]["runtime"]
        applicant = s.scalars(select(User).where(User.username == "applicant")).one()
        village = s.scalars(select(OrgUnit).where(OrgUnit.code == "51332201001")).one()
        runtime.start(
            s,
            "project_library",
            load_actor(s, applicant.id, T0),
            org_unit_id=village.id,
            form=demo.project_form("团结村青稞加工坊", "产业发展", "90"),
            now=T0,
        )
    rows = sheet_rows(user("auditor").get("/reports/library.xlsx").data, importer.SHEETS["projects"])
    assert len(rows) == 2 and "团结村青稞加工坊" in rows[1]
    other = sheet_rows(user("township_other").get("/reports/library.xlsx").data, importer.SHEETS["projects"])
    assert len(other) == 1
    assert user("auditor").get("/reports/library.xlsx?county=513301").status_code == 404
    assert user("auditor").get("/reports/ledger.xlsx?county=513322").status_code == 200
    assert user("auditor").get("/reports/audit.xlsx").status_code == 422
    assert user("auditor").get("/reports/audit.xlsx?county=513322&from=2025-01-01").status_code == 200
    assert user("auditor").get("/reports/audit.xlsx?county=513322&from=bad").status_code == 422
    assert user("auditor").get("/reports/plan.xlsx?year=1999").status_code == 404
    stats = user("auditor").get("/reports/library").get_data(as_text=True)
    assert "村级申报" in stats and "产业发展" in stats


def test_dashboards_and_bulletin(user):
    b = user("county_approver")
    spending = b.get("/reports/spending")
    assert spending.status_code == 200 and "<svg" in spending.get_data(as_text=True)
    assert "polyline" in spending.get_data(as_text=True)
    assert b.get("/reports/ledger?ownership=x").status_code == 200
    assert b.get("/reports/industry.xlsx").data[:2] == b"PK"
    assert b.get("/reports/targets?quarter=1").status_code == 200
    assert b.get("/reports/targets.xlsx?quarter=5").status_code == 422
    assert b.get("/reports/").status_code == 200
    r = b.post(
        "/reports/spending.xlsx",
        {"file": (io.BytesIO(b"not a workbook"), "x.xlsx")},
        content_type="multipart/form-data",
    )
    assert r.status_code == 422 and "xlsx" in r.get_data(as_text=True)
