"""`asterisk-bridge db …` and `asterisk-bridge outbox …`: parsers and handlers returning exit codes."""

from __future__ import annotations

import argparse
import os
import sys

from bridge.errors import BridgeError, ConfigError, SchemaError
from bridge.outbox import admin
from bridge.outbox.models import DEAD, DELIVERED, STATUSES

DATABASE_URL_ENV = "BRIDGE_DATABASE_URL"
CONFIG_ENV = "BRIDGE_CONFIG"

DB_HELP = f"""database URL, first found: --database-url, -c FILE's [database] url, env {DATABASE_URL_ENV},
env {CONFIG_ENV}'s [database] url"""


def _add_database_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", metavar="FILE", default=None,
                        help=f"TOML configuration file whose [database] url is used (env {CONFIG_ENV})")
    parser.add_argument("--database-url", metavar="URL", default=None,
                        help=f"SQLAlchemy URL, e.g. sqlite:///outbox.db or postgresql+psycopg://u@h/db "
                             f"(env {DATABASE_URL_ENV})")
    parser.epilog = DB_HELP


def database_url(args: argparse.Namespace) -> str:
    if getattr(args, "database_url", None):
        return args.database_url
    config_path = getattr(args, "config", None)
    if not config_path and not os.environ.get(DATABASE_URL_ENV):
        config_path = os.environ.get(CONFIG_ENV)
    if config_path:
        from bridge.config_load import load_config

        # Only [database]: `db upgrade` must not need AMI_SECRET or SOAP_PASSWORD to be set.
        return load_config(config_path, only=("database",)).database.url
    if os.environ.get(DATABASE_URL_ENV):
        return os.environ[DATABASE_URL_ENV]
    raise ConfigError(f"no database: give -c FILE, --database-url URL or set {DATABASE_URL_ENV}")


def _engine(args: argparse.Namespace, check: bool = True):
    from bridge.outbox.db import check_schema, make_engine

    url = database_url(args)
    _refuse_missing_sqlite(url)
    engine = make_engine(url)
    if check:
        try:
            check_schema(engine)
        except SchemaError as exc:
            engine.dispose()
            config_path = getattr(args, "config", None) or os.environ.get(CONFIG_ENV)
            if config_path and not getattr(args, "database_url", None):
                from bridge.outbox.db import naming_config

                raise naming_config(exc, config_path) from None
            raise
    return engine


def _refuse_missing_sqlite(url: str) -> None:
    """Reading a SQLite outbox that does not exist would create an empty file (and a wrong
    answer); say where it was looked for instead."""
    from sqlalchemy.engine import make_url

    database = make_url(url).database if url.startswith("sqlite") else None
    if database and database != ":memory:" and not database.startswith("file:") \
            and not os.path.exists(database):
        raise SchemaError(f"no outbox database at {os.path.abspath(database)}; "
                          "create it with `asterisk-bridge db upgrade`")


# --- db ------------------------------------------------------------------------------------------

def add_db_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("db", help="database schema: upgrade, check")
    sub = parser.add_subparsers(dest="db_command", metavar="DB_COMMAND", required=True)
    up = sub.add_parser("upgrade", help="apply the Alembic migrations (creates the outbox table)")
    _add_database_arguments(up)
    up.add_argument("--revision", default="head", help="target revision (default head)")
    up.set_defaults(func=cmd_db_upgrade)
    chk = sub.add_parser("check", help="exit 0 if the schema matches this version, 1 otherwise")
    _add_database_arguments(chk)
    chk.set_defaults(func=cmd_db_check)
    return parser


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from bridge.outbox.db import head_revision, upgrade

    upgrade(database_url(args), args.revision)
    print(f"database upgraded to revision {args.revision if args.revision != 'head' else head_revision()}")
    return 0


def cmd_db_check(args: argparse.Namespace) -> int:
    """Exit 1 (not 2) when the schema is behind: this command's answer, not a usage error."""
    from bridge.outbox.db import check_schema

    try:
        engine = _engine(args, check=False)
        try:
            print(f"schema OK at revision {check_schema(engine)}")
        finally:
            engine.dispose()
    except SchemaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


# --- outbox --------------------------------------------------------------------------------------

def add_outbox_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("outbox", help="inspect and replay the event outbox")
    sub = parser.add_subparsers(dest="outbox_command", metavar="OUTBOX_COMMAND", required=True)

    p = sub.add_parser("stats", help="counts by subscriber × status, oldest pending age")
    p.set_defaults(func=cmd_stats)
    p = sub.add_parser("list", help="newest rows first (no payload)")
    p.add_argument("--status", choices=STATUSES, help="only rows with this status")
    p.add_argument("--subscriber", metavar="NAME", help="only this [[subscriber]]'s rows")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="at most N rows (default 50)")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("show", help="one row in full, payload included")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("retry", help="put a row (or all dead rows) back to pending, attempts reset")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("id", type=int, nargs="?")
    target.add_argument("--dead", action="store_true", help="every dead row")
    p.add_argument("--subscriber", help="only this subscriber's rows")
    p.add_argument("--force", action="store_true", help="also a delivered row (sent again, same id)")
    p.set_defaults(func=cmd_retry)
    p = sub.add_parser("purge", help="delete old delivered (or dead) rows")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--delivered", action="store_const", const=DELIVERED, dest="purge_status")
    what.add_argument("--dead", action="store_const", const=DEAD, dest="purge_status")
    p.add_argument("--older-than", required=True, metavar="DURATION", help='e.g. "7d", "12h", "30m"')
    p.set_defaults(func=cmd_purge)
    for name, child in sub.choices.items():
        _add_database_arguments(child)
        child.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _run(args, work):
    engine = _engine(args)
    try:
        return work(engine)
    finally:
        engine.dispose()


def cmd_stats(args: argparse.Namespace) -> int:
    rows = _run(args, admin.stats)
    print(admin.to_json(rows) if args.json else
          (admin.format_table(rows, admin.STATS_COLUMNS) if rows else "outbox is empty"))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    rows = _run(args, lambda e: admin.list_rows(e, args.status, args.subscriber, args.limit))
    if args.json:
        print(admin.to_json(rows))
    elif not rows:
        where = [f"{k} {v}" for k, v in (("status", args.status), ("subscriber", args.subscriber)) if v]
        print(f"no outbox rows{' with ' + ' and '.join(where) if where else ''}")
    else:
        print(admin.format_table(rows, admin.LIST_COLUMNS))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    row = _run(args, lambda e: admin.show(e, args.id))
    print(admin.to_json(row) if args.json else admin.format_row(row))
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    n = _run(args, lambda e: admin.retry(e, args.id, args.dead, args.subscriber, force=args.force))
    print(admin.to_json({"requeued": n}) if args.json else f"{n} row(s) back to pending")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    try:
        from bridge.config_load import parse_duration

        older_than_s = parse_duration(args.older_than)
    except ValueError as exc:
        raise ConfigError(f"--older-than: {exc}") from None
    n = _run(args, lambda e: admin.purge(e, args.purge_status, older_than_s))
    print(admin.to_json({"purged": n}) if args.json else f"{n} {args.purge_status} row(s) purged")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Standalone parser for `python -m bridge.outbox.cli` (the main CLI embeds the same parsers)."""
    parser = argparse.ArgumentParser(prog="python -m bridge.outbox.cli")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_db_parser(subparsers)
    add_outbox_parser(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BridgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, (ConfigError, SchemaError)) else 1


if __name__ == "__main__":
    sys.exit(main())
