"""The typed, immutable settings. The key names are the public contract (design.md); reading and
checking a TOML file into them is config_load.py (with config_checks.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

# Durations in config are strings like "72h", "10m", "500ms" or plain seconds; the loader
# turns them into float seconds (fields ending in _s).


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = "sqlite:///outbox.db"
    batch_max_events: int = 500        # group commit: flush at N events …
    batch_max_delay_s: float = 0.005   # … or after T seconds, whichever first
    queue_max_events: int = 100_000    # writer queue; full → backpressure (counted), never drop
    queue_max_bytes: int = 64 * 1024 * 1024   # the same queue bounded by the events' size in memory


@dataclass(frozen=True)
class AmiConfig:
    name: str
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = ""
    secret: str = field(default="", repr=False)
    auth: str = ""                     # tcp: md5 | plain (default md5); http: cookie | digest (default cookie)
    tls: bool = False
    ca_file: str | None = None
    events: str = "on"                 # on | off | comma-separated classes
    ping_interval_s: float = 10.0
    ping_timeout_s: float = 5.0
    connect_timeout_s: float = 5.0
    reconnect_base_s: float = 0.5
    reconnect_cap_s: float = 30.0
    # AJAM (transport = "http"): Asterisk's HTTP manager, long-polled with WaitEvent.
    # ARI (transport = "ari"): the events WebSocket and REST (bridge.ari).
    transport: str = "tcp"             # tcp | http | ari
    url: str = ""                      # http: https://pbx:8089/asterisk/ (http.conf prefix); ari: http://pbx:8088/ari/
    verify_tls: bool = True
    proxy: str | None = None
    wait_timeout_s: float = 20.0       # WaitEvent Timeout; Asterisk caps it at httptimeout - 10 s
    httptimeout_s: float = 60.0        # manager.conf httptimeout of that Asterisk (its session lifetime)
    app: str = "asterisk-bridge"       # ari: the Stasis application name the WebSocket subscribes as
    hint_device: str = "PJSIP/{extension}"  # ari: the device GetExtensionState reads (ARI cannot read hints)
    redirect_context: str = "asterisk-bridge-redirect"  # ari: the dialplan context whose `s` runs ChannelRedirect

    def __post_init__(self) -> None:
        if not self.auth:  # the default depends on the transport
            object.__setattr__(self, "auth", "cookie" if self.transport == "http" else "md5")


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
    max_header_bytes: int = 64 * 1024  # request line + headers; larger gets 431
    request_timeout_s: float = 10.0    # the whole request (head and body) must arrive within this
    allow_anonymous: bool = False      # no users and a non-loopback allow-list: refused unless true
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
    # Delivery (bridge.outbox.dispatcher, circuit.py): batch_max > 1 sends PushEvents of up to
    # that many events (one per call: each call's next event waits for the batch's answer),
    # waiting up to batch_linger for a batch to fill; 1 sends PushEvent, one event per request.
    batch_max: int = 1
    batch_linger_s: float = 0.0
    probe_cap_s: float = 30.0          # while the ERP is down, probe it at least this often


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
class HaConfig:
    """High availability on a PostgreSQL outbox (bridge.ha); always on there, these only tune it."""

    node_id: str = ""                  # "" → host name + pid
    lease_s: float = 3.0               # a leader silent this long loses its AMI server to a standby
    renew_s: float = 1.0               # how often the leader renews (≤ lease / 3 keeps two misses safe)
    standby_buffer_s: float = 30.0     # events a standby keeps in memory, written when it takes over


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    ami: tuple[AmiConfig, ...] = ()
    soap: SoapConfig | None = None                 # None: the SOAP server does not start
    subscribers: tuple[SubscriberConfig, ...] = ()
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    metrics: MetricsConfig | None = None           # None: /metrics and /healthz do not start
    calls: CallsConfig = field(default_factory=CallsConfig)
    ha: HaConfig = field(default_factory=HaConfig)
    # Not wrong but probably not meant (a subscriber unlikely to match, no [database]):
    # `config check` and `check` print them, `run` logs them.
    warnings: tuple[str, ...] = field(default=(), compare=False, repr=False)
