"""Hostile form input: refused with an error naming the field and nothing stored, or stored as given
and shown escaped. The field rules are in ``engine.forms`` (and docs/reliability.md, "Hostile input").

Engine level first (``forms.parse``, pure, with hypothesis for text and amounts), then the same
values through the web start form, the JSON API and an action form, counting the rows before
and after; then markup and scripts that are valid text, stored verbatim and escaped on every page.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from decimal import localcontext

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from engine.definitions import Field
from engine.errors import InvalidForm
from engine.forms import FEN_PER_WAN, LIMIT, parse
from engine.scope import Actor
from engine.store.models import AuditEvent, Instance
from tests.engine.sample import GRANT, grant_form
from tests.reliability.hostile_settings import HOSTILE
from tests.reliability.hostile_web import (
    ROUTE,
    actor,
    api,
    app,
    browser,
    clock,
    make_instance,
    runtime,
    stored,
    world,
)

__all__ = ["actor", "api", "app", "browser", "clock", "make_instance", "runtime", "world"]

NAME = Field("name", "名称", max_length=50)
AMOUNT = Field("amount", "金额", kind="money", min_value=1)
COUNT = Field("count", "户数", kind="int", min_value=0)
DAY = Field("day", "日期", kind="date")
TIBETAN = "བོད་ཡིག་གི་ཚིག་གྲུབ།"
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(document.cookie)>'
SQL = "'; DROP TABLE task; --"
FORBIDDEN = {"\x00", "\x1b", "\x7f", "\x85", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e"}
FORBIDDEN |= {"\u2066", "\u2067", "\u2068", "\u2069"}


def _refusal(field: Field, raw) -> str:
    """The error ``parse`` gives for ``raw`` in ``field``; it must be the only error, under the field's name."""
    with pytest.raises(InvalidForm) as refused:
        parse([field], {field.name: raw})
    assert set(refused.value.errors) == {field.name}
    message = refused.value.errors[field.name]
    assert message.startswith(f"{field.label}: ")
    return message


def _forbidden(ch: str) -> bool:
    return ch not in "\n\t" and (unicodedata.category(ch) in ("Cc", "Cs") or ch in FORBIDDEN)


@pytest.mark.parametrize(
    "raw, kept",
    [
        (TIBETAN, TIBETAN),
        ("牦牛养殖合作社 — 甘孜州", "牦牛养殖合作社 — 甘孜州"),
        (SCRIPT, SCRIPT),
        (IMG, IMG),
        (SQL, SQL),
        ("  第一行\r\n第二行\tཀ\r第三行  ", "第一行\n第二行\tཀ\n第三行"),
        ("😀 家庭农场", "😀 家庭农场"),
        (12345, "12345"),
    ],
)
def test_any_script_and_markup_are_kept_as_given(raw, kept):
    """Tibetan, Chinese, emoji, HTML and SQL are text like any other; only line ends are normalised."""
    assert parse([NAME], {"name": raw}) == {"name": kept}


@pytest.mark.parametrize("ch", sorted(FORBIDDEN | {"\ud800", "\x08", "\x0c"}))
def test_control_characters_are_refused_naming_the_code_point(ch):
    """NUL, ESC, DEL, C1 controls, bidi overrides and lone surrogates are refused, never stripped."""
    message = _refusal(NAME, f"名称{ch}后")
    assert f"U+{ord(ch):04X}" in message and "control character" in message


def test_oversize_text_is_refused_with_the_limit_named():
    """The limit counts characters, not bytes: 50 Tibetan letters pass, 51 are refused naming 50."""
    assert parse([NAME], {"name": "ཀ" * 50}) == {"name": "ཀ" * 50}
    assert "最多50字 (at most 50 characters)" in _refusal(NAME, "ཀ" * 51)
    assert "最多50字" in _refusal(NAME, "x" * 1_000_000)


@pytest.mark.parametrize("raw", [["a"], {"a": 1}, True, b"bytes"])
def test_text_of_another_type_is_refused(raw):
    """A JSON list, object or boolean is not text."""
    assert "须为文字 (must be text)" in _refusal(NAME, raw)


@settings(HOSTILE, max_examples=300)
@given(raw=st.text(max_size=80))
def test_any_text_is_kept_or_refused_by_the_rules(raw):
    """For any string: accepted exactly when no forbidden character and within the limit, and then kept."""
    text = raw.replace("\r\n", "\n").replace("\r", "\n").strip()
    bad = any(_forbidden(ch) for ch in text)
    try:
        values = parse([NAME], {"name": raw})
    except InvalidForm as refused:
        assert set(refused.errors) == {"name"}
        assert bad or len(text) > NAME.max_length or not text
    else:
        assert not bad and values == {"name": text}


BAD_AMOUNTS = {
    "-1": "不能小于 0.000001 万元",
    "0": "不能小于",
    "abc": "不是有效金额",
    "十二": "不是有效金额",
    "NaN": "不是有效金额",
    "nan": "不是有效金额",
    "sNaN": "不是有效金额",
    "Infinity": "不是有效金额",
    "-Infinity": "不是有效金额",
    "1e3": "不是有效金额",
    "1E+999999999": "不是有效金额",
    "0x10": "不是有效金额",
    "1_000": "不是有效金额",
    "12.5.1": "不是有效金额",
    "1.0000001": "精度不能小于1分",
    "0.0000005": "精度不能小于1分",
    "1" + "0" * 12: "金额超出范围",
    "9" * 39: "金额超出范围",
    "9" * 41: "数字过长",
    "'; DROP TABLE task; --": "不是有效金额",
}


@pytest.mark.parametrize("raw, why", BAD_AMOUNTS.items())
def test_bad_amounts_are_refused_by_name(raw, why):
    """Negative, non-numeric, NaN/Infinity, exponent, finer than 1 分 and huge amounts in 万元 are refused."""
    assert why in _refusal(AMOUNT, raw)


@pytest.mark.parametrize(
    "raw, fen",
    [
        ("12.5", 12_500_000),
        (" 1,234.000001 ", 1_234_000_001),
        ("１２．５", 12_500_000),
        (".5", 500_000),
        (7, 7_000_000),
        (0.1, 100_000),
        (str(LIMIT // FEN_PER_WAN), LIMIT),
    ],
)
def test_good_amounts_are_exact(raw, fen):
    """Plain decimals (full-width digits and thousands commas allowed) become exact 分, up to the limit."""
    assert parse([AMOUNT], {"amount": raw}) == {"amount": fen}


@settings(HOSTILE, max_examples=300)
@given(amount=st.decimals(allow_nan=True, allow_infinity=True) | st.decimals(places=7, max_value=10**10))
def test_any_decimal_is_exact_or_refused(amount):
    """Any decimal, in any notation Decimal prints it: accepted exactly when it is plain, a whole number
    of 分 and within 1 分 … the limit, and then as those exact 分 (never rounded)."""
    text = str(amount)
    with localcontext(prec=200):
        fen = amount * FEN_PER_WAN if amount.is_finite() else None
    acceptable = (
        fen is not None
        and "E" not in text
        and len(text) <= 40
        and fen == fen.to_integral_value()
        and 1 <= fen <= LIMIT
    )
    try:
        values = parse([AMOUNT], {"amount": text})
    except InvalidForm as refused:
        assert set(refused.errors) == {"amount"} and not acceptable
    else:
        assert acceptable and values == {"amount": int(fen)}


@pytest.mark.parametrize(
    "raw, why",
    [
        ("-1", "不能小于 0"),
        ("1.5", "须为整数"),
        ("1e3", "须为整数"),
        ("NaN", "须为整数"),
        ("١٢", "须为整数"),
        (True, "须为整数"),
        ([1], "须为整数"),
        (10**400, "不能大于"),
        ("9" * 41, "数字过长"),
    ],
)
def test_bad_whole_numbers_are_refused_by_name(raw, why):
    """Counts are whole, within bounds, in ASCII or full-width digits only; a JSON bool is not a number."""
    assert why in _refusal(COUNT, raw)


@pytest.mark.parametrize(
    "raw, why",
    [
        ("0000-01-01", "须是真实日期"),
        ("2026-02-30", "须是真实日期"),
        ("2026-13-01", "须是真实日期"),
        ("20260101", "须是真实日期"),
        ("2026-W01-1", "须是真实日期"),
        ("26-1-1", "须是真实日期"),
        ("9999-12-31", "日期须在 1900-01-01 至 2100-12-31 之间"),
        ("0001-01-01", "日期须在"),
        ("1899-12-31", "日期须在"),
        (20260101, "须是真实日期"),
        ("2026-02-28'; DROP TABLE task; --", "须是真实日期"),
    ],
)
def test_absurd_dates_are_refused_by_name(raw, why):
    """Dates are real YYYY-MM-DD days between 1900 and 2100: no year 0, no 30 February, no year 9999."""
    assert why in _refusal(DAY, raw)


def test_plausible_dates_pass():
    assert parse([DAY], {"day": " 2024-02-29 "}) == {"day": "2024-02-29"}
    assert parse([DAY], {"day": "2100-12-31"}) == {"day": "2100-12-31"}


def test_choices_refuse_other_values_and_types():
    """Only the listed choices: not another string, a list inside a list, or a number."""
    depts = next(f for f in GRANT.start_fields if f.name == "depts")
    assert parse([depts], {"depts": ["agri", "agri", "roads"]}) == {"depts": ["agri", "roads"]}
    for raw in (["agri", SCRIPT], [["agri"]], [1], {"agri": 1}):
        assert "not one of the choices" in _refusal(depts, raw)


# ---- through the web app and the API ----------------------------------------------------------

WEB_CASES = [
    ("name", "x" * 501, "最多500字"),
    ("name", "合作社\x00", "U+0000"),
    ("name", "合作社\x1b[31m", "U+001B"),
    ("name", "合作社\u202etxt.exe", "U+202E"),
    ("plan", "方案\x07", "U+0007"),
    ("amount", "-5", "不能小于"),
    ("amount", "abc", "不是有效金额"),
    ("amount", "NaN", "不是有效金额"),
    ("amount", "Infinity", "不是有效金额"),
    ("amount", "1.0000001", "精度不能小于1分"),
    ("amount", "1" + "0" * 20, "金额超出范围"),
    ("amount", "'; DROP TABLE task; --", "不是有效金额"),
]


def test_start_form_refuses_each_hostile_value_and_stores_nothing(browser, world, sessions):
    """Each bad value re-renders the form with 422 and the error beside its field; no row is written."""
    b = browser("applicant_a1")
    before = stored(sessions)
    for field, value, why in WEB_CASES:
        form = {**grant_form("50"), field: value}
        r = b.post("/start/grant", data={**form, "org_unit_id": world.units["A1v"].id})
        page = r.get_data(as_text=True)
        assert r.status_code == 422, (field, value)
        assert f'id="error-{field}"' in page and why in page, (field, value)
        assert stored(sessions) == before, (field, value)


def test_api_start_refuses_hostile_json_and_stores_nothing(api, world, sessions):
    """The API answers 422 with the field named for each bad value, whatever its JSON type."""
    client = api("applicant_a1")
    cases = [
        *((field, value) for field, value, _why in WEB_CASES),
        ("name", ["列表"]),
        ("name", {"a": 1}),
        ("name", "\ud800"),
        ("amount", True),
        ("amount", 1e300),
        ("amount", float("nan")),
        ("amount", -0.5),
        ("depts", "agri\x00"),
        ("depts", [{"x": 1}]),
    ]
    before = stored(sessions)
    for field, value in cases:
        body = {
            "workflow": "grant",
            "org_unit_id": world.units["A1v"].id,
            "form": {**grant_form(), field: value},
        }
        r = client.post("/api/v1/instances", json=body)
        assert r.status_code == 422, (field, value)
        assert set(r.get_json()["fields"]) == {field}, (field, value)
        assert stored(sessions) == before
    r = client.post(
        "/api/v1/instances",
        json={"workflow": "grant", "org_unit_id": world.units["A1v"].id, "form": {"x\x00<b>": 1}},
    )
    assert r.status_code == 422 and "x\x00<b>" in r.get_json()["fields"]
    assert stored(sessions) == before


def test_action_form_fields_are_checked_like_start_fields(api, browser, make_instance, sessions):
    """An action's own field (county review's 意见) refuses control characters and excess length too,
    from the instance page's form (422, the page again with the reason) and from the API."""
    iid = make_instance("150", steps=(*ROUTE, ("approve", "town_a1")))
    client, page = api("county_a"), browser("county_a")
    with sessions() as s:
        version = s.scalar(select(Instance.version_id).where(Instance.id == iid))
    before = stored(sessions)
    for note, why in (("同意\x00", "U+0000"), ("同意\u202e", "U+202E"), ("意" * 501, "最多500字")):
        r = client.post(f"/api/v1/instances/{iid}/fire", json={"trigger": "approve", "form": {"note": note}})
        assert r.status_code == 422 and why in r.get_json()["fields"]["note"]
        form = {"trigger": "approve", "expected_version": str(version), "field.note": note}
        r = page.post(f"/instances/{iid}/fire", form)
        assert r.status_code == 422 and why in r.get_data(as_text=True)
    assert stored(sessions) == before


def test_markup_is_stored_as_given_and_escaped_on_every_page(browser, world, sessions, clock, runtime):
    """Script and attribute-breaking markup in a title, a text field and a comment: stored verbatim,
    escaped on the instance page, the instance list, the task queue and the audit trail."""
    applicant = browser("applicant_a1")
    name = f"{TIBETAN} {SCRIPT}"
    r = applicant.post(
        "/start/grant",
        data={**grant_form("50", name=name, plan=IMG, target=SQL), "org_unit_id": world.units["A1v"].id},
    )
    assert r.status_code == 302
    with sessions() as s:
        inst = s.scalars(select(Instance)).one()
        assert (inst.title, inst.data["name"], inst.data["plan"], inst.data["target"]) == (
            name,
            name,
            IMG,
            SQL,
        )
        version = inst.version_id
    r = applicant.post(
        f"/instances/{inst.id}/fire",
        data={"trigger": "submit", "comment": f"{SCRIPT}{IMG}", "expected_version": version},
    )
    assert r.status_code == 302
    with sessions() as s:
        comments = [e.comment for e in s.scalars(select(AuditEvent).where(AuditEvent.instance_id == inst.id))]
    assert f"{SCRIPT}{IMG}" in comments
    pages = [
        applicant.get(f"/instances/{inst.id}"),
        applicant.get("/instances/"),
        browser("town_a1").get(f"/instances/{inst.id}"),
        browser("auditor_a").get("/instances/"),
    ]
    with sessions.begin() as s:
        runtime.fire(s, inst.id, "notice_ended", Actor.system(), now=clock.now)
    pages.append(browser("town_a1").get("/tasks/"))
    for r in pages:
        page = r.get_data(as_text=True)
        assert r.status_code == 200
        assert "<script>alert(1)" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert TIBETAN in page
    instance_page = pages[0].get_data(as_text=True)
    assert "&#34;&gt;&lt;img src=x onerror=alert(document.cookie)&gt;" in instance_page
    assert "&#39;; DROP TABLE task; --" in instance_page


FORMULA = '=HYPERLINK("http://127.0.0.1/x","点此")'


def test_a_formula_in_a_comment_is_exported_as_text(browser, world, sessions):
    """A comment that looks like a formula stays text in the audit trail's .xlsx and .csv (formula injection)."""
    applicant = browser("applicant_a1")
    r = applicant.post("/start/grant", data={**grant_form("50"), "org_unit_id": world.units["A1v"].id})
    assert r.status_code == 302
    with sessions() as s:
        inst = s.scalars(select(Instance)).one()
    r = applicant.post(
        f"/instances/{inst.id}/fire",
        data={"trigger": "submit", "comment": FORMULA, "expected_version": inst.version_id},
    )
    assert r.status_code == 302

    book = openpyxl.load_workbook(io.BytesIO(applicant.get(f"/instances/{inst.id}/audit.xlsx").get_data()))
    cells = [c for row in book.active.iter_rows() for c in row if c.value == FORMULA]
    assert cells and all(c.data_type == "s" for c in cells)
    rows = list(csv.reader(io.StringIO(applicant.get(f"/instances/{inst.id}/audit.csv").get_data(as_text=True))))
    assert any("'" + FORMULA in row for row in rows)
    assert not any(cell.startswith("=") for row in rows for cell in row)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"trigger": "return", "comment": "退回\x00"}, "comment"),
        ({"trigger": "return", "comment": "退回\ud800"}, "comment"),
        ({"trigger": "return", "comment": 5}, "comment"),
        ({"trigger": "return", "comment": "理由" * 100_000}, "comment"),
        ({"trigger": "approve", "idempotency_key": "k" * 300}, "idempotency_key"),
        ({"trigger": "approve", "idempotency_key": [1]}, "idempotency_key"),
    ],
)
def test_comment_and_idempotency_key_are_checked_like_fields(api, make_instance, sessions, body, field):
    """A comment is text under the text rules (with a limit); an idempotency key fits its column."""
    iid = make_instance("150")
    client = api("town_a1")
    before = stored(sessions)
    r = client.post(f"/api/v1/instances/{iid}/fire", json=body)
    assert r.status_code == 422 and field in r.get_json()["fields"]
    assert stored(sessions) == before
