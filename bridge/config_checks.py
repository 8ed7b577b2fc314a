"""Semantic checks on typed settings: regexes, URLs, addresses, CIDRs, choices, cross references."""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Mapping
from urllib.parse import urlsplit

from bridge.config import (AmiConfig, CallsConfig, ClickToCallConfig, Config, DatabaseConfig, HaConfig,
                           LoggingConfig, MetricsConfig, SoapConfig, SubscriberConfig)

# manager.conf read/write classes (Asterisk 11–22, main/manager.c `perms[]`); `events = "on"`
# means every class the user may read.
AMI_EVENT_CLASSES = ("system", "call", "log", "verbose", "command", "agent", "user", "config",
                     "dtmf", "reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc",
                     "test", "security", "message", "all")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Names end up in metric labels, outbox rows and CLI arguments: keep them shell- and SQL-safe.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HOST_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*\.?")


def parse_listen(value: str) -> tuple[str, int]:
    """"127.0.0.1:8080", "[::1]:8080", "localhost:0" → (host, port); ValueError says why."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]+):(\d+)", value.strip())
    if not match:
        raise ValueError(f'"{value}" is not HOST:PORT (e.g. "127.0.0.1:8080", "[::1]:8080")')
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 0-65535")
    if match.group(1):
        ipaddress.IPv6Address(host)
    elif not _is_host(host):
        raise ValueError(f'"{host}" is not an IP address or host name')
    return host, port


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOST_RE.fullmatch(host))


def _regex(pattern: str, path: str, problems: list[str], flags: int = 0) -> None:
    try:
        re.compile(pattern, flags)
    except re.error as exc:
        where = f" at {exc.pos}" if exc.pos is not None else ""
        problems.append(f"{path}: {exc.msg}{where}")


def _choice(value: str, choices, path: str, problems: list[str]) -> None:
    if value not in choices:
        problems.append(f"{path}: {value!r} is not one of {', '.join(choices)}")


def _http_url(value: str, path: str, problems: list[str]) -> None:
    # The value is not echoed: a URL may carry credentials.
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(f"{path}: expected an http:// or https:// URL with a host")
        return
    try:
        parts.port
    except ValueError:
        problems.append(f"{path}: the URL's port is not a number in 0-65535")


def _file(value: str | None, path: str, problems: list[str]) -> None:
    if value is not None and not os.path.isfile(value):
        problems.append(f"{path}: no such file: {value}")


def _positive(value, path: str, problems: list[str], zero_ok: bool = False) -> None:
    if value < 0 or (value == 0 and not zero_ok):
        problems.append(f"{path}: must be {'≥' if zero_ok else '>'} 0")


def _name(value: str, path: str, problems: list[str]) -> None:
    if not _NAME_RE.fullmatch(value):
        problems.append(f"{path}: {value!r} is not a valid name "
                        "(letters, digits, '_', '.', '-'; up to 64 characters)")


def _check_database(cfg: DatabaseConfig, path: str, problems: list[str]) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(cfg.url)
        if url.port is not None and not 1 <= url.port <= 65535:
            problems.append(f"{path}.url: port {url.port} is out of range 1-65535")
    except (ArgumentError, ValueError):
        problems.append(f"{path}.url: not a database URL "
                        "(e.g. sqlite:///outbox.db, postgresql+psycopg://user@host/db)")
    else:
        try:
            url.get_dialect().import_dbapi()
        except (NoSuchModuleError, ImportError) as exc:
            problems.append(f"{path}.url: database driver {url.drivername!r} is not available "
                            f"({type(exc).__name__}: {exc})")
    _positive(cfg.batch_max_events, f"{path}.batch_max_events", problems)
    _positive(cfg.batch_max_delay_s, f"{path}.batch_max_delay", problems, zero_ok=True)
    _positive(cfg.queue_max_events, f"{path}.queue_max_events", problems)


def _check_ami(cfg: AmiConfig, path: str, problems: list[str]) -> None:
    _name(cfg.name, f"{path}.name", problems)
    _choice(cfg.transport, ("tcp", "http", "ari"), f"{path}.transport", problems)
    if cfg.transport == "http":
        _check_ajam(cfg, path, problems)
    elif cfg.transport == "ari":
        _check_ari(cfg, path, problems)
    else:
        if not _is_host(cfg.host):
            problems.append(f"{path}.host: {cfg.host!r} is not an IP address or host name")
        if not 1 <= cfg.port <= 65535:
            problems.append(f"{path}.port: {cfg.port} is out of range 1-65535")
        _choice(cfg.auth, ("md5", "plain"), f"{path}.auth", problems)
    if not cfg.username and cfg.transport != "ari":
        problems.append(f"{path}.username: required (the [user] section of manager.conf)")
    if cfg.events not in ("on", "off"):
        for item in (c.strip() for c in cfg.events.split(",")):
            _choice(item, AMI_EVENT_CLASSES, f"{path}.events", problems)
    _file(cfg.ca_file, f"{path}.ca_file", problems)
    _positive(cfg.ping_interval_s, f"{path}.ping_interval", problems)
    _positive(cfg.ping_timeout_s, f"{path}.ping_timeout", problems)
    _positive(cfg.connect_timeout_s, f"{path}.connect_timeout", problems)
    _positive(cfg.reconnect_base_s, f"{path}.reconnect_base", problems)
    if cfg.reconnect_cap_s < cfg.reconnect_base_s:
        problems.append(f"{path}.reconnect_cap: must be ≥ reconnect_base")


def _check_ajam(cfg: AmiConfig, path: str, problems: list[str]) -> None:
    """transport = "http": the manager URL, its auth mode, and a WaitEvent that Asterisk will not cut."""
    if not cfg.url:
        problems.append(f'{path}.url: required with transport = "http" (e.g. "https://pbx:8089/asterisk/")')
    else:
        _http_url(cfg.url, f"{path}.url", problems)
    _choice(cfg.auth, ("cookie", "digest"), f"{path}.auth", problems)
    if cfg.proxy is not None:
        _http_url(cfg.proxy, f"{path}.proxy", problems)
    if cfg.tls:
        problems.append(f'{path}.tls: not used with transport = "http"; write an https:// url')
    _positive(cfg.wait_timeout_s, f"{path}.wait_timeout", problems)
    _positive(cfg.httptimeout_s, f"{path}.httptimeout", problems)
    # main/manager.c action_waitevent: an HTTP session's WaitEvent is cut to
    # sessiontimeout - now - 10 s, so a longer one would return early (and at 0, at once: a busy loop).
    if cfg.wait_timeout_s > cfg.httptimeout_s - 10:
        problems.append(f"{path}.wait_timeout: {cfg.wait_timeout_s:g} s must be ≤ httptimeout - 10 s "
                        f"({cfg.httptimeout_s - 10:g} s): Asterisk ends a WaitEvent 10 s before the "
                        f"session would expire (raise manager.conf httptimeout and this key together)")


def _check_ari(cfg: AmiConfig, path: str, problems: list[str]) -> None:
    """transport = "ari": the ARI base url (http.conf + ari.conf), its user, the Stasis app name."""
    if not cfg.url:
        problems.append(f'{path}.url: required with transport = "ari" (e.g. "http://pbx:8088/ari/")')
    else:
        _http_url(cfg.url, f"{path}.url", problems)
        if not cfg.url.rstrip("/").endswith("/ari"):
            problems.append(f"{path}.url: should end in /ari/ (http.conf prefix + /ari)")
    if not cfg.username:
        problems.append(f"{path}.username: required (the user's [section] in ari.conf)")
    if not cfg.app or not re.fullmatch(r"[A-Za-z0-9_.-]+", cfg.app):
        problems.append(f"{path}.app: {cfg.app!r} must be letters, digits, '_', '.' or '-' (the Stasis app name)")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", cfg.redirect_context):
        problems.append(f"{path}.redirect_context: {cfg.redirect_context!r} must be letters, digits, '_', '.' "
                        "or '-' (a dialplan context name)")
    if cfg.tls:
        problems.append(f'{path}.tls: not used with transport = "ari"; write an https:// url')
    if "{extension}" not in cfg.hint_device:
        problems.append(f'{path}.hint_device: must contain {{extension}} (e.g. "PJSIP/{{extension}}")')


def _check_click_to_call(cfg: ClickToCallConfig, path: str, problems: list[str]) -> None:
    if "{extension}" not in cfg.channel:
        problems.append(f"{path}.channel: must contain {{extension}} (e.g. \"PJSIP/{{extension}}\")")
    if not cfg.context:
        problems.append(f"{path}.context: required")
    _positive(cfg.priority, f"{path}.priority", problems)
    _positive(cfg.timeout_ms, f"{path}.timeout_ms", problems)


def _check_soap(cfg: SoapConfig, path: str, problems: list[str]) -> None:
    _listen(cfg.listen, f"{path}.listen", problems)
    if not cfg.path.startswith("/") or any(c in cfg.path for c in "?# "):
        problems.append(f"{path}.path: must start with '/' and contain no '?', '#' or spaces")
    for i, cidr in enumerate(cfg.allow):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            problems.append(f"{path}.allow[{i}]: {cidr!r} is not an IP network (e.g. 10.0.0.0/8)")
    for user, password in cfg.users.items():
        if not password:
            problems.append(f"{path}.users.{user}: empty password")
    _anonymous(cfg, path, problems)
    for i, pattern in enumerate(cfg.allowed_channels):
        _regex(pattern, f"{path}.allowed_channels[{i}]", problems)
    if (cfg.tls_cert is None) != (cfg.tls_key is None):
        problems.append(f"{path}: tls_cert and tls_key go together")
    _file(cfg.tls_cert, f"{path}.tls_cert", problems)
    _file(cfg.tls_key, f"{path}.tls_key", problems)
    _positive(cfg.max_body_bytes, f"{path}.max_body_bytes", problems)
    _positive(cfg.threads, f"{path}.threads", problems)


def _anonymous(cfg: SoapConfig, path: str, problems: list[str]) -> None:
    """No [soap.users] lets anyone the allow-list admits place calls: fine on loopback only,
    unless the admin says so with allow_anonymous = true."""
    if cfg.users or cfg.allow_anonymous:
        return
    open_to = []
    for cidr in cfg.allow or ("0.0.0.0/0",):
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            continue           # reported above
        if not net.is_loopback:
            open_to.append(str(net))
    if open_to:
        problems.append(f"{path}.users: empty, so anyone in {', '.join(open_to)} could place calls without a "
                        "password; add [soap.users], narrow allow to 127.0.0.1/32, or set "
                        f"{path}.allow_anonymous = true")


def _check_subscriber(cfg: SubscriberConfig, path: str, problems: list[str]) -> None:
    _name(cfg.name, f"{path}.name", problems)
    _http_url(cfg.url, f"{path}.url", problems)
    _choice(cfg.mode, ("raw", "normalized", "both"), f"{path}.mode", problems)
    if cfg.filter is not None:
        _regex(cfg.filter, f"{path}.filter", problems, re.DOTALL)
    for name, value in cfg.headers.items():
        if len(value) >= 2 and value.startswith("/") and value.endswith("/"):
            _regex(value[1:-1], f"{path}.headers.{name}", problems, re.DOTALL)
    if cfg.proxy is not None:
        _http_url(cfg.proxy, f"{path}.proxy", problems)
    if cfg.max_attempts is not None:
        _positive(cfg.max_attempts, f"{path}.max_attempts", problems)
    _positive(cfg.max_age_s, f"{path}.max_age", problems)
    _positive(cfg.retry_base_s, f"{path}.retry_base", problems)
    if cfg.retry_cap_s < cfg.retry_base_s:
        problems.append(f"{path}.retry_cap: must be ≥ retry_base")
    _positive(cfg.connect_timeout_s, f"{path}.connect_timeout", problems)
    _positive(cfg.read_timeout_s, f"{path}.read_timeout", problems)
    _file(cfg.ca_file, f"{path}.ca_file", problems)


def _check_logging(cfg: LoggingConfig, path: str, problems: list[str]) -> None:
    _choice(cfg.level.upper(), LOG_LEVELS, f"{path}.level", problems)
    _choice(cfg.format, ("text", "json"), f"{path}.format", problems)


def _check_metrics(cfg: MetricsConfig, path: str, problems: list[str]) -> None:
    _listen(cfg.listen, f"{path}.listen", problems)


def _check_calls(cfg: CallsConfig, path: str, problems: list[str]) -> None:
    for i, pattern in enumerate(cfg.trunk_channel_patterns):
        _regex(pattern, f"{path}.trunk_channel_patterns[{i}]", problems)
    _positive(cfg.ended_grace_s, f"{path}.ended_grace", problems, zero_ok=True)


def _check_ha(cfg: HaConfig, path: str, problems: list[str]) -> None:
    if cfg.renew_s > cfg.lease_s / 2:
        problems.append(f"{path}.renew: {cfg.renew_s:g} s must be at most half of lease ({cfg.lease_s:g} s), "
                        "or one slow renewal hands the PBX to a standby")
    if len(cfg.node_id) > 255:
        problems.append(f"{path}.node_id: longer than 255 characters")


def _listen(value: str, path: str, problems: list[str]) -> None:
    try:
        parse_listen(value)
    except ValueError as exc:
        problems.append(f"{path}: {exc}")


_ITEM_CHECKS = {
    DatabaseConfig: _check_database, AmiConfig: _check_ami, ClickToCallConfig: _check_click_to_call,
    SoapConfig: _check_soap, SubscriberConfig: _check_subscriber, LoggingConfig: _check_logging,
    MetricsConfig: _check_metrics, CallsConfig: _check_calls, HaConfig: _check_ha,
}


_DAY_S = 86400.0
# Sane ranges: a value outside is a typo or an attack on the process (`batch_max_delay =
# "10000000h"` overflowed a queue timeout and killed the writer thread while /healthz said ok).
# Keys are the TOML names (durations drop their `_s`); bounds are inclusive.
_RANGES: dict[type, dict[str, tuple[float, float]]] = {
    DatabaseConfig: {"batch_max_events": (1, 100_000), "batch_max_delay_s": (0, 10),
                     "queue_max_events": (1, 10_000_000), "queue_max_bytes": (64 * 1024, 16 * 1024 ** 3)},
    AmiConfig: {"ping_interval_s": (0.05, 3600), "ping_timeout_s": (0.05, 600), "connect_timeout_s": (0.05, 300),
                "reconnect_base_s": (0.01, 3600), "reconnect_cap_s": (0.01, _DAY_S)},
    ClickToCallConfig: {"priority": (1, 1_000_000), "timeout_ms": (1, 3_600_000)},
    SoapConfig: {"max_body_bytes": (1024, 64 * 1024 ** 2), "max_header_bytes": (1024, 1024 ** 2),
                 "request_timeout_s": (0.1, 600), "threads": (1, 1024)},
    SubscriberConfig: {"max_age_s": (1, 365 * _DAY_S), "max_attempts": (1, 1_000_000),
                       "retry_base_s": (0.001, _DAY_S), "retry_cap_s": (0.001, 30 * _DAY_S),
                       "connect_timeout_s": (0.05, 300), "read_timeout_s": (0.05, 3600),
                       "batch_max": (1, 1000), "batch_linger_s": (0, 10), "probe_cap_s": (0.05, 3600)},
    CallsConfig: {"ended_grace_s": (0, 7 * _DAY_S)},
    HaConfig: {"lease_s": (0.5, 600), "renew_s": (0.1, 300), "standby_buffer_s": (1, 3600)},
}


def _check_ranges(item, path: str, problems: list[str]) -> None:
    for name, (low, high) in _RANGES.get(type(item), {}).items():
        value = getattr(item, name)
        if value is None or isinstance(value, bool):
            continue
        if not low <= value <= high:      # also refuses NaN
            key = name[:-2] if name.endswith("_s") else name
            unit = " s" if name.endswith("_s") else ""
            problems.append(f"{path}.{key}: {value:g}{unit} is out of range {low:g}-{high:g}{unit}")


def check_item(item, path: str, problems: list[str]) -> None:
    before = len(problems)
    _ITEM_CHECKS[type(item)](item, path, problems)
    if len(problems) == before:   # "must be > 0" already said it; one complaint per key is enough
        _check_ranges(item, path, problems)


def check(config: Config, data: Mapping, problems: list[str]) -> None:
    """Checks across sections; per-table checks already ran while building."""
    if "database" not in data:
        # The default still has to be valid (its driver importable).
        _check_database(config.database, "database", problems)
    if not data.get("ami"):
        problems.append("ami: at least one [[ami]] table is required (one per Asterisk server)")
    _unique(data.get("ami"), "ami", problems)
    _unique(data.get("subscriber"), "subscriber", problems)
    ctc = config.soap.click_to_call if config.soap else None
    if ctc and ctc.server is not None and ctc.server not in {a.name for a in config.ami}:
        problems.append(f"soap.click_to_call.server: {ctc.server!r} names no [[ami]] server")


def warnings(config: Config, data: Mapping) -> list[str]:
    """What is not wrong but probably not meant (Config.warnings; subscribers: bridge.calls.reach)."""
    found = []
    if "database" not in data:
        found.append(f"database: no [database] table: the outbox is {config.database.url} "
                     "(add [database] url = \"sqlite:////var/lib/asterisk-bridge/outbox.db\" "
                     "or a PostgreSQL URL)")
    return found


def _unique(items, section: str, problems: list[str]) -> None:
    if not isinstance(items, list):
        return
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        name = item.get("name") if isinstance(item, Mapping) else None
        if isinstance(name, str) and name in seen:
            problems.append(f"{section}[{i}].name: {name!r} is already used by {section}[{seen[name]}]")
        elif isinstance(name, str):
            seen[name] = i
