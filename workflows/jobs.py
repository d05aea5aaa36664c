"""Domain calendar jobs (业务定时任务) of the Ganzi notice, run by the scheduler process.

Each job is a plain function ``job(sessions, runtime, now) -> Outcome`` that acts once per
county and period:

- :func:`library_sweep` (``library.sweep_opens``; GZ 二(二)3): projects ``in_library`` for
  ``sweep_years`` or unrelated to 巩固衔接 go to 清查待确认, a removal confirmation task for
  the county (due ``library.sweep_by``).
- :func:`filing_review_opening` (``filing.review_opens``; GZ 一(一)1): every filed annual plan
  goes into the concentrated review (due ``filing.review_by``); a county that has not filed
  is told to.
- :func:`spending_checkpoint` (the first day after each ``spending.milestones`` month; GZ
  一(一)3): a county below target gets a ``spending_supervision`` (两书一函: 提醒函, then
  约谈通知书, then 督办函).
- :func:`data_quality_dispatch` (``dispatch.day`` monthly; GZ 二(二)3): each county is told
  its data-quality problems; one with ``dispatch.inspection_min_problems`` or more gets a
  ``site_inspection`` (实地检查).
- :func:`quarterly_reports` (``quarterly.open_day`` of each quarter's last month; GZ 附件2
  八): each county without the quarter's ``quarterly_report`` gets one, with its due date.

Exactly once: each (job, period, county) is claimed by an audit event on the stream
``job:<name>`` whose idempotency key ``job:<name>:<period>:<county code>`` is unique, in the
same transaction as the county's work. A rerun, or a second scheduler process, finds the
claim (or fails to insert it and rolls back) and changes nothing. A county whose work
fails is rolled back alone, logged, and left unclaimed for a rerun.

:func:`register` adds the jobs to the scheduler process's APScheduler (see
``shuangti scheduler``), with dates from the latest policy year.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from engine import audit, notify
from engine.clock import SHANGHAI, local, utcnow
from engine.deadlines import add_months, end_of_month
from engine.definitions import SYSTEM
from engine.runtime import Runtime
from engine.scope import Actor, department_under, holders
from engine.store.models import ACTIVE, AuditEvent, Instance, OrgUnit
from workflows import (
    plan_filing,
    policy,
    project_delivery,
    project_library,
    quarterly_report,
    site_inspection,
    spending_supervision,
)
from workflows.policy import Milestone, Policy
from workflows.reports import spending
from workflows.roles import COUNTY_APPROVER

log = logging.getLogger(__name__)

COUNTY = "county"
AGRICULTURE = "agriculture"
QUARTERS = 4
MONTHS_PER_QUARTER = 3
LEDGER_SOURCE = "衔接资金"
"""The fund source under which delivery projects' allocations and disbursements are summed."""

LIBRARY_FIELDS = (
    ("performance_target", "绩效目标"),
    ("benefit_mechanism", "利益联结机制"),
    ("income_target", "增收目标"),
    ("assessment", "评估论证"),
)
"""Fields of a library record that must be filled once it is 已入库 (monthly dispatch)."""


@dataclass(frozen=True)
class Outcome:
    """What one run did: for each county it handled now, what it created or moved.

    Counties already handled in this period (by an earlier run or another process) are absent.
    """

    job: str
    period: str
    done: dict[str, list[str]] = field(default_factory=dict)


def policy_for(year: int) -> Policy:
    """The policy of ``year``, or the latest one while next year's file is not yet written."""
    return policy.load(year) if year in policy.years() else policy.latest()


def _claim(s: Session, job: str, period: str, county: OrgUnit, now: datetime) -> bool:
    key = f"job:{job}:{period}:{county.code}"
    if s.scalar(select(AuditEvent.id).where(AuditEvent.idempotency_key == key)) is not None:
        return False
    audit.append(
        s,
        f"job:{job}",
        at=now,
        action=job,
        actor_name=Actor.system().name,
        role=SYSTEM,
        org_unit_id=county.id,
        idempotency_key=key,
        detail={"period": period, "county": county.code},
    )
    return True


def _each_county(
    sessions: sessionmaker[Session],
    job: str,
    period: str,
    now: datetime,
    work: Callable[[Session, OrgUnit], list[str]],
) -> Outcome:
    """Claim and do ``work`` for each county in its own transaction; skip the counties already done."""
    with sessions() as s:
        county_ids = list(s.scalars(select(OrgUnit.id).where(OrgUnit.kind == COUNTY).order_by(OrgUnit.code)))
    outcome = Outcome(job, period)
    for county_id in county_ids:
        try:
            with sessions.begin() as s:
                county = s.get(OrgUnit, county_id)
                if _claim(s, job, period, county, now):
                    outcome.done[county.code] = work(s, county)
        except IntegrityError:
            log.info("%s %s: county %s was claimed by another run", job, period, county_id)
        except Exception:
            log.exception("%s %s: county %s failed; it stays unclaimed for a rerun", job, period, county_id)
    return outcome


def _instances(s: Session, key: str, county: OrgUnit) -> list[Instance]:
    return list(
        s.scalars(
            select(Instance)
            .where(Instance.workflow_key == key, Instance.org_path.startswith(county.path, autoescape=True))
            .order_by(Instance.id)
        )
    )


def _of_year(inst: Instance, year: int) -> bool:
    return int(inst.data.get("year") or 0) == year


def _tell(s: Session, county: OrgUnit, key: str, subject: str, body: str, now: datetime) -> list[int]:
    """Notify the county's 农牧农村局 approvers; ``key`` makes each notification unique."""
    users = holders(s, COUNTY_APPROVER, department_under(s, county, AGRICULTURE), now)
    for user_id in users:
        notify.queue(
            s, user_id=user_id, kind="job", subject=subject, body=body, now=now, dedupe_key=f"{key}:{user_id}"
        )
    return users


def _start(
    s: Session, runtime: Runtime, key: str, county: OrgUnit, form: dict[str, Any], now: datetime, idem: str
) -> Instance:
    """Start ``key`` as the SYSTEM at the county's 农牧农村局, once for ``idem``."""
    unit = department_under(s, county, AGRICULTURE)
    return runtime.start(
        s, key, Actor.system(), org_unit_id=unit.id, form=form, now=now, idempotency_key=idem
    )


# ---- 8月: the yearly library sweep --------------------------------------------------------


def sweep_reason(data: dict[str, Any], entered: date, p: Policy, today: date) -> str | None:
    """Why a project that entered the library on ``entered`` is due for removal (GZ 二(二)3), or None."""
    if data.get("related_to_consolidation") is not True:
        return "与巩固衔接无关"
    if add_months(entered, 12 * p.sweep_years) <= today:
        return f"入库已满{p.sweep_years}年未实施"
    return None


def library_entry(s: Session, inst: Instance) -> date:
    """The day the project first entered the library (its county notice ended); a 保留 keeps it."""
    first = s.scalar(
        select(AuditEvent.at)
        .where(
            AuditEvent.instance_id == inst.id,
            AuditEvent.trigger == "notice_ended",
            AuditEvent.to_state == "in_library",
        )
        .order_by(AuditEvent.seq)
    )
    return local(first or inst.entered_at).date()


def library_sweep(sessions: sessionmaker[Session], runtime: Runtime, now: datetime) -> Outcome:
    """Open the yearly sweep: each project due for removal goes to the county's confirmation."""
    today = local(now).date()
    p = policy_for(today.year)
    period = str(today.year)

    def work(s: Session, county: OrgUnit) -> list[str]:
        swept = []
        for inst in _instances(s, project_library.KEY, county):
            if inst.status != ACTIVE or inst.state != "in_library":
                continue
            reason = sweep_reason(inst.data, library_entry(s, inst), p, today)
            if reason is not None:
                runtime.fire(
                    s,
                    inst.id,
                    "sweep_due",
                    Actor.system(),
                    now=now,
                    comment=f"项目库清查: {reason}",
                    idempotency_key=f"job:library_sweep:{period}:{inst.id}",
                )
                swept.append(f"{inst.id} {reason}")
        return swept

    return _each_county(sessions, "library_sweep", period, now, work)


# ---- 10月: the concentrated filing review -------------------------------------------------


def filing_review_opening(sessions: sessionmaker[Session], runtime: Runtime, now: datetime) -> Outcome:
    """Put every filed plan of the year into review; tell the counties that have not filed."""
    year = local(now).year
    by = policy_for(year).filing_review_by
    period = str(year)

    def work(s: Session, county: OrgUnit) -> list[str]:
        filings = [i for i in _instances(s, plan_filing.KEY, county) if _of_year(i, year)]
        done = []
        for inst in filings:
            if inst.status == ACTIVE and inst.state in ("filed", "refiled"):
                runtime.fire(
                    s,
                    inst.id,
                    "review_opened",
                    Actor.system(),
                    now=now,
                    idempotency_key=f"job:filing_review_opening:{period}:{inst.id}",
                )
                done.append(f"{inst.id} under_review")
        if all(i.state == "drafting" for i in filings):
            _tell(
                s,
                county,
                f"job:filing_review_opening:{period}:{county.code}",
                f"{county.name}尚未报送{year}年度项目实施计划备案",
                f"州级集中审查已开始, 须于{by.month}月{by.day}日前完成, 请尽快备案。",
                now,
            )
            done.append("not filed: told")
        return done

    return _each_county(sessions, "filing_review_opening", period, now, work)


# ---- month ends: spending progress and 两书一函 --------------------------------------------


def last_checkpoint(now: datetime) -> tuple[Policy, Milestone]:
    """The latest spending checkpoint that has passed at ``now`` (last year's last one in early year)."""
    year = local(now).year
    p = policy_for(year)
    passed = [m for m in p.milestones if end_of_month(year, m.month) <= now]
    if passed:
        return p, passed[-1]
    last = policy_for(year - 1)
    return last, last.milestones[-1]


def _county_codes(s: Session) -> dict[str, str]:
    """County org path → county code."""
    return {u.path: u.code for u in s.scalars(select(OrgUnit).where(OrgUnit.kind == COUNTY))}


def _county_on(paths: dict[str, str], org_path: str) -> str | None:
    return next((code for path, code in paths.items() if org_path.startswith(path)), None)


def ledger(s: Session, year: int) -> tuple[dict[tuple[str, str], int], list[spending.Disbursement]]:
    """Allocations and disbursements (分) of the year's delivery projects, by county code.

    Each project's ``allocated`` is its allocation; its latest cumulative ``disbursed_total``
    (as of ``disbursed_on``) its spending; its 质保金 is held back from the base.
    """
    paths = _county_codes(s)
    allocations: dict[tuple[str, str], int] = {}
    records = []
    for inst in s.scalars(select(Instance).where(Instance.workflow_key == project_delivery.KEY)):
        county = _county_on(paths, inst.org_path)
        if county is None or not _of_year(inst, year):
            continue
        pair = (county, LEDGER_SOURCE)
        allocations[pair] = allocations.get(pair, 0) + int(inst.data.get("allocated") or 0)
        if inst.data.get("disbursed_on"):
            on = date.fromisoformat(inst.data["disbursed_on"])
            records.append(
                spending.Disbursement(county, LEDGER_SOURCE, on, int(inst.data.get("disbursed_total") or 0))
            )
        if inst.data.get("retention"):
            on = date.fromisoformat(inst.data["settled_on"])
            records.append(
                spending.Disbursement(county, LEDGER_SOURCE, on, int(inst.data["retention"]), True)
            )
    return allocations, records


def spending_checkpoint(sessions: sessionmaker[Session], runtime: Runtime, now: datetime) -> Outcome:
    """At the last passed checkpoint, each county below target gets its next 两书一函 notice."""
    p, milestone = last_checkpoint(now)
    period = f"{p.year}-{milestone.month:02d}"
    with sessions() as s:
        allocations, records = ledger(s, p.year)
    as_of = spending.month_end(p.year, milestone.month)
    rows = {
        r.county: r
        for r in spending.progress(p, allocations, records, as_of=as_of)
        if r.month == milestone.month and r.source == spending.TOTAL
    }

    def work(s: Session, county: OrgUnit) -> list[str]:
        row = rows.get(county.code)
        if row is None or row.passed is not False:
            return []
        before = [
            i
            for i in _instances(s, spending_supervision.KEY, county)
            if _of_year(i, p.year) and int(i.data["checkpoint"]) < milestone.month
        ]
        level = spending_supervision.level_for(len(before))
        inst = _start(
            s,
            runtime,
            spending_supervision.KEY,
            county,
            {
                "year": p.year,
                "subject": f"{county.name}{p.year}年{milestone.month}月底支出进度滞后 ({level})",
                "checkpoint": milestone.month,
                "level": level,
                "spending_percent": str(row.percent),
                "target_percent": str(row.target),
            },
            now,
            f"job:spending_checkpoint:{period}:{county.code}",
        )
        return [f"{inst.id} {level}"]

    return _each_county(sessions, "spending_checkpoint", period, now, work)


# ---- monthly: data-quality dispatch -------------------------------------------------------


def problems(s: Session, county: OrgUnit, p: Policy, now: datetime) -> list[str]:
    """GZ 二(二)3 data-quality problems of a county: missing fields, stale progress, stale 拨付."""
    found = []
    for inst in _instances(s, project_library.KEY, county):
        if inst.state in ("in_library", "in_annual_plan"):
            missing = [label for name, label in LIBRARY_FIELDS if not str(inst.data.get(name) or "").strip()]
            if missing:
                found.append(f"{inst.title}: 缺少{'、'.join(missing)}")
    stale = now - timedelta(days=p.stale_progress_days)
    unpaid = local(now).date() - timedelta(days=p.disbursement_stale_days)
    for inst in _instances(s, project_delivery.KEY, county):
        if inst.status != ACTIVE or inst.state not in ("planned", "implementing"):
            continue
        if inst.updated_at < stale:
            found.append(f"{inst.title}: 实施进度{p.stale_progress_days}天未更新")
        paid = inst.data.get("disbursed_on")
        if inst.state == "implementing" and (not paid or date.fromisoformat(paid) < unpaid):
            found.append(f"{inst.title}: 资金拨付{p.disbursement_stale_days}天未更新")
    return found


def data_quality_dispatch(sessions: sessionmaker[Session], runtime: Runtime, now: datetime) -> Outcome:
    """Tell each county its problems; open an on-site inspection where there are too many."""
    moment = local(now)
    p = policy_for(moment.year)
    period = f"{moment.year}-{moment.month:02d}"

    def work(s: Session, county: OrgUnit) -> list[str]:
        found = problems(s, county, p, now)
        if not found:
            return []
        done = [f"{len(found)} problem(s)"]
        subject = f"{county.name}{period}项目库数据质量调度: {len(found)}个问题"
        _tell(s, county, f"job:data_quality_dispatch:{period}:{county.code}", subject, "\n".join(found), now)
        if len(found) >= p.inspection_min_problems:
            form = {
                "year": moment.year,
                "subject": f"{county.name}{period}项目库数据实地检查",
                "period": period,
                "problem_count": len(found),
                "problems": "\n".join(found)[:4000],
            }
            idem = f"job:data_quality_dispatch:{period}:{county.code}"
            inst = _start(s, runtime, site_inspection.KEY, county, form, now, idem)
            done.append(f"{inst.id} site_inspection")
        return done

    return _each_county(sessions, "data_quality_dispatch", period, now, work)


# ---- quarterly: the collaboration report ----------------------------------------------------


def quarter_due(year: int, quarter: int, p: Policy) -> date:
    """The quarter's report is due ``quarterly.due_days_after_quarter`` days after it ends."""
    end = end_of_month(year, quarter * MONTHS_PER_QUARTER)
    return local(end).date() + timedelta(days=p.quarterly_due_days)


def quarterly_reports(sessions: sessionmaker[Session], runtime: Runtime, now: datetime) -> Outcome:
    """Open this quarter's report for each county that has not started one."""
    moment = local(now)
    p = policy_for(moment.year)
    quarter = (moment.month - 1) // MONTHS_PER_QUARTER + 1
    period = f"{moment.year}-Q{quarter}"
    due = quarter_due(moment.year, quarter, p)

    def work(s: Session, county: OrgUnit) -> list[str]:
        started = [
            i
            for i in _instances(s, quarterly_report.KEY, county)
            if _of_year(i, moment.year) and str(i.data.get("quarter")) == str(quarter)
        ]
        if started:
            return []
        form = {"year": moment.year, "quarter": str(quarter), "due_on": due.isoformat()}
        inst = _start(
            s,
            runtime,
            quarterly_report.KEY,
            county,
            form,
            now,
            f"job:quarterly_reports:{period}:{county.code}",
        )
        return [f"{inst.id} due {due.isoformat()}"]

    return _each_county(sessions, "quarterly_reports", period, now, work)


# ---- the schedule -------------------------------------------------------------------------

Job = Callable[[sessionmaker[Session], Runtime, datetime], Outcome]


def schedule(p: Policy) -> dict[str, tuple[Job, CronTrigger]]:
    """Each job with its cron trigger (Asia/Shanghai) from the policy's dates."""

    def cron(**when: Any) -> CronTrigger:
        return CronTrigger(hour=p.job_hour, minute=0, timezone=SHANGHAI, **when)

    after_checkpoints = ",".join(str(m.month % 12 + 1) for m in p.milestones)
    quarter_ends = ",".join(str(q * MONTHS_PER_QUARTER) for q in range(1, QUARTERS + 1))
    return {
        "library_sweep": (library_sweep, cron(month=p.sweep_opens.month, day=p.sweep_opens.day)),
        "filing_review_opening": (
            filing_review_opening,
            cron(month=p.filing_review_opens.month, day=p.filing_review_opens.day),
        ),
        "spending_checkpoint": (spending_checkpoint, cron(month=after_checkpoints, day=1)),
        "data_quality_dispatch": (data_quality_dispatch, cron(day=p.dispatch_day)),
        "quarterly_reports": (quarterly_reports, cron(month=quarter_ends, day=p.quarterly_open_day)),
    }


def last_due(trigger: CronTrigger, now: datetime) -> datetime | None:
    """The latest time ``trigger`` was due at or before ``now`` (looking back just over a year)."""
    last, due = None, trigger.get_next_fire_time(None, now - timedelta(days=400))
    while due is not None and due <= now:
        last, due = due, trigger.get_next_fire_time(due, due + timedelta(seconds=1))
    return last


def catch_up(sessions: sessionmaker[Session], runtime: Runtime, now: datetime) -> dict[str, Outcome]:
    """Run each job once for its latest due time, so a date missed while no scheduler ran is not lost.

    Like a timer that fires late, the job acts as of the time it was due (its period and its
    rules are that day's). A job already done for that period changes nothing: every county's
    work is keyed by (job, period, county).
    """
    done = {}
    for name, (job, trigger) in schedule(policy.latest()).items():
        due = last_due(trigger, now)
        if due is not None:
            done[name] = job(sessions, runtime, due)
    return done


def register(
    scheduler: BaseScheduler,
    sessions: sessionmaker[Session],
    runtime: Runtime,
    *,
    clock: Callable[[], datetime] = utcnow,
) -> list[str]:
    """Add every job to ``scheduler`` on the latest policy's dates, and one catch-up run at start.

    Returns the ids of the dated jobs.
    """
    jobs = schedule(policy.latest())
    for name, (job, trigger) in jobs.items():

        def run(job: Job = job, name: str = name) -> None:
            outcome = job(sessions, runtime, clock())
            log.info("%s %s: handled %s", name, outcome.period, outcome.done)

        scheduler.add_job(
            run, trigger, id=name, name=name, coalesce=True, max_instances=1, misfire_grace_time=None
        )

    def run_catch_up() -> None:
        for name, outcome in catch_up(sessions, runtime, clock()).items():
            log.info("catch-up %s %s: handled %s", name, outcome.period, outcome.done)

    scheduler.add_job(run_catch_up, id="catch_up", name="catch_up", next_run_time=clock(), max_instances=1)
    return list(jobs)
