"""`asterisk-bridge status` and `asterisk-bridge ha step-down`: who leads which PBX, and handing over."""

from __future__ import annotations

import argparse
from datetime import datetime

from bridge.errors import ConfigError
from bridge.ha import lease
from bridge.outbox.cli import _add_database_arguments, _run
from bridge.outbox.db import single_process


def add_status_parser(subparsers) -> None:
    parser = subparsers.add_parser("status", help="which node leads which AMI server, since when (PostgreSQL)")
    _add_database_arguments(parser)
    parser.set_defaults(func=cmd_status)


def add_ha_parser(subparsers) -> None:
    parser = subparsers.add_parser("ha", help="high availability: hand a PBX over to a standby")
    sub = parser.add_subparsers(dest="ha_command", metavar="COMMAND")
    step = sub.add_parser("step-down", help="ask the leader(s) to hand over to a standby now")
    _add_database_arguments(step)
    step.add_argument("--server", action="append", metavar="NAME",
                      help="[[ami]] name whose leader steps down (repeatable; default: every server)")
    step.set_defaults(func=cmd_step_down)
    parser.set_defaults(func=lambda args: parser.print_usage() or 2)


def _iso(value: datetime) -> str:
    return value.astimezone().isoformat(timespec="seconds")


def render_status(leases: list[lease.Lease]) -> str:
    """One line per AMI server: leader node, token, since, lease expiry (or 'no leader')."""
    if not leases:
        return "no leases yet: no bridge node has led any AMI server on this database\n"
    lines = []
    for item in leases:
        if item.live:
            left = (item.expires_at - item.now).total_seconds()
            lines.append(f"{item.server}: leader {item.node} since {_iso(item.acquired_at)}, token {item.token}, "
                         f"lease expires in {left:.1f} s" + (", step-down requested" if item.handover else ""))
        else:
            lines.append(f"{item.server}: no leader (last: {item.node}, token {item.token}, "
                         f"lease expired {_iso(item.expires_at)})")
    return "\n".join(lines) + "\n"


def _postgres_only(engine) -> None:
    if single_process(engine):
        raise ConfigError("this outbox is SQLite: one bridge process, no leases (high availability needs "
                          "PostgreSQL, docs/ha.md)")


def cmd_status(args: argparse.Namespace) -> int:
    def work(engine):
        _postgres_only(engine)
        with engine.connect() as conn:
            return lease.leases(conn)

    print(render_status(_run(args, work)), end="")
    return 0


def cmd_step_down(args: argparse.Namespace) -> int:
    def work(engine):
        _postgres_only(engine)
        with engine.begin() as conn:
            return lease.request_handover(conn, args.server)

    asked = _run(args, work)
    if not asked:
        print("no live leader to step down" + (f" for {', '.join(args.server)}" if args.server else ""))
        return 1
    for server, node in asked:
        print(f"{server}: asked {node} to hand over (it does at its next renewal)")
    return 0
