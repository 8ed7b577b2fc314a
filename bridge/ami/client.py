"""The AMI client: connect (TCP/TLS), log in, keep the link alive, reconnect, hand events to listeners."""

from __future__ import annotations

import itertools
import logging
import queue
import random
import secrets
import socket
import ssl
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

from bridge.ami import auth, names
from bridge.ami.connection import ActionResult, AmiConnection
from bridge.ami.actions import Action
from bridge.ami.message import Banner, Message
from bridge.ami.protocol import DEFAULT_MAX_LINE, DEFAULT_MAX_MESSAGE, AmiParser
from bridge.ami.supervisor import Supervisor
from bridge.backoff import Backoff
from bridge.config import AmiConfig
from bridge.errors import AmiAuthError, AmiConnectionError, BridgeError

log = logging.getLogger(__name__)

__all__ = ["ActionResult", "AmiClient", "AmiListener", "ClientStats"]

LOGOFF_TIMEOUT_S = 1.0


class AmiListener(Protocol):
    """Callbacks run on the client's threads; on_event and on_disconnected must not block."""

    def on_event(self, server: str, message: Message) -> None: ...
    def on_connected(self, server: str, banner: Banner) -> None: ...
    def on_disconnected(self, server: str, reason: str) -> None: ...


@dataclass
class ClientStats:
    """Counters since the client was built (read them, don't write them)."""

    connects: int = 0          # successful logins
    reconnects: int = 0        # successful logins after the first
    connect_failures: int = 0  # TCP/TLS/banner/login attempts that failed
    auth_failures: int = 0
    disconnects: int = 0
    ping_timeouts: int = 0
    messages: int = 0          # every message parsed, all connections
    events: int = 0            # events handed to listeners
    dropped: int = 0           # messages the parser discarded (max_line / max_message)
    unmatched: int = 0         # responses with no pending action
    actions_sent: int = 0
    listener_errors: int = 0
    last_error: str | None = field(default=None)


class AmiClient:
    """One Asterisk server: a supervisor thread (login, ping, reconnect) and a reader per connection."""

    def __init__(self, settings: AmiConfig, *, filters: Sequence[str] = (),
                 max_line: int = DEFAULT_MAX_LINE, max_message: int = DEFAULT_MAX_MESSAGE,
                 ssl_context: ssl.SSLContext | None = None, rng: random.Random | None = None) -> None:
        if settings.auth not in auth_modes():
            raise AmiAuthError(f"unknown auth mode {settings.auth!r}")
        self.settings = settings
        self.name, self.host, self.port, self.username = settings.name, settings.host, settings.port, settings.username
        self.auth, self.tls, self.ca_file, self.events = settings.auth, settings.tls, settings.ca_file, settings.events
        self._filters = tuple(filters)
        for line in self._filters:
            Action.build(names.FILTER, Filter=line)  # refuse CR/LF in a filter now, not at login
        self.reconnect = Backoff(settings.reconnect_base_s, settings.reconnect_cap_s, jitter=True)
        self.max_line, self.max_message = max_line, max_message
        self._ssl_context = ssl_context
        self._rng = rng or random.Random()
        self._listeners: list[AmiListener] = []
        self._ids = itertools.count(1)
        self._id_prefix = f"{settings.name}-{secrets.token_hex(3)}"
        self._conn: AmiConnection | None = None
        self._conn_lock = threading.Lock()
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._supervisor: Supervisor | None = None
        self._notifier = _Notifier(settings.name)
        self.banner: Banner | None = None
        self.asterisk_version: str | None = None
        self.stats = ClientStats()

    def __repr__(self) -> str:  # no secret
        return f"AmiClient({self.name!r}, {self.host}:{self.port}, user={self.username!r}, auth={self.auth})"

    @classmethod
    def from_config(cls, cfg: AmiConfig, filters: Sequence[str] = ()) -> "AmiClient":
        return cls(cfg, filters=filters)

    # --- public API ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def ami_version(self) -> str | None:
        return self.banner.version_text if self.banner else None

    @property
    def filters(self) -> tuple[str, ...]:
        return self._filters

    def add_listener(self, listener: AmiListener) -> None:
        self._listeners.append(listener)

    def set_filters(self, filters: Sequence[str]) -> None:
        """Replace the `Filter` lines; they are sent after every login (next login for a live link)."""
        for line in filters:
            Action.build(names.FILTER, Filter=line)
        self._filters = tuple(filters)

    def start(self) -> None:
        if self._supervisor is not None:
            return
        self._stop.clear()
        self._notifier.start()
        self._supervisor = Supervisor(self)
        self._supervisor.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None and self.connected:
            try:  # polite goodbye; Asterisk logs an unclean disconnect otherwise
                conn.send(self._with_id(Action.build(names.LOGOFF)), LOGOFF_TIMEOUT_S).result(LOGOFF_TIMEOUT_S)
            except (BridgeError, Exception):
                pass
        if conn is not None:
            conn.close("client stopped")
        if self._supervisor is not None:
            self._supervisor.join(timeout_s)
            self._supervisor = None
        self._notifier.stop(timeout_s)
        self._notifier = _Notifier(self.name)  # threads are single-use: ready for another start()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def send_action(self, action: Action, timeout_s: float = 10.0) -> "Future[ActionResult]":
        """Send `action` with a fresh ActionID (a caller-set one is kept); the Future fails with
        AmiActionError on `Response: Error` and AmiConnectionError when the link is down or drops."""
        conn = self._conn
        if conn is None or not self.connected:
            future: Future = Future()
            future.set_exception(AmiConnectionError(f"{self.name}: not connected to {self.host}:{self.port}"))
            return future
        return self._send(conn, action, timeout_s)

    def next_action_id(self) -> str:
        return f"{self._id_prefix}-{next(self._ids)}"

    # --- the link the Supervisor drives (bridge.ami.supervisor.SupervisedLink) ----------------

    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait_stop(self, timeout_s: float) -> bool:
        return self._stop.wait(timeout_s)

    def reconnect_delay_s(self, failures: int) -> float:
        return self.reconnect.delay_s(failures, self._rng)

    def open_connection(self) -> AmiConnection:
        """TCP (+TLS) connect and read the banner; the connection is registered so stop() can close it."""
        cfg = self.settings
        sock = socket.create_connection((cfg.host, cfg.port), timeout=cfg.connect_timeout_s)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if cfg.tls:
                context = self._ssl_context or ssl.create_default_context(cafile=cfg.ca_file)
                sock = context.wrap_socket(sock, server_hostname=cfg.host)  # handshake, with timeout
        except BaseException:
            sock.close()
            raise
        parser = AmiParser(self.max_line, self.max_message)
        conn = AmiConnection(sock, cfg.name, parser, self._dispatch, self._on_banner, self.stats)
        with self._conn_lock:
            self._conn = conn  # so stop() can close a link that is still logging in
        conn.start()
        if not conn.banner_ready.wait(cfg.connect_timeout_s):
            conn.close("no banner")
            raise AmiConnectionError(f"no AMI banner within {cfg.connect_timeout_s:g} s")
        return conn

    def log_in(self, conn: AmiConnection) -> None:
        """Login, the session's Filter lines, then the Asterisk version (CoreSettings)."""
        cfg = self.settings
        send = lambda action: self._send(conn, action, cfg.connect_timeout_s)  # noqa: E731
        timeout = cfg.connect_timeout_s + 1.0
        auth.login(send, cfg.username, cfg.secret, auth=cfg.auth, events=cfg.events, timeout_s=timeout)
        auth.apply_filters(send, self._filters, timeout)
        self.asterisk_version = auth.asterisk_version(send, timeout)

    def went_online(self) -> None:
        self.stats.connects += 1
        self.stats.reconnects += self.stats.connects > 1
        self._connected.set()
        log.info("%s: AMI connected to %s:%d (AMI %s, Asterisk %s)", self.name, self.host, self.port,
                 self.ami_version, self.asterisk_version or "unknown")
        self._notify("on_connected", self.banner)

    def went_offline(self, conn: AmiConnection, reason: str) -> None:
        """The link is dead (`reason`): close it, wait for its reader, tell the listeners."""
        self._connected.clear()
        conn.close(reason)
        conn.join(self.settings.connect_timeout_s)
        self.stats.disconnects += 1
        stopping = self._stop.is_set()
        self.stats.last_error = None if stopping else reason
        log.log(logging.INFO if stopping else logging.WARNING,
                "%s: AMI disconnected from %s:%d: %s", self.name, self.host, self.port, reason)
        self._notify("on_disconnected", reason)

    def ping(self, conn: AmiConnection, timeout_s: float) -> Future:
        return self._send(conn, Action.build(names.PING), timeout_s)

    # --- internals ----------------------------------------------------------------------------

    def _on_banner(self, banner: Banner) -> None:
        self.banner = banner

    def _with_id(self, action: Action) -> Action:
        return action if action.action_id is not None else action.with_action_id(self.next_action_id())

    def _send(self, conn: AmiConnection, action: Action, timeout_s: float) -> Future:
        self.stats.actions_sent += 1
        return conn.send(self._with_id(action), timeout_s)

    def _dispatch(self, message: Message) -> None:
        self.stats.events += 1
        for listener in self._listeners:
            try:
                listener.on_event(self.name, message)
            except Exception:  # a listener bug must never kill the reader
                self.stats.listener_errors += 1
                log.exception("%s: listener %r failed on %s", self.name, listener, message.event)

    def _notify(self, method: str, arg: object) -> None:
        for listener in list(self._listeners):
            callback = getattr(listener, method, None)
            if callback is not None:
                self._notifier.submit(lambda cb=callback: cb(self.name, arg))


def auth_modes() -> tuple[str, ...]:
    return auth.AUTH_MODES


class _Notifier(threading.Thread):
    """Runs on_connected/on_disconnected in order, off the reader thread (on_connected may block)."""

    def __init__(self, server: str) -> None:
        super().__init__(name=f"ami-notify-{server}", daemon=True)
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()

    def submit(self, call: Callable[[], None]) -> None:
        self._queue.put(call)

    def start(self) -> None:
        if not self.is_alive() and self.ident is None:
            super().start()

    def run(self) -> None:
        while (call := self._queue.get()) is not None:
            try:
                call()
            except Exception:
                log.exception("AMI listener notification failed")

    def stop(self, timeout_s: float) -> None:
        if self.ident is not None:
            self._queue.put(None)
            self.join(timeout_s)
