"""The `asterisk-bridge` command line: argparse parsers, handlers returning exit codes, error printing."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from typing import Callable, Sequence

import bridge
from bridge.errors import BridgeError, ConfigError, SchemaError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
CONFIG_ENV = "BRIDGE_CONFIG"

ENVIRONMENT_HELP = f"""\
environment:
  {CONFIG_ENV}           configuration file when -c is not given
  BRIDGE_DATABASE_URL     database URL for `db` and `outbox` when neither -c nor --database-url is given
  BRIDGE_LOG_LEVEL        overrides [logging] level (DEBUG, INFO, WARNING, ERROR)
  any ${{VAR}}              a config value written as "${{VAR}}" is read from the environment
                          (e.g. secret = "${{AMI_SECRET}}"); "${{VAR:-default}}" falls back

exit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage"""


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    default = os.environ.get(CONFIG_ENV)
    parser.add_argument("-c", "--config", metavar="FILE", default=default, required=default is None,
                        help=f"TOML configuration file (env {CONFIG_ENV})")


def add_run_parser(subparsers) -> None:
    parser = subparsers.add_parser("run", help="run the bridge until SIGTERM/SIGINT",
                                   epilog=ENVIRONMENT_HELP,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_argument(parser)
    parser.set_defaults(func=cmd_run)


def add_demo_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="simulated Asterisk + local ERP sink: watch call events being delivered",
        description="Starts an AMI simulator, a SQLite outbox in a temporary directory, the SOAP "
                    "service and a local SOAP sink playing the ERP; no Asterisk needed. Ctrl-C stops.")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    parser.add_argument("--calls-per-minute", type=float, default=6.0, metavar="N",
                        help="simulated calls per minute (default 6)")
    parser.add_argument("--profile", default="asterisk20", choices=("asterisk11", "asterisk20"),
                        help="which Asterisk the simulator plays (default asterisk20)")
    parser.add_argument("--transport", default="tcp", choices=("tcp", "http"),
                        help="AMI over TCP, or AJAM over HTTP (WaitEvent long poll) (default tcp)")
    parser.add_argument("--lose-answer", type=int, default=3, metavar="N",
                        help="the ERP sink drops its answer to the Nth event once, to show a "
                             "re-delivery (default 3; 0: never)")
    parser.add_argument("--soap-port", type=int, metavar="PORT",
                        help="SOAP service port (default 8080, or a free one if 8080 is busy; 0: any)")
    parser.add_argument("--metrics-port", type=int, metavar="PORT",
                        help="/metrics and /healthz port (default 9108, or a free one if busy; 0: any)")
    parser.add_argument("--keep-db", action="store_true",
                        help="keep the SQLite outbox afterwards (its path is printed) to inspect it")
    parser.set_defaults(func=cmd_demo)


def add_check_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "check", help="log in to each AMI server, reach each subscriber, check the database schema")
    add_config_argument(parser)
    parser.add_argument("--timeout", type=float, default=5.0, metavar="S",
                        help="per-check timeout in seconds (default 5)")
    parser.set_defaults(func=cmd_check)


def add_config_parser(subparsers) -> None:
    parser = subparsers.add_parser("config", help="configuration commands")
    sub = parser.add_subparsers(dest="config_command", metavar="COMMAND")
    check = sub.add_parser("check", help="validate the configuration file without starting anything",
                           epilog=ENVIRONMENT_HELP,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_argument(check)
    check.add_argument("--offline", action="store_true",
                       help="do not try to connect to the database")
    check.set_defaults(func=cmd_config_check)
    parser.set_defaults(func=_usage(parser))


def add_wsdl_parser(subparsers) -> None:
    parser = subparsers.add_parser("wsdl", help="print the WSDL the SOAP service publishes")
    parser.add_argument("-c", "--config", metavar="FILE", default=os.environ.get(CONFIG_ENV),
                        help=f"take [soap] from this file (env {CONFIG_ENV}); default settings otherwise")
    parser.add_argument("--base-url", metavar="URL",
                        help="scheme://host:port to put in the WSDL (default: from [soap] listen)")
    parser.add_argument("--soap12", action="store_true", help="the SOAP 1.2-only flavour")
    parser.add_argument("--events", action="store_true",
                        help="instead: events.wsdl, the PushEvent service the ERP implements")
    parser.add_argument("--xsd", action="store_true",
                        help="with --events: only its schema, events.xsd (a 1C XDTO package)")
    parser.set_defaults(func=cmd_wsdl)


def add_version_parser(subparsers) -> None:
    parser = subparsers.add_parser("version", help="print the version")
    parser.set_defaults(func=cmd_version)


def _add_outbox_parsers(subparsers) -> None:
    """`db` and `outbox` belong to bridge.outbox.cli; if that part fails to import, the rest of the
    CLI still works and those two commands say why they cannot."""
    try:
        from bridge.outbox.cli import add_db_parser, add_outbox_parser
    except ImportError as exc:
        reason = f"{type(exc).__name__}: {exc}"
        for name in ("db", "outbox"):
            parser = subparsers.add_parser(name, help=f"unavailable ({reason})")
            parser.add_argument("rest", nargs=argparse.REMAINDER)
            parser.set_defaults(func=_unavailable(name, reason))
        return
    add_db_parser(subparsers)
    add_outbox_parser(subparsers)


def _unavailable(name: str, reason: str) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        raise BridgeError(f"`{name}` is unavailable: bridge.outbox.cli failed to import ({reason})")
    return handler


def _usage(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        parser.print_usage(sys.stderr)
        return EXIT_USAGE
    return handler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asterisk-bridge", epilog=ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Asterisk AMI → ERP bridge: durable event outbox, SOAP push, SOAP call control.")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="debug logging, and tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (add_run_parser, add_demo_parser, add_check_parser, add_config_parser):
        add(subparsers)
    _add_outbox_parsers(subparsers)
    from bridge.ha.cli import add_ha_parser, add_status_parser

    add_status_parser(subparsers)
    add_ha_parser(subparsers)
    add_wsdl_parser(subparsers)
    add_version_parser(subparsers)
    parser.set_defaults(func=_usage(parser))
    return parser


# --- handlers (each returns an exit code; other parts are imported lazily) ---------------------

def _log_level(args: argparse.Namespace, default: str) -> str:
    return "DEBUG" if args.verbose else os.environ.get("BRIDGE_LOG_LEVEL", default)


def _subscriber_check():
    """The "can this subscriber ever match?" analysis, for every command that runs or checks."""
    from bridge.calls.reach import analyse

    return analyse


def cmd_run(args: argparse.Namespace) -> int:
    from bridge.config_load import load_config
    from bridge.logsetup import setup_logging_for
    from bridge.runtime import Runtime

    config = load_config(args.config, check_subscriber=_subscriber_check())
    setup_logging_for(config, _log_level(args, config.logging.level))
    for warning in config.warnings:
        logging.getLogger("bridge.config").warning("%s", warning)
    try:
        return Runtime(config).run_until_signal()
    except SchemaError as exc:
        from bridge.outbox.db import naming_config

        # Exit 2 (see main): under systemd, RestartPreventExitStatus=2 stops the restart loop.
        raise naming_config(exc, args.config) from None


def cmd_demo(args: argparse.Namespace) -> int:
    from bridge.testing.demo import run_demo

    return run_demo(duration_s=args.duration, calls_per_minute=args.calls_per_minute,
                    profile=args.profile, verbose=bool(args.verbose), lose_answer_to=args.lose_answer,
                    soap_port=args.soap_port, metrics_port=args.metrics_port, keep_db=args.keep_db,
                    transport=args.transport)


def cmd_check(args: argparse.Namespace) -> int:
    from bridge.config_load import load_config
    from bridge.logsetup import setup_logging_for
    from bridge.preflight import run_checks

    config = load_config(args.config, check_subscriber=_subscriber_check())
    # The OK/FAIL lines say it all; the parts' own retry logs would only repeat them.
    setup_logging_for(config, _log_level(args, "CRITICAL"))
    from bridge.preflight import running_bridge_warnings

    for warning in config.warnings:
        print(f"WARN {warning}", flush=True)
    results = run_checks(config, timeout_s=args.timeout, config_path=args.config)
    for result in results:
        print(result.line(), flush=True)
    for warning in running_bridge_warnings(config, args.timeout):
        print(f"WARN running bridge: {warning}", flush=True)
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILURE


def cmd_config_check(args: argparse.Namespace) -> int:
    from bridge.config_load import load_config
    from bridge.preflight import describe_config, probe_database

    config = load_config(args.config, check_subscriber=_subscriber_check())
    if not args.offline:
        problem = probe_database(config.database.url, timeout_s=5.0)
        if problem:
            raise ConfigError(f"{args.config}: invalid configuration:\n  database.url: {problem}",
                              [f"database.url: {problem}"])
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"OK {args.config}: {describe_config(config)}")
    return EXIT_OK


def cmd_wsdl(args: argparse.Namespace) -> int:
    if args.events or args.xsd:
        from importlib.resources import files

        name = "events.xsd" if args.xsd else "events.wsdl"
        sys.stdout.write(files("bridge").joinpath("wsdl", name).read_text(encoding="utf-8"))
        return EXIT_OK
    from urllib.parse import urlsplit

    from bridge.config import SoapConfig
    from bridge.config_load import load_config
    from bridge.soap.wsdl import render_wsdl

    if args.base_url is not None:
        parts = urlsplit(args.base_url)
        try:
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            port_ok = False
        if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok \
                or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigError(f"--base-url: {args.base_url!r} is not scheme://host[:port] "
                              "(e.g. http://pbx-bridge:8080); the path comes from [soap] path")

    # Only [soap], without its users: printing the WSDL needs no secret to be set.
    soap = (load_config(args.config, only=("soap",), omit=("soap.users",)).soap
            if args.config else None) or SoapConfig()
    sys.stdout.write(render_wsdl(soap, "1.2" if args.soap12 else "1.1", base_url=args.base_url))
    return EXIT_OK


def cmd_version(args: argparse.Namespace) -> int:
    print(f"asterisk-bridge {bridge.__version__} (Python {sys.version.split()[0]})")
    return EXIT_OK


# --- top level ----------------------------------------------------------------------------------

def format_error(exc: BaseException) -> str:
    """`error: message` then one `caused by:` line per link of the cause chain."""
    lines = [f"error: {exc}" if isinstance(exc, BridgeError) else f"error: {type(exc).__name__}: {exc}"]
    seen = {id(exc)}
    cause = _cause(exc)
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        lines.append(f"  caused by: {type(cause).__name__}: {cause}")
        cause = _cause(cause)
    return "\n".join(lines)


def _cause(exc: BaseException) -> BaseException | None:
    """The explicit cause, else the implicit context unless `raise … from None` suppressed it."""
    return exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BridgeError as exc:
        if args.verbose:
            traceback.print_exc()
        print(format_error(exc), file=sys.stderr)
        # An unmigrated database is fixed by a command, like a bad config: restarting cannot.
        return EXIT_USAGE if isinstance(exc, (ConfigError, SchemaError)) else EXIT_FAILURE
    except Exception as exc:  # the top level of the process: report, never a bare traceback
        if args.verbose:
            traceback.print_exc()
        else:
            print("(run with -v for the traceback)", file=sys.stderr)
        print(format_error(exc), file=sys.stderr)
        return EXIT_FAILURE
