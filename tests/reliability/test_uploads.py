"""Hostile uploads: attachments to an action and Excel imports.

An attachment is stored only as ``UPLOAD_DIR/<instance>/<sha256>`` (checked on disk), under a
display name cut to its last path part; its extension must be allowed and its content must be
what the extension says. An import must be an ``.xlsx`` zip holding a workbook that unpacks to a
sane size. Anything refused is 422 (413 past the 32 MB request limit) and stores nothing.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from pathlib import Path

import pytest
from markupsafe import escape
from openpyxl import Workbook
from sqlalchemy import func, select

from engine.store.models import AuditEvent, Instance
from tests.reliability.hostile_web import actor, app, browser, clock, make_instance, runtime, stored, world
from tests.web.test_reports import ganzi, user
from web.instances import ATTACHMENT_NAME_MAX, attachment_name

__all__ = ["actor", "app", "browser", "clock", "ganzi", "make_instance", "runtime", "user", "world"]

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 17
JPG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 20
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 40
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 40
SHA = re.compile(r"[0-9a-f]{64}")


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def _workbook() -> bytes:
    out = io.BytesIO()
    Workbook().save(out)
    return out.getvalue()


DOCX = _zip({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:document/>"})


def _fire(b, iid: int, version: int, files):
    return b.post(
        f"/instances/{iid}/fire",
        {"trigger": "approve", "expected_version": str(version), "attachments": files},
        content_type="multipart/form-data",
    )


def _on_disk(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def _version(sessions, iid: int) -> int:
    with sessions() as s:
        return s.scalar(select(Instance.version_id).where(Instance.id == iid))


def _attached(sessions, iid: int) -> list[dict]:
    with sessions() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.instance_id == iid)).all()
    return [a for e in events for a in (e.detail or {}).get("attachments", ())]


GOOD = [
    ("批复.pdf", PDF),
    ("现场照片.PNG", PNG),
    ("photo.jpeg", JPG),
    ("方案.docx", DOCX),
    ("台账.xlsx", _workbook()),
    ("旧表.xls", OLE),
    ("说明.txt", "乡镇审核意见 བོད་ཡིག\n".encode()),
    ("名单.csv", "姓名,户数\n张三,3\n".encode("gb18030")),
]


def test_allowed_files_are_stored_by_hash_in_the_instance_folder_only(make_instance, browser, sessions, app):
    """Every allowed type with matching content is kept, as <instance>/<sha256>, and served back."""
    iid = make_instance()
    b = browser("town_a1")
    r = _fire(b, iid, _version(sessions, iid), [(io.BytesIO(data), name) for name, data in GOOD])
    assert r.status_code == 302
    root = Path(app.config["UPLOAD_DIR"])
    expected = sorted(Path(str(iid)) / hashlib.sha256(data).hexdigest() for _name, data in GOOD)
    assert _on_disk(root) == expected
    assert [(a["name"], a["size"]) for a in _attached(sessions, iid)] == [(n, len(d)) for n, d in GOOD]
    for name, data in GOOD:
        got = b.get(f"/instances/{iid}/attachments/{hashlib.sha256(data).hexdigest()}")
        assert got.status_code == 200 and got.data == data, name


@pytest.mark.parametrize(
    "sent, shown",
    [
        ("../../etc/passwd.pdf", "passwd.pdf"),
        ("/etc/cron.d/job.pdf", "job.pdf"),
        ("....//..//x.pdf", "x.pdf"),
        ("<img src=x onerror=alert(1)>.pdf", "<img src=x onerror=alert(1)>.pdf"),
        ("长" * 500 + ".pdf", "长" * (ATTACHMENT_NAME_MAX - 4) + ".pdf"),
    ],
)
def test_names_keep_only_their_last_part_and_never_choose_the_path(
    make_instance, browser, sessions, app, tmp_path, sent, shown
):
    """Traversal, absolute and Windows paths and very long names: a safe display name, the file at its hash."""
    iid = make_instance()
    b = browser("town_a1")
    assert _fire(b, iid, _version(sessions, iid), [(io.BytesIO(PDF), sent)]).status_code == 302
    assert [a["name"] for a in _attached(sessions, iid)] == [shown]
    assert _on_disk(Path(app.config["UPLOAD_DIR"])) == [Path(str(iid)) / hashlib.sha256(PDF).hexdigest()]
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and "attachments" not in p.parts]
    assert all(p.name.startswith("test.db") for p in outside), outside
    page = b.get(f"/instances/{iid}").get_data(as_text=True)
    assert "<img src=x" not in page and str(escape(shown)) in page
    got = b.get(f"/instances/{iid}/attachments/{hashlib.sha256(PDF).hexdigest()}")
    assert got.status_code == 200 and "\n" not in got.headers["Content-Disposition"]


@pytest.mark.parametrize(
    "sent, shown",
    [
        ("..\\..\\..\\windows\\win.ini.pdf", "win.ini.pdf"),
        ("C:\\Users\\张三\\Desktop\\批复.pdf", "批复.pdf"),
        ("\\\\server\\share\\a.pdf", "a.pdf"),
        ("..\\/..\\/x.pdf", "x.pdf"),
    ],
)
def test_windows_paths_keep_only_their_last_part(sent, shown):
    """Old browsers send a Windows path (the test client cannot carry backslashes, so the rule is checked here)."""
    assert attachment_name(sent) == shown


REFUSED = [
    ("evil\x00.pdf", PDF, "U+0000"),
    ("a\u202efdp.exe", PDF, "U+202E"),
    ("x\x1b[2J.pdf", PDF, "U+001B"),
    ("..", PDF, "文件名无效"),
    ("../..", PDF, "文件名无效"),
    ("passwd", PDF, "不支持的文件类型"),
    ("setup.exe", EXE, "不支持的文件类型"),
    ("payload.html", b"<script>alert(1)</script>", "不支持的文件类型"),
    ("批复.pdf", EXE, "文件内容与扩展名 .pdf 不符"),
    ("照片.png", PDF, "文件内容与扩展名 .png 不符"),
    ("photo.jpg", PNG, "文件内容与扩展名 .jpg 不符"),
    ("方案.docx", b"not a zip at all", "文件内容与扩展名 .docx 不符"),
    ("方案.docx", _zip({"evil.sh": b"rm -rf /"}), "文件内容与扩展名 .docx 不符"),
    ("旧表.xls", EXE, "文件内容与扩展名 .xls 不符"),
    ("说明.txt", EXE, "文件内容与扩展名 .txt 不符"),
    ("说明.txt", b"\xff\xfe\x00\x00binary", "文件内容与扩展名 .txt 不符"),
    ("空.pdf", b"", "文件为空"),
]


def test_refused_attachments_are_422_named_and_nothing_is_stored(make_instance, browser, sessions, app):
    """Control characters in a name, a type not allowed, content that is not what the extension says:
    the action is refused with 422 naming the file, no audit event is written and no file lands."""
    iid = make_instance()
    b = browser("town_a1")
    before = stored(sessions)
    version = _version(sessions, iid)
    for name, data, why in REFUSED:
        r = _fire(b, iid, version, [(io.BytesIO(PDF), "好的.pdf"), (io.BytesIO(data), name)])
        assert r.status_code == 422, name
        assert why in r.get_data(as_text=True), name
        assert stored(sessions) == before, name
    assert _on_disk(Path(app.config["UPLOAD_DIR"])) == []
    assert _version(sessions, iid) == version


def test_a_request_over_the_limit_is_413_and_stores_nothing(make_instance, browser, sessions, app):
    """MAX_CONTENT_LENGTH (32 MB) bounds the whole request: one byte over is 413, before the engine runs."""
    iid = make_instance()
    b = browser("town_a1")
    before = stored(sessions)
    big = PDF + b"0" * app.config["MAX_CONTENT_LENGTH"]
    assert _fire(b, iid, _version(sessions, iid), [(io.BytesIO(big), "大.pdf")]).status_code == 413
    assert stored(sessions) == before
    assert _on_disk(Path(app.config["UPLOAD_DIR"])) == []


def _instances(sessions) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(Instance))


BOMB = _zip(
    {"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>", "xl/pad.xml": b"0" * (70 << 20)}
)
BAD_WORKBOOKS = [
    ("p.xlsx", b"not a workbook", "不是有效的 Excel (.xlsx) 文件"),
    ("p.xlsx", EXE, "不是有效的 Excel (.xlsx) 文件"),
    ("p.xlsx", PDF, "不是有效的 Excel (.xlsx) 文件"),
    ("p.xlsx", b"PK\x03\x04" + b"\x00" * 100, "不是有效的 Excel (.xlsx) 文件"),
    ("p.xlsx", DOCX, "不是有效的 Excel (.xlsx) 文件"),
    ("p.exe", _workbook(), "不是有效的 Excel (.xlsx) 文件"),
    ("p.csv", _workbook(), "不是有效的 Excel (.xlsx) 文件"),
    ("../../p.xlsx", b"not a workbook", "不是有效的 Excel (.xlsx) 文件"),
    ("bomb.xlsx", BOMB, "解压后超过 64 MB"),
    (
        "p.xlsx",
        _zip({"[Content_Types].xml": b"<Types", "xl/workbook.xml": b"<<<not xml", "_rels/.rels": b"\x00"}),
        "不是有效的 Excel (.xlsx) 文件",
    ),
]


@pytest.mark.parametrize("route", ["/import/projects", "/import/plan", "/reports/spending.xlsx"])
def test_imports_refuse_files_that_are_not_workbooks(user, ganzi, sessions, route):
    """A non-zip, a renamed .exe or PDF, a zip without a workbook, a wrong extension, a zip bomb,
    broken XML: 422 naming the file, and nothing imported."""
    b = user("applicant")
    before = _instances(sessions)
    for name, data, why in BAD_WORKBOOKS:
        r = b.post(route, {"file": (io.BytesIO(data), name)}, content_type="multipart/form-data")
        assert r.status_code == 422, (route, name)
        assert why in r.get_data(as_text=True), (route, name)
    assert _instances(sessions) == before
    assert not list(Path(ganzi.config["UPLOAD_DIR"]).parent.rglob("p.xlsx"))


def test_an_import_over_the_limit_is_413(user, ganzi, sessions):
    b = user("applicant")
    big = b"PK\x03\x04" + b"\x00" * ganzi.config["MAX_CONTENT_LENGTH"]
    r = b.post("/import/projects", {"file": (io.BytesIO(big), "p.xlsx")}, content_type="multipart/form-data")
    assert r.status_code == 413 and _instances(sessions) == 0
