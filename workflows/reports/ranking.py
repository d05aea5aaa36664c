"""州级考评排名与资金奖惩 (county ranking) [GZ 一(一)4, 三(三); DOMAIN §8].

The counties are ranked by score, highest first. The bottom three lose the policy's
deductions (the last the first amount, and so on) to the top three (the first receives
the first amount). Ties: counties with equal scores share a rank (1, 2, 2, 4 …) and share
equally the amounts of the positions they jointly hold; a remainder of 分 that does not
divide goes, one 分 each, to the tied counties in the order of their names. What is
taken always equals what is given. The adjustment feeds next year's allocation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from itertools import groupby
from pathlib import Path

from sqlalchemy.orm import Session

from engine.forms import fen_to_wan, wan_to_fen
from engine.scope import Actor
from workflows.policy import Policy
from workflows.reports.importer import CellError, ImportFailed, open_workbook
from workflows.reports.places import COUNTY, Places
from workflows.reports.xlsx import add_sheet, cell_text, header_map, new_book, to_bytes


@dataclass(frozen=True)
class Ranked:
    rank: int
    county: str
    score: Decimal
    adjustment: int
    """分: positive for a reward, negative for a deduction."""


def rank(p: Policy, scores: Mapping[str, Decimal]) -> list[Ranked]:
    """The ranking with each county's adjustment; ValueError if too few counties to rank."""
    amounts = p.ranking_deductions
    n = len(scores)
    if n < 2 * len(amounts):
        raise ValueError(f"须至少{2 * len(amounts)}个县(市)参与排名, 现有{n}个 (too few counties)")
    ordered = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    position = [0] * n
    for i, amount in enumerate(amounts):
        position[i] += amount
        position[n - 1 - i] -= amount
    out, start = [], 0
    for score, group in groupby(ordered, key=lambda kv: kv[1]):
        names = sorted(name for name, _ in group)
        share, remainder = divmod(sum(position[start : start + len(names)]), len(names))
        for j, name in enumerate(names):
            out.append(Ranked(start + 1, name, score, share + (1 if j < remainder else 0)))
        start += len(names)
    return out


@dataclass(frozen=True)
class Allocation:
    county: str
    base: int
    adjustment: int

    @property
    def adjusted(self) -> int:
        return self.base + self.adjustment


def next_year(ranked: Sequence[Ranked], base: Mapping[str, int]) -> list[Allocation]:
    """Next year's allocation of each county: its base (分, 0 if unknown) plus its adjustment."""
    return [Allocation(r.county, base.get(r.county, 0), r.adjustment) for r in ranked]


SCORE_SHEET, BASE_SHEET = "考评得分", "资金基数"
COLUMNS = {SCORE_SHEET: ("县(市)", "得分"), BASE_SHEET: ("县(市)", "金额(万元)")}


def template() -> bytes:
    book = new_book()
    for title, headers in COLUMNS.items():
        add_sheet(book, title, headers, ())
    return to_bytes(book)


def load(session: Session, actor: Actor, source: Path | bytes) -> tuple[dict[str, Decimal], dict[str, int]]:
    """Scores (and optional base allocations in 分) per county from a workbook; ImportFailed on faults.

    The ranking is prefecture-wide: every county of the file must lie in the actor's sight.
    """
    book = open_workbook(source)
    places, errors = Places.load(session), []
    scores: dict[str, Decimal] = {}
    base: dict[str, int] = {}
    seen: set[str] = set()
    for title, headers in COLUMNS.items():
        if title not in book.sheetnames:
            if title == SCORE_SHEET:
                errors.append(CellError(title, 0, "", "", "缺少工作表 (sheet missing)"))
            continue
        sheet = book[title]
        found = header_map(sheet)
        missing = [h for h in headers if h not in found]
        errors += [CellError(title, 1, "", h, "缺少列 (column missing)") for h in missing]
        if missing:
            continue
        name_col, value_col = (found[h] for h in headers)
        for cells in sheet.iter_rows(min_row=2):
            name, text = cell_text(cells[name_col - 1].value), cell_text(cells[value_col - 1].value)
            if not name and not text:
                continue
            row = cells[0].row
            unit = places.child(None, COUNTY, name)
            if unit is None or not actor.sees(unit.path):
                errors.append(
                    CellError(
                        title,
                        row,
                        cells[name_col - 1].column_letter,
                        headers[0],
                        f"未知或无权查看的县(市): {name}",
                    )
                )
                continue
            letter = cells[value_col - 1].column_letter
            try:
                if title == SCORE_SHEET:
                    if name in seen:
                        raise ValueError("重复的县(市) (duplicate county)")
                    seen.add(name)
                    scores[name] = Decimal(text)
                    if not scores[name].is_finite():
                        raise InvalidOperation
                else:
                    base[name] = wan_to_fen(text)
            except (ValueError, InvalidOperation) as exc:
                message = str(exc) if isinstance(exc, ValueError) else "不是有效数字 (not a number)"
                errors.append(CellError(title, row, letter, headers[1], message))
    if errors:
        raise ImportFailed(errors)
    return scores, base


def workbook(ranked: Sequence[Ranked], base: Mapping[str, int]) -> bytes:
    book = new_book()
    add_sheet(
        book,
        "考评排名",
        ("名次", "县(市)", "得分", "奖惩(万元)", "说明"),
        (
            (
                r.rank,
                r.county,
                r.score,
                fen_to_wan(r.adjustment),
                "奖励" if r.adjustment > 0 else "扣减" if r.adjustment < 0 else "",
            )
            for r in ranked
        ),
    )
    add_sheet(
        book,
        "下年度资金调整",
        ("县(市)", "资金基数(万元)", "调整(万元)", "调整后(万元)"),
        (
            (a.county, fen_to_wan(a.base), fen_to_wan(a.adjustment), fen_to_wan(a.adjusted))
            for a in next_year(ranked, base)
        ),
    )
    return to_bytes(book)
