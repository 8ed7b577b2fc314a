"""The AMI client: connect (TCP/TLS), log in, keep the link alive, reconnect, hand events to listeners."""

from __future__ import annotations

import logging
import random
import socket
import ssl
import threading
from concurrent.futures import Future
from typing import Sequence

from bridge.ami import auth, names
from bridge.ami.connection import ActionResult, AmiConnection
from bridge.ami.actions import Action
from bridge.ami.face import AmiListener, ClientFace, ClientStats
from bridge.ami.message import Banner
from bridge.ami.protocol import DEFAULT_MAX_LINE, DEFAULT_MAX_MESSAGE, AmiParser
from bridge.ami.supervisor import Supervisor
from bridge.backoff import Backoff
from bridge.config import AmiConfig
from bridge.errors import AmiAuthError, AmiConnectionError, BridgeError

log = logging.getLogger(__name__)

__all__ = ["ActionResult", "AmiClient", "AmiListener", "ClientStats"]

LOGOFF_TIMEOUT_S = 1.0


class AmiClient(ClientFace):
    """One Asterisk server: a supervisor thread (login, ping, reconnect) and a reader per connection."""

    def __init__(self, settings: AmiConfig, *, filters: Sequence[str] = (),
                 max_line: int = DEFAULT_MAX_LINE, max_message: int = DEFAULT_MAX_MESSAGE,
                 ssl_context: ssl.SSLContext | None = None, rng: random.Random | None = None) -> None:
        if settings.auth not in auth_modes():
            raise AmiAuthError(f"unknown auth mode {settings.auth!r}")
        self._init_face(settings, filters)
        self.host, self.port = settings.host, settings.port
        self.auth, self.tls, self.ca_file, self.events = settings.auth, settings.tls, settings.ca_file, settings.events
        self.reconnect = Backoff(settings.reconnect_base_s, settings.reconnect_cap_s, jitter=True)
        self.max_line, self.max_message = max_line, max_message
        self._ssl_context = ssl_context
        self._rng = rng or random.Random()
        self._conn: AmiConnection | None = None
        self._conn_lock = threading.Lock()
        self._supervisor: Supervisor | None = None

    def __repr__(self) -> str:  # no secret
        return f"AmiClient({self.name!r}, {self.host}:{self.port}, user={self.username!r}, auth={self.auth})"

    # --- public API (the rest is ClientFace's) ---------------------------------------------------

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
        self._stop_notifier(timeout_s)

    def send_action(self, action: Action, timeout_s: float = 10.0) -> "Future[ActionResult]":
        """Send `action` with a fresh ActionID (a caller-set one is kept); the Future fails with
        AmiActionError on `Response: Error` and AmiConnectionError when the link is down or drops."""
        conn = self._conn
        if conn is None or not self.connected:
            future: Future = Future()
            future.set_exception(AmiConnectionError(f"{self.name}: not connected to {self.host}:{self.port}"))
            return future
        return self._send(conn, action, timeout_s)

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

    def _send(self, conn: AmiConnection, action: Action, timeout_s: float) -> Future:
        self.stats.actions_sent += 1
        return conn.send(self._with_id(action), timeout_s)


def auth_modes() -> tuple[str, ...]:
    return auth.AUTH_MODES
