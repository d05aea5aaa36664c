"""Spending progress on a small fixed ledger, every checkpoint hand-computed (policy 2025).

泸定县: 中央 100万 (质保金 3万 → base 97万), 省级 50万; each checkpoint lands exactly on the
milestone except September (94.73 / 147 = 64.44%). 康定市: 中央 200万; April 32.99% fails
by 0.01 (province average 33.5 does not help); June 46.49% passes on the province average
(45); a payment dated 2026 never counts.
"""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from tests.reports.conftest import read, xlsx
from workflows import policy
from workflows.reports import spending
from workflows.reports.importer import ImportFailed
from workflows.reports.spending import TOTAL

P = policy.load(2025)
C, S = "中央衔接资金", "省级衔接资金"
LD, KD = "泸定县", "康定市"
ALLOCATED = [(LD, C, "100"), (LD, S, "50"), (KD, C, "200")]
PAID = [
    (LD, "蔬菜大棚", C, "2025-04-30", "32.01", "否"),
    (LD, "蔬菜大棚", C, "2025-05-01", "16.49", "否"),
    (LD, "蔬菜大棚", C, "2025-07-31", "8.73", "否"),
    (LD, "蔬菜大棚", C, "2025-10-01", "24.25", "否"),
    (LD, "蔬菜大棚", C, "2025-12-31", "15.52", "否"),
    (LD, "蔬菜大棚", C, "2025-12-20", "3", "是"),
    (LD, "入户道路", S, "2025-04-01", "16.5", "否"),
    (LD, "入户道路", S, "2025-06-30", "8.5", "否"),
    (LD, "入户道路", S, "2025-07-01", "4.5", "否"),
    (LD, "入户道路", S, "2025-09-30", "8", "否"),
    (LD, "入户道路", S, "2025-10-31", "4.5", "否"),
    (LD, "入户道路", S, "2025-12-01", "8", "否"),
    (KD, "冷链中心", C, "2025-04-30", "65.98", "否"),
    (KD, "冷链中心", C, "2025-05-15", "27", "否"),
    (KD, "冷链中心", C, "2025-08-01", "60", "否"),
    (KD, "冷链中心", C, "2026-01-05", "47.02", "否"),
]
PROVINCE = [(4, "33.5"), (6, "45")]

EXPECTED_TOTALS = {
    # month: (泸定县 spent 万, share %, passed), (康定市 spent 万, share %, passed)
    4: (("48.51", "33.00", True), ("65.98", "32.99", False)),
    6: (("73.5", "50.00", True), ("92.98", "46.49", True)),
    7: (("86.73", "59.00", True), ("92.98", "46.49", False)),
    9: (("94.73", "64.44", False), ("152.98", "76.49", True)),
    10: (("123.48", "84.00", True), ("152.98", "76.49", False)),
    12: (("147", "100.00", True), ("152.98", "76.49", False)),
}
EXPECTED_BEHIND = {4: [KD], 6: [], 7: [KD], 9: [LD], 10: [KD], 12: [KD]}


def ledger_file(allocated=ALLOCATED, paid=PAID, province=PROVINCE):
    return xlsx(
        {
            "下达资金": [spending.COLUMNS["下达资金"], *allocated],
            "拨付记录": [spending.COLUMNS["拨付记录"], *paid],
            "全省平均": [spending.COLUMNS["全省平均"], *province],
        }
    )


def load(sessions, actor, who="pref_bureau", data=None):
    with sessions() as s:
        return spending.load(s, actor(who), data or ledger_file())


def rows_of(ledger, as_of=None):
    return spending.progress(P, ledger.allocations, ledger.disbursements, ledger.province_average, as_of)


def test_every_checkpoint_against_hand_computed_totals(sessions, world, actor):
    rows = rows_of(load(sessions, actor))
    totals = {(r.month, r.county): r for r in rows if r.source == TOTAL}
    for month, expected in EXPECTED_TOTALS.items():
        for county, (spent, share, passed) in zip((LD, KD), expected, strict=True):
            r = totals[(month, county)]
            assert (r.spent, r.percent, r.passed) == (int(Decimal(spent) * 10**6), Decimal(share), passed)
    assert spending.behind(rows) == EXPECTED_BEHIND


def test_retention_leaves_spending_and_base(sessions, world, actor):
    rows = rows_of(load(sessions, actor))
    central = {r.month: r for r in rows if (r.county, r.source) == (LD, C)}
    assert (central[12].allocated, central[12].retention, central[12].base) == (
        100 * 10**6,
        3 * 10**6,
        97 * 10**6,
    )
    assert [central[m].percent for m in (4, 6, 7, 9, 10, 12)] == [
        Decimal(x) for x in ("33.00", "50.00", "59.00", "59.00", "84.00", "100.00")
    ]
    assert [central[m].passed for m in (4, 6, 7, 9, 10, 12)] == [True, True, True, False, True, True]


def test_a_checkpoint_just_below_fails_and_as_of_stops_early(sessions, world, actor):
    paid = [(LD, "x", C, "2025-04-30", "32.999999", "否")]
    ledger = load(sessions, actor, data=ledger_file([(LD, C, "100")], paid, []))
    (april,) = [r for r in rows_of(ledger, as_of=date(2025, 5, 31)) if r.source == TOTAL]
    assert (april.month, april.percent, april.passed) == (4, Decimal("32.99"), False)


def test_the_ledger_is_scoped_to_the_readers_counties(sessions, world, actor):
    ledger = load(sessions, actor, who="county_approver")
    assert {c for c, _ in ledger.allocations} == {LD}
    assert {d.county for d in ledger.disbursements} == {LD}


def test_bad_ledger_rows_are_located(sessions, world, actor):
    paid = [
        (LD, "x", C, "2025-13-01", "1", "否"),
        ("成都市", "x", C, "2025-05-01", "1", "否"),
        (LD, "x", "银行贷款", "2025-05-01", "1.0000001", "否"),
    ]
    with pytest.raises(ImportFailed) as failed:
        load(sessions, actor, data=ledger_file(paid=paid))
    assert [(e.sheet, e.row, e.column, e.header) for e in failed.value.errors] == [
        ("拨付记录", 2, "D", "拨付日期"),
        ("拨付记录", 3, "A", "县(市)"),
        ("拨付记录", 4, "C", "资金来源"),
        ("拨付记录", 4, "E", "金额(万元)"),
    ]


def test_export_reopens_with_headers_and_exact_values(sessions, world, actor):
    data = spending.workbook(rows_of(load(sessions, actor)))
    table = read(data, "支出进度")
    assert tuple(table[0]) == spending.HEADERS
    row = next(r for r in table if r[:3] == [LD, TOTAL, "9月底"])
    assert row[3:] == [150, 3, 147, Decimal("94.73"), Decimal("64.44"), 75, None, "滞后"]
    sheet = load_workbook(io.BytesIO(data))["支出进度"]
    assert sheet.freeze_panes == "A2"
    assert (sheet["G2"].number_format, sheet["D2"].number_format) == ("#,##0.######", "#,##0")
    behind = read(data, "滞后县")
    assert behind[1:] == [
        ["4月底", KD, 1],
        ["6月底", "无", 0],
        ["7月底", KD, 1],
        ["9月底", LD, 1],
        ["10月底", KD, 1],
        ["12月底", KD, 1],
    ]
