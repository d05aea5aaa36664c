"""The ``shuangti`` command: migrate, demo, serve, scheduler, audit verify, reports."""

from __future__ import annotations

import argparse
import os
import sys

from engine import audit
from engine.store.db import make_engine, migrate, session_factory

DEFAULT_DB = "sqlite:///instance/shuangti.db"


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shuangti", description="双提 workflow engine")
    parser.add_argument(
        "--db",
        default=os.environ.get("SHUANGTI_DB", DEFAULT_DB),
        help="SQLAlchemy URL (env SHUANGTI_DB); default %(default)s",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create or upgrade the schema (Alembic)").set_defaults(func=_cmd_migrate)
    aud = sub.add_parser("audit", help="the audit trail")
    aud_sub = aud.add_subparsers(dest="audit_command", required=True)
    ver = aud_sub.add_parser("verify", help="walk every hash chain; name the first broken event")
    ver.add_argument("--stream", help="only this stream, e.g. instance:42")
    ver.set_defaults(func=_cmd_audit_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
