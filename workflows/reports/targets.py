"""协作帮扶目标进度与季度通报 (collaboration targets) [GZ 附件2; DOMAIN §10].

Each county's quarterly report (一季一统计一通报) holds its cumulative figures for the year.
For a quarter, the reviewed or published report of each county in the actor's sight is
compared with the county targets; prefecture targets are compared with the sum of the
counties' figures, and each county target shows how many counties reach it. The 通报 is
an Excel workbook and a printable HTML page (templates/targets_bulletin.html).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.clock import local
from engine.forms import fen_to_wan
from engine.scope import Actor
from engine.store.models import Instance
from workflows import quarterly_report
from workflows.policy import MONEY_UNIT, Policy, Target
from workflows.reports.places import COUNTY, Places
from workflows.reports.xlsx import add_sheet, new_book, plain, to_bytes

COUNTED_STATES = ("reviewed", "published")
CENT = Decimal("0.01")
TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Item:
    target: Target
    value: int | None
    """None: not reported. Money in 分."""
    counties_met: int | None = None
    counties: int | None = None

    @property
    def met(self) -> bool | None:
        return None if self.value is None else self.value >= self.target.minimum

    @property
    def percent(self) -> Decimal | None:
        """Completion against the minimum, truncated to 0.01%."""
        if self.value is None or self.target.minimum <= 0:
            return None
        return (Decimal(self.value) * 100 / self.target.minimum).quantize(CENT, rounding=ROUND_DOWN)


def shown(target: Target, amount: int | None) -> Decimal | int | None:
    """An amount as shown: money in 万元, counts as they are."""
    if amount is None:
        return None
    return fen_to_wan(amount) if target.unit == MONEY_UNIT else amount


def text(target: Target, amount: int | None) -> str:
    return "—" if amount is None else plain(shown(target, amount))


def goal(target: Target) -> str:
    low = text(target, target.minimum)
    return f"≥{low}" if target.maximum is None else f"{low}–{text(target, target.maximum)}"


@dataclass(frozen=True)
class CountyProgress:
    county: str
    report_id: int | None
    items: list[Item]


@dataclass(frozen=True)
class Bulletin:
    year: int
    quarter: int
    counties: list[CountyProgress]
    prefecture: list[Item]
    county_totals: list[Item]


def bulletin(session: Session, actor: Actor, p: Policy, quarter: int) -> Bulletin:
    """The progress of every target at ``quarter`` of ``p.year``, for the counties in sight."""
    places = Places.load(session)
    counties = [c for c in places.counties() if actor.sees(c.path)]
    reports: dict[int, Instance] = {}
    found = session.scalars(
        select(Instance)
        .where(
            Instance.workflow_key == quarterly_report.KEY,
            Instance.state.in_(COUNTED_STATES),
            actor.scope_filter(Instance.org_path),
        )
        .order_by(Instance.id)
    )
    for inst in found:
        if int(inst.data.get("year") or 0) == p.year and str(inst.data.get("quarter")) == str(quarter):
            county = places.on_path(inst.org_path, COUNTY)
            if county is not None:
                reports[county.id] = inst
    county_targets = [t for t in p.collaboration_targets if t.scope == "county"]
    rows = []
    for county in counties:
        inst = reports.get(county.id)
        items = [Item(t, int(inst.data.get(t.code) or 0) if inst else None) for t in county_targets]
        rows.append(CountyProgress(county.name, inst.id if inst else None, items))

    def total(t: Target) -> int:
        return sum(int(i.data.get(t.code) or 0) for i in reports.values())

    prefecture = [Item(t, total(t)) for t in p.collaboration_targets if t.scope == "prefecture"]
    county_totals = [
        Item(
            t,
            total(t),
            sum(1 for r in rows if r.items[k].met),
            len(rows),
        )
        for k, t in enumerate(county_targets)
    ]
    return Bulletin(p.year, quarter, rows, prefecture, county_totals)


def _verdict(met: bool | None) -> str:
    return "未报送" if met is None else "达标" if met else "未达标"


def workbook(b: Bulletin) -> bytes:
    book = new_book()
    add_sheet(
        book,
        "分县进度",
        ("县(市)", "指标", "单位", "目标", "完成", "完成率(%)", "是否达标"),
        (
            (
                c.county,
                i.target.label,
                i.target.unit,
                goal(i.target),
                shown(i.target, i.value),
                i.percent,
                _verdict(i.met),
            )
            for c in b.counties
            for i in c.items
        ),
    )
    add_sheet(
        book,
        "全州进度",
        ("指标", "单位", "目标", "完成(全州合计)", "完成率(%)", "是否达标", "达标县数"),
        (
            (
                i.target.label,
                i.target.unit,
                goal(i.target) + ("/县" if i.counties is not None else ""),
                shown(i.target, i.value),
                i.percent if i.counties is None else None,
                _verdict(i.met) if i.counties is None else None,
                f"{i.counties_met}/{i.counties}" if i.counties is not None else None,
            )
            for i in (*b.prefecture, *b.county_totals)
        ),
    )
    return to_bytes(book)


def html(b: Bulletin, now: datetime) -> str:
    """The printable 通报 page."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    return env.get_template("targets_bulletin.html").render(
        b=b, text=text, goal=goal, verdict=_verdict, issued=local(now).strftime("%Y-%m-%d")
    )
