"""Languages: Chinese by default, English on request, and no message left untranslated."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask import session

from engine.store.models import User
from web.i18n import TRANSLATIONS, compile_catalogs, one_language

WEB = Path(__file__).parents[2] / "web"
METHODS = [("**/templates/**.html", "jinja2"), ("**.py", "python")]


def test_chinese_by_default_and_english_on_request(browser):
    b = browser("town_a1")
    html = b.get("/tasks/").get_data(as_text=True)
    assert "我的待办" in html and 'lang="zh-CN"' in html
    assert b.post("/lang", {"lang": "en", "next": "/tasks/"}).location == "/tasks/"
    html = b.get("/tasks/").get_data(as_text=True)
    assert "My tasks" in html and "我的待办" not in html and 'lang="en"' in html
    b.post("/lang", {"lang": "zh"})
    assert "我的待办" in b.get("/tasks/").get_data(as_text=True)


def test_unknown_language_keeps_the_current_one(browser):
    b = browser("town_a1")
    b.post("/lang", {"lang": "xx"})
    assert "我的待办" in b.get("/tasks/").get_data(as_text=True)


def test_every_message_has_an_english_translation():
    with (TRANSLATIONS / "en/LC_MESSAGES/messages.po").open("rb") as f:
        catalog = read_po(f)
    used = {found[2] for found in extract_from_dir(str(WEB), METHODS, keywords={"_": None, "gettext": None})}
    assert {"我的待办", "审计链校验通过", "%(n)s天内到期"} <= used
    missing = sorted(m for m in used if not (catalog.get(m) and catalog.get(m).string))
    assert missing == []


def test_a_stale_mo_is_compiled_from_its_po(tmp_path):
    shutil.copytree(TRANSLATIONS, tmp_path / "t")
    mo = tmp_path / "t/en/LC_MESSAGES/messages.mo"
    mo.unlink()
    assert compile_catalogs(tmp_path / "t") == [mo]
    assert compile_catalogs(tmp_path / "t") == []
    po = mo.with_suffix(".po")
    os.utime(po, (mo.stat().st_mtime + 10, mo.stat().st_mtime + 10))
    assert compile_catalogs(tmp_path / "t") == [mo]
    with mo.open("rb") as f:
        assert read_mo(f).get("我的待办").string == "My tasks"


def test_the_choice_is_saved_and_used_at_the_next_login(browser, sessions, world):
    b = browser("town_a1")
    b.post("/lang", {"lang": "en", "next": "/tasks/"})
    with sessions() as s:
        assert s.get(User, world.u["town_a1"].id).locale == "en"
    html = browser("town_a1").get("/tasks/").get_data(as_text=True)
    assert "My tasks" in html, "a fresh login comes back in English"
    assert "我的待办" in browser("town_a2").get("/tasks/").get_data(as_text=True)


@pytest.mark.parametrize(
    ("message", "zh", "en"),
    [
        (
            "事项已挂起，请先恢复 (instance 3 is suspended: resume it first)",
            "事项已挂起，请先恢复",
            "instance 3 is suspended: resume it first",
        ),
        ("名称: 必填 (required)", "名称: 必填", "required"),
        ("牦牛养殖 (一期)", "牦牛养殖 (一期)", "牦牛养殖 (一期)"),
        ("已保存", "已保存", "已保存"),
    ],
)
def test_engine_messages_show_in_the_page_language(app, message, zh, en):
    with app.test_request_context("/"):
        assert one_language(message) == zh
    with app.test_request_context("/"):
        session["lang"] = "en"
        assert one_language(message) == en
