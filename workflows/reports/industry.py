"""产业发展资金占比 (industry share of a county plan) [GZ 一(一)2; SC 川财农〔2024〕94号].

Funds for 产业发展 must reach the year's share of central and of provincial 衔接资金; the
categories the policy excludes (以工代赈 task funds) leave the base. Arithmetic is exact:
the share passes when ``industry × 100 ≥ minimum × base``; it is shown truncated to 0.01%,
never rounded up (59.995% shows 59.99% and fails).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.forms import fen_to_wan
from engine.scope import Actor
from engine.store.models import Instance
from workflows import plan_filing
from workflows.policy import Policy
from workflows.reports.places import COUNTY, Places
from workflows.reports.xlsx import add_sheet, new_book, to_bytes

INDUSTRY_CATEGORY = "产业发展"
"""The category whose funds count as industry (a name of ``departments.categories``)."""
LEVELS = (("central", "fund_central", "中央"), ("provincial", "fund_provincial", "省级"))
CENT = Decimal("0.01")


def plan_totals(p: Policy, rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """The plan_filing money fields (分) from project rows: totals, excluded and industry parts."""
    if INDUSTRY_CATEGORY not in p.categories:
        raise ValueError(f"policy {p.year} has no category '{INDUSTRY_CATEGORY}'")
    totals = {f"{level}_{part}": 0 for level, _, _ in LEVELS for part in ("total", "work_relief", "industry")}
    for row in rows:
        for level, fund, _ in LEVELS:
            amount = int(row.get(fund) or 0)
            totals[f"{level}_total"] += amount
            if row.get("category") in p.industry_share_excluded:
                totals[f"{level}_work_relief"] += amount
            if row.get("category") == INDUSTRY_CATEGORY:
                totals[f"{level}_industry"] += amount
    return totals


@dataclass(frozen=True)
class Share:
    """One level's share: base (total less excluded) and industry in 分; ``passed`` None without a base."""

    level: str
    total: int
    excluded: int
    industry: int
    minimum: Decimal

    @property
    def base(self) -> int:
        return self.total - self.excluded

    @property
    def passed(self) -> bool | None:
        if self.base <= 0:
            return None
        return Decimal(self.industry) * 100 >= self.minimum * self.base

    @property
    def percent(self) -> Decimal | None:
        """The share in %, truncated to 0.01 (display only; ``passed`` is exact)."""
        if self.base <= 0:
            return None
        return (Decimal(self.industry) * 100 / self.base).quantize(CENT, rounding=ROUND_DOWN)


def shares(p: Policy, totals: Mapping[str, Any]) -> list[Share]:
    """Central and provincial shares of a plan's totals (the plan_filing field names)."""
    minimum = {"central": p.industry_share_central, "provincial": p.industry_share_provincial}
    return [
        Share(
            label,
            int(totals.get(f"{level}_total") or 0),
            int(totals.get(f"{level}_work_relief") or 0),
            int(totals.get(f"{level}_industry") or 0),
            minimum[level],
        )
        for level, _, label in LEVELS
    ]


@dataclass(frozen=True)
class CountyShare:
    county: str
    filing_id: int
    state: str
    shares: list[Share]

    @property
    def passed(self) -> bool:
        return all(s.passed is not False for s in self.shares)


def county_shares(session: Session, actor: Actor, p: Policy) -> list[CountyShare]:
    """Each county's latest filed plan of ``p.year`` in the actor's sight, with its shares."""
    places = Places.load(session)
    found = session.scalars(
        select(Instance)
        .where(Instance.workflow_key == plan_filing.KEY, actor.scope_filter(Instance.org_path))
        .order_by(Instance.id)
    ).all()
    latest: dict[str, Instance] = {}
    for inst in found:
        if int(inst.data.get("year") or 0) == p.year:
            latest[places.name_on_path(inst.org_path, COUNTY)] = inst
    return [
        CountyShare(county, inst.id, inst.state, shares(p, inst.data))
        for county, inst in sorted(latest.items(), key=lambda kv: kv[1].org_path)
    ]


HEADERS = (
    "县(市)",
    "备案编号",
    "资金级次",
    "资金总额(万元)",
    "其中以工代赈任务资金(万元)",
    "计算基数(万元)",
    "产业发展(万元)",
    "占比(%)",
    "最低比例(%)",
    "是否达标",
)


def verdict(passed: bool | None) -> str:
    return "不适用" if passed is None else "达标" if passed else "未达标"


def workbook(p: Policy, rows: list[CountyShare]) -> bytes:
    book = new_book()
    add_sheet(
        book,
        "产业发展资金占比",
        HEADERS,
        (
            (
                r.county,
                r.filing_id,
                s.level,
                fen_to_wan(s.total),
                fen_to_wan(s.excluded),
                fen_to_wan(s.base),
                fen_to_wan(s.industry),
                s.percent,
                s.minimum,
                verdict(s.passed),
            )
            for r in rows
            for s in r.shares
        ),
    )
    return to_bytes(book)
