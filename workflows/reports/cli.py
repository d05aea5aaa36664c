"""The ``report``, ``import`` and ``template`` subcommands of ``shuangti`` (web/cli.py adds them).

Every report and import acts as a named user (``--as USERNAME``): exports are scoped by
that user's sight and imports go through the runtime with that user's roles.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import date
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.clock import utcnow
from engine.directory import unit_by_code
from engine.scope import Actor, load_actor
from engine.store.db import make_engine, session_factory
from engine.store.models import User
from workflows import build_runtime, policy
from workflows.reports import exports, importer, industry, ranking, spending, targets


def _actor(session: Session, username: str) -> Actor:
    user = session.scalars(select(User).where(User.username == username)).first()
    if user is None:
        raise SystemExit(f"no user '{username}'")
    return load_actor(session, user.id, utcnow())


def _policy(args) -> policy.Policy:
    return policy.load(args.year) if args.year else policy.latest()


def _report(args) -> int:
    runtime = build_runtime()
    with session_factory(make_engine(args.db))() as s:
        actor = _actor(s, args.as_user)
        county = unit_by_code(s, args.county) if getattr(args, "county", None) else None
        kind, p = args.report, _policy(args)
        if kind == "spending":
            ledger = spending.load(s, actor, args.ledger)
            rows = spending.progress(
                p, ledger.allocations, ledger.disbursements, ledger.province_average, args.as_of
            )
            data = spending.workbook(rows)
        elif kind == "industry":
            data = industry.workbook(p, industry.county_shares(s, actor, p))
        elif kind == "ranking":
            scores, base = ranking.load(s, actor, args.scores)
            data = ranking.workbook(ranking.rank(p, scores), base)
        elif kind == "targets":
            bulletin = targets.bulletin(s, actor, p, args.quarter)
            data = targets.workbook(bulletin)
            if args.html:
                Path(args.html).write_text(targets.html(bulletin, utcnow()), encoding="utf-8")
        elif kind == "library":
            data = exports.library(s, runtime, actor, county)
        elif kind == "plan":
            data = exports.annual_plan(s, runtime, actor, p.year, county)
        elif kind == "ledger":
            data = exports.ledger(s, runtime, actor, county)
        else:
            data = exports.audit(
                s, runtime, actor, instance_id=args.instance, county=county, start=args.start, end=args.end
            )
    Path(args.out).write_bytes(data)
    print(f"wrote {args.out}")
    return 0


def _import(args) -> int:
    runtime = build_runtime()
    run = importer.import_projects if args.kind == importer.PROJECTS else importer.import_plan
    sessions = session_factory(make_engine(args.db))
    try:
        with sessions.begin() as s:
            result = run(s, runtime, _actor(s, args.as_user), Path(args.file), utcnow())
    except importer.ImportFailed as failed:
        print(f"nothing imported: {len(failed.errors)} error(s)")
        for e in failed.errors:
            print(f"  {e}")
        return 1
    print(f"imported: {len(result.created)} new, {len(result.existing)} already present")
    return 0


TEMPLATES: dict[str, Callable[[], bytes]] = {
    importer.PROJECTS: lambda: importer.template(build_runtime(), importer.PROJECTS),
    importer.PLAN: lambda: importer.template(build_runtime(), importer.PLAN),
    "spending": spending.template,
    "ranking": ranking.template,
}


def _template(args) -> int:
    Path(args.out).write_bytes(TEMPLATES[args.kind]())
    print(f"wrote {args.out}")
    return 0


def add_commands(sub) -> None:
    """Add ``report``, ``import`` and ``template`` to the ``shuangti`` subparsers."""
    rep = sub.add_parser("report", help="write a report or export as .xlsx (scoped by --as)")
    kinds = rep.add_subparsers(dest="report", required=True)

    def kind(name: str, text: str, *, county: bool = False) -> argparse.ArgumentParser:
        parser = kinds.add_parser(name, help=text)
        parser.add_argument(
            "--as", dest="as_user", required=True, help="username whose sight scopes the report"
        )
        parser.add_argument("--out", required=True, help="the .xlsx file to write")
        parser.add_argument("--year", type=int, help="policy year; default the latest")
        if county:
            parser.add_argument("--county", help="only this county (org unit code)")
        parser.set_defaults(func=_report)
        return parser

    kind("spending", "支出进度 from a 拨付台账 workbook").add_argument("--ledger", required=True)
    kinds.choices["spending"].add_argument("--as-of", type=date.fromisoformat, help="only checkpoints up to")
    kind("industry", "产业发展资金占比 of filed county plans")
    kind("ranking", "考评排名 and next year's adjustment").add_argument("--scores", required=True)
    tgt = kind("targets", "协作帮扶季度通报")
    tgt.add_argument("--quarter", type=int, choices=(1, 2, 3, 4), required=True)
    tgt.add_argument("--html", help="also write the printable HTML 通报 here")
    kind("library", "项目库", county=True)
    kind("plan", "年度计划 (projects in the annual plan of --year)", county=True)
    kind("ledger", "资产台账", county=True)
    aud = kind("audit", "审计记录 of an instance, or of a county for a period", county=True)
    aud.add_argument("--instance", type=int)
    aud.add_argument("--from", dest="start", type=date.fromisoformat, help="first local date")
    aud.add_argument("--to", dest="end", type=date.fromisoformat, help="last local date")

    imp = sub.add_parser("import", help="import projects or an annual plan from .xlsx (all or nothing)")
    imp.add_argument("kind", choices=(importer.PROJECTS, importer.PLAN))
    imp.add_argument("file")
    imp.add_argument("--as", dest="as_user", required=True, help="username acting")
    imp.set_defaults(func=_import)

    tpl = sub.add_parser("template", help="write an empty import workbook")
    tpl.add_argument("kind", choices=tuple(TEMPLATES))
    tpl.add_argument("--out", required=True)
    tpl.set_defaults(func=_template)
