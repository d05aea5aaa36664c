"""The ``shuangti`` command: migrate, demo, serve, scheduler, audit verify, reports."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import subprocess
import sys
from datetime import datetime

from engine import audit, scheduler
from engine.clock import utcnow
from engine.store.db import alembic_config, make_engine, migrate, session_factory
from workflows.reports import cli as reports_cli

DEFAULT_DB = "sqlite:///instance/shuangti.db"
GANZI_RUNTIME = "workflows:build_runtime"
"""The Ganzi runtime factory; with it, the scheduler also runs the domain calendar jobs (workflows.jobs)."""


def _cmd_migrate(args) -> int:
    migrate(args.db)
    print(f"migrated {args.db}")
    return 0


def _cmd_audit_verify(args) -> int:
    sessions = session_factory(make_engine(args.db))
    with sessions() as s:
        breaks = audit.verify(s, args.stream)
    for b in breaks:
        print(f"BROKEN {b}")
    if not breaks:
        print("audit chain verified: every stream is whole")
    return 1 if breaks else 0


def _aware_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"'{text}' has no time zone: write e.g. 2025-06-01T00:00:00+00:00")
    return moment


def _runtime_factory(spec: str):
    """``module:function`` → the function; imported only when the command runs."""
    module, _, name = spec.partition(":")
    if not name:
        raise SystemExit(f"--runtime '{spec}' must be module:function, e.g. workflows:build_runtime")
    return getattr(importlib.import_module(module), name)


def _cmd_scheduler(args) -> int:
    if args.now is not None and not args.once:
        raise SystemExit("--now is only for --once (a frozen clock for one scan)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("transitions").setLevel(logging.WARNING)
    runtime = _runtime_factory(args.runtime)()
    sessions = session_factory(make_engine(args.db))
    if args.once:
        now = args.now or utcnow()
        acted = scheduler.run_due(sessions, runtime, now, batch=args.batch)
        print(f"acted on {acted} due deadline row(s) at {now.isoformat()}")
        return 0
    process = scheduler.build_scheduler(sessions, runtime, args.interval, batch=args.batch)
    if args.runtime == GANZI_RUNTIME:
        from workflows import jobs

        jobs.register(process, sessions, runtime)
    with contextlib.suppress(KeyboardInterrupt):
        process.start()
    return 0


def _reset(url: str) -> None:
    """Empty the database at ``url``: delete a SQLite file, or downgrade every migration elsewhere."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path + suffix)
        return
    from alembic import command

    command.downgrade(alembic_config(url), "base")


def _cmd_demo(args) -> int:
    """Migrate and fill the demo (workflows.demo.seed), all in one transaction."""
    from workflows import demo

    if args.reset:
        _reset(args.db)
    if args.db.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(os.path.abspath(args.db.removeprefix("sqlite:///"))), exist_ok=True)
    migrate(args.db)
    engine = make_engine(args.db)
    with session_factory(engine).begin() as s:
        demo.seed(s, utcnow())
    engine.dispose()
    print(f"demo data loaded into {args.db}; every demo user's password is '{demo.PASSWORD}'")
    return 0


def _cmd_serve(args) -> int:
    """Serve the web app (werkzeug, threaded); with --with-scheduler also run the scheduler beside it."""
    from werkzeug.serving import run_simple

    from web import create_app

    app = create_app({"SHUANGTI_DB": args.db, "RUNTIME_FACTORY": args.runtime})
    child = None
    if args.with_scheduler:
        child = subprocess.Popen(
            [sys.executable, "-m", "web.cli", "--db", args.db, "scheduler", "--runtime", args.runtime]
        )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        run_simple(args.host, args.port, app, threaded=True)
    finally:
        if child is not None:
            child.terminate()
            child.wait(timeout=30)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shuangti", description="双提 workflow engine")
    parser.add_argument(
        "--db",
        default=os.environ.get("SHUANGTI_DB", DEFAULT_DB),
        help="SQLAlchemy URL (env SHUANGTI_DB); default %(default)s",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create or upgrade the schema (Alembic)").set_defaults(func=_cmd_migrate)
    sch = sub.add_parser("scheduler", help="fire due reminders, breaches and timers (run one per database)")
    sch.add_argument("--once", action="store_true", help="scan once and exit")
    sch.add_argument("--interval", type=float, default=30, help="seconds between scans; default %(default)s")
    sch.add_argument("--now", type=_aware_time, help="with --once: scan as of this ISO time (tests)")
    sch.add_argument(
        "--batch", type=int, default=scheduler.BATCH, help="due rows per transaction; default %(default)s"
    )
    sch.add_argument(
        "--runtime",
        default=GANZI_RUNTIME,
        help="module:function returning the engine Runtime; default %(default)s",
    )
    sch.set_defaults(func=_cmd_scheduler)
    demo = sub.add_parser("demo", help="migrate and load the Ganzi demo data (workflows.demo)")
    demo.add_argument("--reset", action="store_true", help="empty the database first")
    demo.set_defaults(func=_cmd_demo)
    srv = sub.add_parser("serve", help="serve the web app")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=5000)
    srv.add_argument("--with-scheduler", action="store_true", help="also run 'shuangti scheduler' as a child")
    srv.add_argument(
        "--runtime",
        default=GANZI_RUNTIME,
        help="module:function returning the engine Runtime; default %(default)s",
    )
    srv.set_defaults(func=_cmd_serve)
    aud = sub.add_parser("audit", help="the audit trail")
    aud_sub = aud.add_subparsers(dest="audit_command", required=True)
    ver = aud_sub.add_parser("verify", help="walk every hash chain; name the first broken event")
    ver.add_argument("--stream", help="only this stream, e.g. instance:42")
    ver.set_defaults(func=_cmd_audit_verify)
    reports_cli.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
