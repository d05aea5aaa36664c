"""The 督办 deadlines dashboard: open, due soon, overdue, handled per county and step, in scope."""

from __future__ import annotations

import re


def figures(html: str, table: str) -> dict[str, list[str]]:
    body = re.search(rf'<table class="list" id="{table}">(.*?)</table>', html, re.S).group(1)
    found = {}
    for row in re.findall(r"<tr class=\"[^\"]*\">(.*?)</tr>", body, re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        found[cells[0]] = cells[1:5]
    return found


def test_open_due_soon_and_overdue_per_county_and_step(make_instance, browser, clock):
    make_instance()
    clock.advance(days=8)
    make_instance(village="A2v", applicant="applicant_a2")
    html = browser("auditor_a").get("/dashboards/deadlines").get_data(as_text=True)
    assert figures(html, "by-county") == {"A": ["2", "0", "1", "2"]}
    assert figures(html, "by-step") == {
        "补助申请 · 拟定": ["0", "0", "0", "2"],
        "补助申请 · 乡镇审核": ["2", "0", "1", "0"],
    }
    assert figures(browser("town_a2").get("/dashboards/deadlines").get_data(as_text=True), "by-county") == {
        "A": ["1", "0", "0", "1"]
    }
    assert figures(browser("town_b1").get("/dashboards/deadlines").get_data(as_text=True), "by-county") == {}
