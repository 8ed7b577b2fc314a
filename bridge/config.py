"""TOML → validated, immutable settings. The key names are the public contract (design.md)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from typing import Collection, Mapping

# Durations in config are strings like "72h", "10m", "500ms" or plain seconds; the loader
# turns them into float seconds (fields ending in _s).


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = "sqlite:///outbox.db"
    batch_max_events: int = 500        # group commit: flush at N events …
    batch_max_delay_s: float = 0.005   # … or after T seconds, whichever first
    queue_max_events: int = 100_000    # writer queue; full → backpressure (counted), never drop


@dataclass(frozen=True)
class AmiConfig:
    name: str
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = ""
    secret: str = field(default="", repr=False)
    auth: str = "md5"                  # md5 | plain
    tls: bool = False
    ca_file: str | None = None
    events: str = "on"                 # on | off | comma-separated classes
    ping_interval_s: float = 10.0
    ping_timeout_s: float = 5.0
    connect_timeout_s: float = 5.0
    reconnect_base_s: float = 0.5
    reconnect_cap_s: float = 30.0


@dataclass(frozen=True)
class ClickToCallConfig:
    channel: str = "PJSIP/{extension}"
    context: str = "from-internal"
    priority: int = 1
    timeout_ms: int = 30_000
    server: str | None = None          # which [[ami]] places the call; default the first


@dataclass(frozen=True)
class SoapConfig:
    listen: str = "127.0.0.1:8080"
    path: str = "/bridge"              # SOAP 1.1 at path, SOAP 1.2 at path + "12"
    allow: tuple[str, ...] = ("127.0.0.1/32",)
    users: Mapping[str, str] = field(default_factory=dict, repr=False)  # user → password or hash
    click_to_call: ClickToCallConfig = field(default_factory=ClickToCallConfig)
    allowed_contexts: tuple[str, ...] = ()        # empty: any context
    allowed_channels: tuple[str, ...] = ()        # regexes; empty: any channel
    tls_cert: str | None = None
    tls_key: str | None = None
    max_body_bytes: int = 256 * 1024
    threads: int = 16


@dataclass(frozen=True)
class SubscriberConfig:
    name: str
    url: str
    mode: str = "normalized"           # raw | normalized | both
    filter: str | None = None          # ROM-Asterisk-style regex, DOTALL, on the event text
    events: tuple[str, ...] = ()       # event names, case-insensitive; empty: all
    exclude_events: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)  # exact value, or "/regex/"
    enabled: bool = True
    username: str | None = None        # HTTP Basic towards the ERP
    password: str | None = field(default=None, repr=False)
    signing_secret: str | None = field(default=None, repr=False)  # Standard Webhooks HMAC
    max_age_s: float = 72 * 3600.0
    max_attempts: int | None = None
    retry_base_s: float = 1.0
    retry_cap_s: float = 600.0
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    proxy: str | None = None
    verify_tls: bool = True
    ca_file: str | None = None


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    format: str = "text"               # text | json


@dataclass(frozen=True)
class MetricsConfig:
    listen: str = "127.0.0.1:9108"     # /metrics and /healthz


@dataclass(frozen=True)
class CallsConfig:
    """How the call model decides direction (inbound/outbound/internal)."""

    internal_contexts: tuple[str, ...] = ("from-internal",)
    inbound_contexts: tuple[str, ...] = ("from-trunk", "from-pstn", "from-external")
    trunk_channel_patterns: tuple[str, ...] = ()  # regexes matching trunk channel names
    ended_grace_s: float = 60.0


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    ami: tuple[AmiConfig, ...] = ()
    soap: SoapConfig | None = None                 # None: the SOAP server does not start
    subscribers: tuple[SubscriberConfig, ...] = ()
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    metrics: MetricsConfig | None = None           # None: /metrics and /healthz do not start
    calls: CallsConfig = field(default_factory=CallsConfig)
    # Not wrong but probably not meant (a subscriber unlikely to match, no [database]):
    # `config check` and `check` print them, `run` logs them.
    warnings: tuple[str, ...] = field(default=(), compare=False, repr=False)


# --- loading -----------------------------------------------------------------------------------
# The loader lives in config_load.py / config_checks.py, which import these dataclasses; they are
# imported inside the functions below so that importing the settings alone stays cheap and acyclic.
# The TOML key of a field is its name, except float-seconds fields, whose TOML key drops the
# `_s` unit suffix and takes a duration ("72h", "10m", "500ms", or a number of seconds):
# `max_age = "72h"` → SubscriberConfig.max_age_s = 259200.0.

_SECTIONS = {  # TOML top-level key → (Config field, dataclass, is an array of tables)
    "database": ("database", DatabaseConfig, False),
    "ami": ("ami", AmiConfig, True),
    "soap": ("soap", SoapConfig, False),
    "subscriber": ("subscribers", SubscriberConfig, True),
    "logging": ("logging", LoggingConfig, False),
    "metrics": ("metrics", MetricsConfig, False),
    "calls": ("calls", CallsConfig, False),
}


def load_config(path, env: Mapping[str, str] | None = None, *, only: Collection[str] | None = None,
                omit: Collection[str] = ()) -> Config:
    """Read, interpolate and validate a TOML file; ConfigError lists every problem at once.

    `only` keeps just those top-level sections (the others, and the checks across sections, are
    skipped), so `db upgrade` needs the database URL's variables and not AMI_SECRET; `omit`
    drops `section.key`s (the WSDL does not depend on `soap.users`). A relative SQLite path is
    taken relative to the file's directory, never to the working directory.
    """
    from bridge.errors import ConfigError

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    # `from None`: the message already says all the cause would, on a second line.
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", [f"{path}: {exc}"]) from None
    return parse_config(data, source=str(path), env=env, only=only, omit=omit,
                        base_dir=os.path.dirname(os.path.abspath(path)))


def parse_config(data: Mapping, source: str = "<config>", env: Mapping[str, str] | None = None, *,
                 only: Collection[str] | None = None, omit: Collection[str] = (),
                 base_dir: str | None = None) -> Config:
    """Build a Config from already-parsed TOML; ConfigError lists every problem by key path.
    A relative SQLite path is resolved against `base_dir` (default: the working directory)."""
    from bridge import config_load
    from bridge.errors import ConfigError

    problems: list[str] = []
    if only is not None:
        data = {k: v for k, v in data.items() if k in only}
    for dotted in omit:
        section, _, key = dotted.partition(".")
        if isinstance(data.get(section), Mapping) and key in data[section]:
            data = {**data, section: {k: v for k, v in data[section].items() if k != key}}
    data = config_load.interpolate(data, "", os.environ if env is None else env, problems)
    kwargs: dict = {}
    for key, value in data.items():
        if key not in _SECTIONS:
            problems.append(config_load.unknown_key("", key, _SECTIONS))
            continue
        field_name, cls, is_array = _SECTIONS[key]
        if is_array:
            kwargs[field_name] = config_load.build_array(cls, value, key, problems)
        else:
            built = config_load.build(cls, value, key, problems)
            if built is not None:
                kwargs[field_name] = built
    if "database" in kwargs or "database" not in data:
        kwargs["database"] = config_load.resolve_sqlite(kwargs.get("database", DatabaseConfig()),
                                                        base_dir or os.getcwd(), problems)
    config = Config(**kwargs)
    if only is None:
        config_load.check_config(config, data, problems)
        config = replace(config, warnings=tuple(config_load.config_warnings(config, data)))
    # A value whose variable is unset was replaced by "": its follow-up complaints are noise.
    unset = {p.split(": ", 1)[0] for p in problems if ": environment variable " in p}
    problems = [p for p in problems
                if ": environment variable " in p or p.split(": ", 1)[0] not in unset]
    if problems:
        raise ConfigError(f"{source}: invalid configuration:\n  " + "\n  ".join(problems), problems)
    return config
