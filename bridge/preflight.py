"""`asterisk-bridge check`: log in to each AMI server, reach each subscriber, check the database."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from bridge.config import Config, SubscriberConfig
from bridge.errors import BridgeError, DeliveryError

AMI_POLL_S = 0.1


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'OK  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def describe_config(config: Config) -> str:
    parts = [f"{len(config.ami)} AMI server(s) ({', '.join(a.name for a in config.ami)})",
             f"{len(config.subscribers)} subscriber(s)"]
    parts.append(f"SOAP on {config.soap.listen}{config.soap.path}" if config.soap else "no SOAP service")
    parts.append(f"metrics on {config.metrics.listen}" if config.metrics else "no metrics server")
    parts.append(f"outbox {safe_url(config.database.url)}")
    return ", ".join(parts)


def safe_url(url: str) -> str:
    """The database URL with its password hidden, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all; config check reports that separately
        return "<invalid database URL>"


def probe_database(url: str, timeout_s: float = 5.0) -> str | None:
    """None when the database answers `SELECT 1`; otherwise why not (no password in it)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        # Connecting would create the file; check that it could be created instead.
        path = parsed.database or ""
        directory = os.path.dirname(os.path.abspath(path)) if path and path != ":memory:" else "."
        if not os.path.isdir(directory):
            return f"directory {directory} does not exist"
        if not os.access(directory, os.W_OK):
            return f"directory {directory} is not writable"
        return None
    connect_args = {"connect_timeout": max(1, int(timeout_s))} if parsed.get_backend_name() == "postgresql" else {}
    engine = create_engine(url, connect_args=connect_args, pool_pre_ping=False)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return f"cannot connect to {safe_url(url)}: {reason}"
    finally:
        engine.dispose()


def check_database(config: Config, timeout_s: float, config_path=None) -> CheckResult:
    name = f"database {safe_url(config.database.url)}"
    problem = probe_database(config.database.url, timeout_s)
    if problem:
        return CheckResult(name, False, problem)
    from bridge.errors import SchemaError
    from bridge.outbox.db import check_schema, make_engine, naming_config

    engine = make_engine(config.database.url)
    try:
        check_schema(engine)
    except SchemaError as exc:
        return CheckResult(name, False, str(naming_config(exc, config_path) if config_path else exc))
    except BridgeError as exc:
        return CheckResult(name, False, str(exc))
    finally:
        engine.dispose()
    return CheckResult(name, True, "reachable, schema up to date")


def check_ami(ami_cfg, timeout_s: float) -> CheckResult:
    from bridge.ari.transports import client_from_config, describe

    name = f"ami {ami_cfg.name} ({describe(ami_cfg)})"
    client = client_from_config(ami_cfg)
    client.start()
    try:
        deadline = time.monotonic() + timeout_s
        # A refused login will not get better by retrying within the check: report it at once.
        while not client.wait_connected(AMI_POLL_S):
            if client.stats.auth_failures or time.monotonic() >= deadline:
                return CheckResult(name, False, client.stats.last_error or "no login within the timeout")
        protocol = "ARI" if ami_cfg.transport == "ari" else f"AMI {client.ami_version or '?'}"
        versions = f"Asterisk {client.asterisk_version or '?'}, {protocol}"
        return CheckResult(name, True, f"logged in as {ami_cfg.username} ({versions})")
    finally:
        client.stop()


def check_subscriber(sub: SubscriberConfig, timeout_s: float) -> CheckResult:
    """GET the endpoint's ?wsdl (1C serves it) through the delivery transport (same auth, TLS
    verification, CA file and proxy; redirects are not followed, so credentials never go to
    another host): an answer proves the endpoint is reachable."""
    from bridge.erp.transport import ErpTransport

    name = f"subscriber {sub.name}"
    transport = ErpTransport(sub)
    try:
        status, target = transport.probe(timeout_s)
    except DeliveryError as exc:
        return CheckResult(name, False, f"{_host(sub.url)} unreachable: {exc.message.split(': ', 1)[-1]}")
    finally:
        transport.close()
    if 300 <= status < 400:
        return CheckResult(name, False, f"{_host(sub.url)} answered HTTP {status}, a redirect"
                           f"{' to ' + target if target else ''}; deliveries do not follow redirects: "
                           "set url to the final address")
    # 405/501: the endpoint exists but only takes POST (a plain SOAP listener, not 1C's ?wsdl).
    ok = status < 400 or status in (405, 501)
    note = {401: " (credentials refused)", 403: " (forbidden)", 404: " (no such path)",
            405: " (POST only)", 501: " (POST only)"}.get(status, "")
    return CheckResult(name, ok, f"{_host(sub.url)} answered HTTP {status}{note}")


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}{parts.path}"


def running_bridge_warnings(config: Config, timeout_s: float) -> list[str]:
    """The warnings of a bridge already running with this config (its /healthz), if it answers:
    e.g. a subscriber that matched nothing while events were filtered."""
    import json
    import urllib.error
    import urllib.request

    from bridge.config_checks import parse_listen

    if config.metrics is None:
        return []
    host, port = parse_listen(config.metrics.listen)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
    except (urllib.error.URLError, OSError):
        return []   # not running (or not here): nothing to add
    try:
        return [str(w) for w in json.loads(body).get("warnings", [])]
    except (ValueError, AttributeError):
        return []


def run_checks(config: Config, timeout_s: float = 5.0, config_path=None) -> list[CheckResult]:
    results = [check_ami(ami, timeout_s) for ami in config.ami]
    results += [check_subscriber(sub, timeout_s) for sub in config.subscribers]
    results.append(check_database(config, timeout_s, config_path))
    return results
