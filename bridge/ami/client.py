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
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

from bridge.ami import auth, names
from bridge.ami.connection import ActionResult, AmiConnection
from bridge.ami.protocol import DEFAULT_MAX_LINE, DEFAULT_MAX_MESSAGE, Action, AmiParser, Banner, Message
from bridge.config import AmiConfig
from bridge.errors import AmiAuthError, AmiConnectionError, AmiError, BridgeError

log = logging.getLogger(__name__)

__all__ = ["ActionResult", "AmiClient", "AmiListener", "ClientStats", "backoff_delay"]

LOGOFF_TIMEOUT_S = 1.0
# A Pong may wait behind a backlog of events the reader has not parsed yet (a flood on a busy
# host). While bytes keep arriving the peer is alive, so we wait up to this many ping timeouts
# before calling the link dead; a stalled peer (nothing arrives) is still dead after one.
LAGGING_PING_FACTOR = 6
# The Ping action itself never times out on its own: _await_pong decides when the peer is dead
# (an action deadline would expire during a backpressure pause and look like a dead link).
PING_ACTION_TIMEOUT_S = 24 * 3600.0


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


def backoff_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Full jitter: uniform(0, min(cap, base * 2**attempt)); base=0.5, cap=30: ≤0.5, ≤1, ≤2 … ≤30."""
    return rng.uniform(0.0, min(cap_s, base_s * (2 ** min(attempt, 32))))


class AmiClient:
    """One Asterisk server: a supervisor thread (login, ping, reconnect) and a reader per connection."""

    def __init__(self, name: str, host: str, port: int, username: str, secret: str, *, auth: str = "md5",
                 tls: bool = False, ca_file: str | None = None, events: str = "on",
                 filters: Sequence[str] = (), ping_interval_s: float = 10.0, ping_timeout_s: float = 5.0,
                 connect_timeout_s: float = 5.0, reconnect_base_s: float = 0.5, reconnect_cap_s: float = 30.0,
                 max_line: int = DEFAULT_MAX_LINE, max_message: int = DEFAULT_MAX_MESSAGE,
                 ssl_context: ssl.SSLContext | None = None, rng: random.Random | None = None) -> None:
        if auth not in auth_modes():
            raise AmiAuthError(f"unknown auth mode {auth!r}")
        self.name, self.host, self.port, self.username = name, host, port, username
        self._secret = secret
        self.auth, self.tls, self.ca_file, self.events = auth, tls, ca_file, events
        self._filters = tuple(filters)
        for line in self._filters:
            Action.build(names.FILTER, Filter=line)  # refuse CR/LF in a filter now, not at login
        self.ping_interval_s, self.ping_timeout_s = ping_interval_s, ping_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.reconnect_base_s, self.reconnect_cap_s = reconnect_base_s, reconnect_cap_s
        self.max_line, self.max_message = max_line, max_message
        self._ssl_context = ssl_context
        self._rng = rng or random.Random()
        self._listeners: list[AmiListener] = []
        self._ids = itertools.count(1)
        self._id_prefix = f"{name}-{secrets.token_hex(3)}"
        self._conn: AmiConnection | None = None
        self._conn_lock = threading.Lock()
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._supervisor: _Supervisor | None = None
        self._notifier = _Notifier(name)
        self.banner: Banner | None = None
        self.asterisk_version: str | None = None
        self.stats = ClientStats()

    def __repr__(self) -> str:  # no secret
        return f"AmiClient({self.name!r}, {self.host}:{self.port}, user={self.username!r}, auth={self.auth})"

    @classmethod
    def from_config(cls, cfg: AmiConfig, filters: Sequence[str] = ()) -> "AmiClient":
        return cls(cfg.name, cfg.host, cfg.port, cfg.username, cfg.secret, auth=cfg.auth, tls=cfg.tls,
                   ca_file=cfg.ca_file, events=cfg.events, filters=filters, ping_interval_s=cfg.ping_interval_s,
                   ping_timeout_s=cfg.ping_timeout_s, connect_timeout_s=cfg.connect_timeout_s,
                   reconnect_base_s=cfg.reconnect_base_s, reconnect_cap_s=cfg.reconnect_cap_s)

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
        self._supervisor = _Supervisor(self)
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

    # --- internals ----------------------------------------------------------------------------

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


class _Supervisor(threading.Thread):
    """Connect → login → filters → CoreSettings → notify → ping until the link dies → back off → again."""

    def __init__(self, client: AmiClient) -> None:
        super().__init__(name=f"ami-supervisor-{client.name}", daemon=True)
        self.client = client

    def run(self) -> None:
        client, attempt = self.client, 0
        while not client._stop.is_set():
            try:
                conn = self._connect()
                try:
                    self._login(conn)
                except BaseException:
                    conn.close("login failed")
                    raise
            except AmiAuthError as exc:
                client.stats.auth_failures += 1
                self._failed(exc, logging.ERROR)
            except (AmiError, OSError) as exc:
                self._failed(exc, logging.WARNING)
            except Exception as exc:  # thread top level: log, back off, go on
                log.exception("%s: unexpected error while connecting", client.name)
                self._failed(exc, logging.ERROR)
            else:
                attempt = 0
                self._online(conn)
                continue
            delay = backoff_delay(attempt, client.reconnect_base_s, client.reconnect_cap_s, client._rng)
            attempt += 1
            client._stop.wait(delay)

    def _failed(self, exc: BaseException, level: int) -> None:
        client = self.client
        client.stats.connect_failures += 1
        client.stats.last_error = str(exc)
        log.log(level, "%s: AMI %s:%d: %s; retrying with backoff", client.name, client.host, client.port, exc)

    def _connect(self) -> AmiConnection:
        client = self.client
        sock = socket.create_connection((client.host, client.port), timeout=client.connect_timeout_s)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if client.tls:
                context = client._ssl_context or ssl.create_default_context(cafile=client.ca_file)
                sock = context.wrap_socket(sock, server_hostname=client.host)  # handshake, with timeout
        except BaseException:
            sock.close()
            raise
        parser = AmiParser(client.max_line, client.max_message)
        conn = AmiConnection(sock, client.name, parser, client._dispatch, self._on_banner, client.stats)
        with client._conn_lock:
            client._conn = conn  # so stop() can close a link that is still logging in
        conn.start()
        if not conn.banner_ready.wait(client.connect_timeout_s):
            conn.close("no banner")
            raise AmiConnectionError(f"no AMI banner within {client.connect_timeout_s:g} s")
        return conn

    def _on_banner(self, banner: Banner) -> None:
        self.client.banner = banner

    def _login(self, conn: AmiConnection) -> None:
        client = self.client
        send = lambda action: client._send(conn, action, client.connect_timeout_s)  # noqa: E731
        timeout = client.connect_timeout_s + 1.0
        auth.login(send, client.username, client._secret, auth=client.auth, events=client.events,
                   timeout_s=timeout)
        auth.apply_filters(send, client._filters, timeout)
        client.asterisk_version = auth.asterisk_version(send, timeout)

    def _online(self, conn: AmiConnection) -> None:
        client = self.client
        if client._stop.is_set():
            conn.close("client stopped")
            return
        client.stats.connects += 1
        client.stats.reconnects += client.stats.connects > 1
        client._connected.set()
        log.info("%s: AMI connected to %s:%d (AMI %s, Asterisk %s)", client.name, client.host, client.port,
                 client.ami_version, client.asterisk_version or "unknown")
        client._notify("on_connected", client.banner)
        reason = self._keepalive(conn)
        client._connected.clear()
        conn.close(reason)
        conn.join(client.connect_timeout_s)
        client.stats.disconnects += 1
        client.stats.last_error = None if client._stop.is_set() else reason
        log.log(logging.INFO if client._stop.is_set() else logging.WARNING,
                "%s: AMI disconnected from %s:%d: %s", client.name, client.host, client.port, reason)
        client._notify("on_disconnected", reason)

    def _keepalive(self, conn: AmiConnection) -> str:
        """Ping every ping_interval_s; a peer silent for ping_timeout_s after a Ping is stalled: dead."""
        client = self.client
        while not conn.closed.wait(client.ping_interval_s):
            if client._stop.is_set():
                return "client stopped"
            try:
                self._await_pong(conn)
            except AmiConnectionError as exc:
                if conn.closed.is_set():
                    break
                client.stats.ping_timeouts += 1
                return f"ping timeout: {exc.message}"
            except AmiError as exc:
                log.warning("%s: Ping answered with an error: %s", client.name, exc.message)
        return "client stopped" if client._stop.is_set() else (conn.close_reason or "link lost")

    def _await_pong(self, conn: AmiConnection) -> None:
        """Ping once; AmiConnectionError when the peer is stalled (silent) or far too slow.

        Time the reader spends paused on our own backpressure (a full intake queue) is not
        counted: the Pong may be waiting unread in the socket, and reconnecting would only put
        the events in flight at risk. The keepalive, not the action timeout, decides."""
        timeout_s = self.client.ping_timeout_s
        sent_at = time.monotonic()
        hard_deadline = sent_at + timeout_s * LAGGING_PING_FACTOR
        future = self.client._send(conn, Action.build(names.PING), PING_ACTION_TIMEOUT_S)
        while True:
            try:
                future.result(timeout_s)
                return
            except FutureTimeout:
                now = time.monotonic()
                if conn.paused(now, timeout_s):
                    hard_deadline = now + timeout_s * LAGGING_PING_FACTOR   # our pause, not theirs
                    log.debug("%s: Pong unread while the intake queue is full; not counted", self.client.name)
                    continue
                silent_s = now - conn.last_alive()
                if silent_s >= timeout_s or now >= hard_deadline:
                    raise AmiConnectionError(f"no answer to Ping within {now - sent_at:.1f} s "
                                             f"(last bytes {silent_s:.1f} s ago)") from None
                log.debug("%s: Pong late but events still arriving; waiting on", self.client.name)
