"""Policy data by year (年度政策参数), loaded from ``<year>.toml`` and validated on load.

Money is held as integer 分 (the files write 万元), percentages as :class:`~decimal.Decimal`,
quorums as :class:`~fractions.Fraction`; a TOML float is refused so that nothing is ever
rounded. A fault raises :class:`PolicyError` naming the file and the field.
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

from engine.forms import FEN_PER_WAN
from workflows.roles import DEPARTMENTS

HERE = Path(__file__).parent
MONEY_UNIT = "万元"
TARGET_UNITS = (MONEY_UNIT, "户", "人", "个", "条", "家", "次")
AMOUNT_BASES = ("project_total", "cumulative_enterprise")
TARGET_SCOPES = ("prefecture", "county")


class PolicyError(ValueError):
    """A policy file is malformed; ``faults`` names each bad field."""

    def __init__(self, faults: list[str]) -> None:
        super().__init__("; ".join(faults))
        self.faults = faults


@dataclass(frozen=True)
class MonthDay:
    month: int
    day: int


@dataclass(frozen=True)
class Milestone:
    """By the end of ``month`` cumulative spending is at least ``percent`` (GZ 一(一)3)."""

    month: int
    percent: Decimal


@dataclass(frozen=True)
class NegativeItem:
    """One 负面清单 item: text, source document and the year it applies from (DOMAIN §9)."""

    code: str
    text: str
    source: str
    since: int


@dataclass(frozen=True)
class Target:
    """A collaboration target (GZ 附件2); money targets (unit 万元) hold 分."""

    code: str
    label: str
    unit: str
    minimum: int
    maximum: int | None
    scope: str
    source: str


@dataclass(frozen=True)
class Policy:
    year: int
    source: str
    prefecture_assessment_min: int
    province_assessment_above: int
    finance_review_min: int
    amount_basis: str
    village_notice_days: int
    county_notice_days: int
    review_working_days: int
    review_remind_days: tuple[int, ...]
    sweep_years: int
    sweep_by: MonthDay
    sweep_opens: MonthDay
    filing_review_by: MonthDay
    filing_review_opens: MonthDay
    industry_share_central: Decimal
    industry_share_provincial: Decimal
    industry_share_excluded: tuple[str, ...]
    settlement_months: int
    handover_days: int
    extension_months_small: int
    extension_months_large: int
    retention_max_percent: Decimal
    retention_release_years: int
    retention_release_max_years: int
    prefecture_supervision_min: int
    milestones: tuple[Milestone, ...]
    dispatch_day: int
    stale_progress_days: int
    disbursement_stale_days: int
    inspection_min_problems: int
    quarterly_open_day: int
    quarterly_due_days: int
    job_hour: int
    ranking_deductions: tuple[int, ...]
    party_meeting_present_min: Fraction
    party_meeting_pass_over: Fraction
    villager_meeting_adults_over: Fraction
    villager_meeting_households_min: Fraction
    representatives_present_min: Fraction
    resolution_pass_over: Fraction
    deliberation_notice_days: int
    categories: tuple[str, ...]
    sectors: tuple[str, ...]
    default_departments: tuple[str, ...]
    finance_department: str
    approval_departments: tuple[str, ...]
    departments_by_category: Mapping[str, tuple[str, ...]]
    departments_by_sector: Mapping[str, tuple[str, ...]]
    departments_by_county: Mapping[str, Mapping[str, tuple[str, ...]]]
    negative_list: tuple[NegativeItem, ...]
    collaboration_targets: tuple[Target, ...]

    def category_departments(self, category: str, county: str | None = None) -> tuple[str, ...]:
        """部门审查 departments of a category: the county's own table where it has one, else the default.

        DOMAIN §2.2 [D; configurable per county]: ``[departments.by_county."<county code>"]``.
        """
        own = self.departments_by_county.get(county or "", {})
        return own.get(category, self.departments_by_category.get(category, ()))

    def negative_item(self, code: str) -> NegativeItem:
        return next(i for i in self.negative_list if i.code == code)


class _Reader:
    """Reads typed values out of the raw TOML tables, collecting every fault."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.faults: list[str] = []

    def fault(self, path: str, message: str) -> None:
        self.faults.append(f"{self.where}: {path}: {message}")

    def get(self, table: Mapping[str, Any], path: str, key: str) -> Any:
        if not isinstance(table, Mapping) or key not in table:
            self.fault(f"{path}{key}", "missing")
            return None
        return table[key]

    def integer(self, table, path, key, *, minimum: int = 0) -> int:
        value = self.get(table, path, key)
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int):
            self.fault(f"{path}{key}", f"must be a whole number, not {value!r}")
            return 0
        if value < minimum:
            self.fault(f"{path}{key}", f"must be at least {minimum}, not {value}")
        return value

    def decimal(self, value: Any, path: str) -> Decimal:
        if isinstance(value, float):
            self.fault(path, f"write {value!r} as an integer or a quoted decimal, never a float")
            return Decimal(0)
        if isinstance(value, bool) or not isinstance(value, int | str):
            self.fault(path, f"must be a number, not {value!r}")
            return Decimal(0)
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            self.fault(path, f"not a number: {value!r}")
            return Decimal(0)
        if not number.is_finite():
            self.fault(path, f"not a number: {value!r}")
            return Decimal(0)
        return number

    def percent(self, table, path, key) -> Decimal:
        value = self.get(table, path, key)
        if value is None:
            return Decimal(0)
        number = self.decimal(value, f"{path}{key}")
        if not Decimal(0) <= number <= Decimal(100):
            self.fault(f"{path}{key}", f"a percentage must lie in 0–100, not {number}")
        return number

    def fen(self, value: Any, path: str) -> int:
        wan = self.decimal(value, path)
        fen = wan * FEN_PER_WAN
        if fen != fen.to_integral_value() or fen < 0:
            self.fault(path, f"{MONEY_UNIT} amount must be ≥ 0 and exact to 1 分, not {wan}")
            return 0
        return int(fen)

    def money(self, table, path, key) -> int:
        value = self.get(table, path, key)
        return 0 if value is None else self.fen(value, f"{path}{key}")

    def fraction(self, table, path, key) -> Fraction:
        value = self.get(table, path, key)
        if value is None:
            return Fraction(0)
        try:
            number = Fraction(str(value)) if isinstance(value, str) else None
        except (ValueError, ZeroDivisionError):
            number = None
        if number is None or not 0 < number <= 1:
            self.fault(f"{path}{key}", f'must be a fraction in (0, 1] written like "2/3", not {value!r}')
            return Fraction(0)
        return number

    def text(self, table, path, key) -> str:
        value = self.get(table, path, key)
        if value is None:
            return ""
        if not isinstance(value, str) or not value.strip():
            self.fault(f"{path}{key}", "must be non-empty text")
            return ""
        return value

    def texts(self, table, path, key) -> tuple[str, ...]:
        value = self.get(table, path, key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fault(f"{path}{key}", "must be a list of non-empty texts")
            return ()
        return tuple(value)

    def month_day(self, table, path, key) -> MonthDay:
        value = self.text(table, path, key)
        try:
            month, day = (int(p) for p in value.split("-"))
            if not (
                1 <= month <= 12 and 1 <= day <= (29 if month == 2 else 30 if month in (4, 6, 9, 11) else 31)
            ):
                raise ValueError
        except ValueError:
            if value:
                self.fault(f"{path}{key}", f"must be a date 'MM-DD', not {value!r}")
            return MonthDay(1, 1)
        return MonthDay(month, day)

    def departments(self, table, path, key) -> tuple[str, ...]:
        codes = self.texts(table, path, key)
        for code in codes:
            if code not in DEPARTMENTS:
                self.fault(f"{path}{key}", f"unknown department code '{code}'")
        return codes


def _milestones(r: _Reader, raw: Any) -> tuple[Milestone, ...]:
    if not isinstance(raw, list) or not raw:
        r.fault("spending.milestones", "must be a non-empty list")
        return ()
    out = []
    for i, row in enumerate(raw):
        at = f"spending.milestones[{i}]."
        month = r.integer(row, at, "month", minimum=1)
        if month > 12:
            r.fault(f"{at}month", f"must be 1–12, not {month}")
        out.append(Milestone(month, r.percent(row, at, "percent")))
    for i, (a, b) in enumerate(itertools.pairwise(out), start=1):
        if b.month <= a.month or b.percent < a.percent:
            r.fault(f"spending.milestones[{i}]", "months must rise and percentages must not fall")
    if out and out[-1].percent != 100:
        r.fault(f"spending.milestones[{len(out) - 1}].percent", "the last milestone must be 100")
    return tuple(out)


def _negative_list(r: _Reader, raw: Any, year: int) -> tuple[NegativeItem, ...]:
    if not isinstance(raw, list) or not raw:
        r.fault("negative_list", "must be a non-empty list of items")
        return ()
    items = []
    for i, row in enumerate(raw):
        at = f"negative_list[{i}]."
        item = NegativeItem(
            r.text(row, at, "code"),
            r.text(row, at, "text"),
            r.text(row, at, "source"),
            r.integer(row, at, "since"),
        )
        if item.since > year:
            r.fault(f"{at}since", f"applies from {item.since}, after this policy's year {year}")
        items.append(item)
    codes = [i.code for i in items]
    for code in sorted({c for c in codes if codes.count(c) > 1}):
        r.fault("negative_list", f"duplicate code '{code}'")
    return tuple(items)


def _targets(r: _Reader, raw: Any) -> tuple[Target, ...]:
    if not isinstance(raw, list):
        r.fault("collaboration_targets", "must be a list")
        return ()
    out = []
    for i, row in enumerate(raw):
        at = f"collaboration_targets[{i}]."
        unit = r.text(row, at, "unit")
        if unit and unit not in TARGET_UNITS:
            r.fault(f"{at}unit", f"must be one of {', '.join(TARGET_UNITS)}, not {unit!r}")

        def amount(key: str, row=row, at=at, unit=unit) -> int:
            if unit == MONEY_UNIT:
                return r.money(row, at, key)
            return r.integer(row, at, key)

        minimum = amount("min")
        maximum = amount("max") if isinstance(row, Mapping) and "max" in row else None
        if maximum is not None and maximum < minimum:
            r.fault(f"{at}max", "must not be below min")
        scope = r.text(row, at, "scope")
        if scope and scope not in TARGET_SCOPES:
            r.fault(f"{at}scope", f"must be one of {', '.join(TARGET_SCOPES)}, not {scope!r}")
        out.append(
            Target(
                r.text(row, at, "code"),
                r.text(row, at, "label"),
                unit,
                minimum,
                maximum,
                scope,
                r.text(row, at, "source"),
            )
        )
    return tuple(out)


def parse(raw: Mapping[str, Any], where: str) -> Policy:
    """A validated :class:`Policy` from a parsed TOML document, or PolicyError naming every fault."""
    r = _Reader(where)
    year = r.integer(raw, "", "year", minimum=2000)
    lib = r.get(raw, "", "library") or {}
    fil = r.get(raw, "", "filing") or {}
    dlv = r.get(raw, "", "delivery") or {}
    spd = r.get(raw, "", "spending") or {}
    rnk = r.get(raw, "", "ranking") or {}
    dsp = r.get(raw, "", "dispatch") or {}
    qtr = r.get(raw, "", "quarterly") or {}
    jobs = r.get(raw, "", "jobs") or {}
    dlb = r.get(raw, "", "deliberation") or {}
    dep = r.get(raw, "", "departments") or {}

    amount_basis = r.text(lib, "library.", "amount_basis")
    if amount_basis and amount_basis not in AMOUNT_BASES:
        r.fault("library.amount_basis", f"must be one of {', '.join(AMOUNT_BASES)}, not {amount_basis!r}")
    categories = r.texts(dep, "departments.", "categories")
    sectors = r.texts(dep, "departments.", "sectors")
    by_category: dict[str, tuple[str, ...]] = {}
    by_sector: dict[str, tuple[str, ...]] = {}
    for table_key, known, out in (
        ("by_category", categories, by_category),
        ("by_sector", sectors, by_sector),
    ):
        table = r.get(dep, "departments.", table_key) or {}
        for name in table:
            if name not in known:
                r.fault(f"departments.{table_key}.{name}", "is not listed in departments.categories/sectors")
            out[name] = r.departments(table, f"departments.{table_key}.", name)
    by_county: dict[str, dict[str, tuple[str, ...]]] = {}
    for county, table in (dep.get("by_county") or {}).items():
        if not isinstance(table, Mapping):
            r.fault(f"departments.by_county.{county}", "must be a table of category = [departments]")
            continue
        by_county[county] = {}
        for name in table:
            if name not in categories:
                r.fault(f"departments.by_county.{county}.{name}", "is not listed in departments.categories")
            by_county[county][name] = r.departments(table, f"departments.by_county.{county}.", name)
    finance = r.text(dep, "departments.", "finance")
    if finance and finance not in DEPARTMENTS:
        r.fault("departments.finance", f"unknown department code '{finance}'")
    excluded = r.texts(fil, "filing.", "industry_share_excluded_categories")
    for name in excluded:
        if name not in categories:
            r.fault("filing.industry_share_excluded_categories", f"unknown category '{name}'")
    deductions = r.get(rnk, "ranking.", "deductions_wan")
    if not isinstance(deductions, list) or not deductions:
        r.fault("ranking.deductions_wan", "must be a non-empty list")
        deductions = []
    remind = r.get(lib, "library.", "review_remind_days")
    if not isinstance(remind, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in remind
    ):
        r.fault("library.review_remind_days", "must be a list of whole numbers of days")
        remind = []

    policy = Policy(
        year=year,
        source=r.text(raw, "", "source"),
        prefecture_assessment_min=r.money(lib, "library.", "prefecture_assessment_min_wan"),
        province_assessment_above=r.money(lib, "library.", "province_assessment_above_wan"),
        finance_review_min=r.money(lib, "library.", "finance_review_min_wan"),
        amount_basis=amount_basis,
        village_notice_days=r.integer(lib, "library.", "village_notice_days", minimum=1),
        county_notice_days=r.integer(lib, "library.", "county_notice_days", minimum=1),
        review_working_days=r.integer(lib, "library.", "review_working_days", minimum=1),
        review_remind_days=tuple(remind),
        sweep_years=r.integer(lib, "library.", "sweep_years", minimum=1),
        sweep_by=r.month_day(lib, "library.", "sweep_by"),
        sweep_opens=r.month_day(lib, "library.", "sweep_opens"),
        filing_review_by=r.month_day(fil, "filing.", "review_by"),
        filing_review_opens=r.month_day(fil, "filing.", "review_opens"),
        industry_share_central=r.percent(fil, "filing.", "industry_share_central_percent"),
        industry_share_provincial=r.percent(fil, "filing.", "industry_share_provincial_percent"),
        industry_share_excluded=excluded,
        settlement_months=r.integer(dlv, "delivery.", "settlement_months", minimum=1),
        handover_days=r.integer(dlv, "delivery.", "handover_days", minimum=1),
        extension_months_small=r.integer(dlv, "delivery.", "extension_months_small", minimum=1),
        extension_months_large=r.integer(dlv, "delivery.", "extension_months_large", minimum=1),
        retention_max_percent=r.percent(dlv, "delivery.", "retention_max_percent"),
        retention_release_years=r.integer(dlv, "delivery.", "retention_release_years", minimum=1),
        retention_release_max_years=r.integer(dlv, "delivery.", "retention_release_max_years", minimum=1),
        prefecture_supervision_min=r.money(dlv, "delivery.", "prefecture_supervision_min_wan"),
        milestones=_milestones(r, r.get(spd, "spending.", "milestones")),
        dispatch_day=r.integer(dsp, "dispatch.", "day", minimum=1),
        stale_progress_days=r.integer(dsp, "dispatch.", "stale_progress_days", minimum=1),
        disbursement_stale_days=r.integer(dsp, "dispatch.", "disbursement_stale_days", minimum=1),
        inspection_min_problems=r.integer(dsp, "dispatch.", "inspection_min_problems", minimum=1),
        quarterly_open_day=r.integer(qtr, "quarterly.", "open_day", minimum=1),
        quarterly_due_days=r.integer(qtr, "quarterly.", "due_days_after_quarter", minimum=1),
        job_hour=r.integer(jobs, "jobs.", "hour"),
        ranking_deductions=tuple(r.fen(v, f"ranking.deductions_wan[{i}]") for i, v in enumerate(deductions)),
        party_meeting_present_min=r.fraction(dlb, "deliberation.", "party_meeting_present_min"),
        party_meeting_pass_over=r.fraction(dlb, "deliberation.", "party_meeting_pass_over"),
        villager_meeting_adults_over=r.fraction(dlb, "deliberation.", "villager_meeting_adults_over"),
        villager_meeting_households_min=r.fraction(dlb, "deliberation.", "villager_meeting_households_min"),
        representatives_present_min=r.fraction(dlb, "deliberation.", "representatives_present_min"),
        resolution_pass_over=r.fraction(dlb, "deliberation.", "resolution_pass_over"),
        deliberation_notice_days=r.integer(dlb, "deliberation.", "notice_days", minimum=1),
        categories=categories,
        sectors=sectors,
        default_departments=r.departments(dep, "departments.", "default"),
        finance_department=finance,
        approval_departments=r.departments(dep, "departments.", "approval"),
        departments_by_category=by_category,
        departments_by_sector=by_sector,
        departments_by_county=by_county,
        negative_list=_negative_list(r, r.get(raw, "", "negative_list"), year),
        collaboration_targets=_targets(r, r.get(raw, "", "collaboration_targets")),
    )
    if policy.province_assessment_above < policy.prefecture_assessment_min:
        r.fault("library.province_assessment_above_wan", "must not be below prefecture_assessment_min_wan")
    if policy.extension_months_large < policy.extension_months_small:
        r.fault("delivery.extension_months_large", "must not be below extension_months_small")
    if policy.dispatch_day > 28:
        r.fault("dispatch.day", f"must be 1–28 so that every month has it, not {policy.dispatch_day}")
    if policy.quarterly_open_day > 30:
        r.fault(
            "quarterly.open_day",
            f"must be 1–30 so that every quarter's last month has it, not {policy.quarterly_open_day}",
        )
    if policy.job_hour > 23:
        r.fault("jobs.hour", f"must be 0–23, not {policy.job_hour}")
    for opens, by, at in (
        (policy.filing_review_opens, policy.filing_review_by, "filing.review_opens"),
        (policy.sweep_opens, policy.sweep_by, "library.sweep_opens"),
    ):
        if (opens.month, opens.day) > (by.month, by.day):
            r.fault(at, "must not be after the date it opens for")
    if policy.retention_release_max_years < policy.retention_release_years:
        r.fault("delivery.retention_release_max_years", "must not be below retention_release_years")
    if r.faults:
        raise PolicyError(r.faults)
    return policy


def load_file(path: Path) -> Policy:
    """Parse and validate one policy file; the file name must be ``<year>.toml``."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError([f"{path.name}: not valid TOML: {exc}"]) from None
    policy = parse(raw, path.name)
    if path.stem != str(policy.year):
        raise PolicyError([f"{path.name}: year: {policy.year} does not match the file name"])
    return policy


def years() -> list[int]:
    """The years with a policy file, oldest first."""
    return sorted(int(p.stem) for p in HERE.glob("*.toml") if p.stem.isdigit())


@cache
def load(year: int) -> Policy:
    """The policy of ``year`` (cached); PolicyError if there is no such file or it is malformed."""
    path = HERE / f"{year}.toml"
    if not path.exists():
        raise PolicyError([f"{path.name}: no policy for {year} (known: {', '.join(map(str, years()))})"])
    return load_file(path)


def latest() -> Policy:
    return load(years()[-1])
