"""The supervisor thread of one AMI link: connect → login → ping until the link dies → back off → again.

It drives its client only through SupervisedLink (below), so the loop and its timing can be read
apart from sockets and listeners, and the client keeps its own state private.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Protocol

from bridge.ami.connection import AmiConnection
from bridge.config import AmiConfig
from bridge.errors import AmiAuthError, AmiConnectionError, AmiError

log = logging.getLogger(__name__)

# A Pong may wait behind a backlog of events the reader has not parsed yet (a flood on a busy
# host). While bytes keep arriving the peer is alive, so we wait up to this many ping timeouts
# before calling the link dead; a stalled peer (nothing arrives) is still dead after one.
LAGGING_PING_FACTOR = 6
# The Ping action itself never times out on its own: _await_pong decides when the peer is dead
# (an action deadline would expire during a backpressure pause and look like a dead link).
PING_ACTION_TIMEOUT_S = 24 * 3600.0


class SupervisedLink(Protocol):
    """What the supervisor needs from an AmiClient."""

    name: str
    settings: AmiConfig
    stats: object   # ClientStats: connect_failures, auth_failures, ping_timeouts, last_error

    def stopping(self) -> bool: ...
    def wait_stop(self, timeout_s: float) -> bool: ...
    def reconnect_delay_s(self, failures: int) -> float: ...
    def open_connection(self) -> AmiConnection: ...
    def log_in(self, conn: AmiConnection) -> None: ...
    def went_online(self) -> None: ...
    def went_offline(self, conn: AmiConnection, reason: str) -> None: ...
    def ping(self, conn: AmiConnection, timeout_s: float) -> Future: ...


class Supervisor(threading.Thread):
    """Connect → login → filters → CoreSettings → notify → ping until the link dies → back off → again."""

    def __init__(self, link: SupervisedLink) -> None:
        super().__init__(name=f"ami-supervisor-{link.name}", daemon=True)
        self.link = link

    def run(self) -> None:
        link, failures = self.link, 0
        while not link.stopping():
            try:
                conn = link.open_connection()
                try:
                    link.log_in(conn)
                except BaseException:
                    conn.close("login failed")
                    raise
            except AmiAuthError as exc:
                link.stats.auth_failures += 1
                self._failed(exc, logging.ERROR)
            except (AmiError, OSError) as exc:
                self._failed(exc, logging.WARNING)
            except Exception as exc:  # thread top level: log, back off, go on
                log.exception("%s: unexpected error while connecting", link.name)
                self._failed(exc, logging.ERROR)
            else:
                failures = 0
                self._online(conn)
                continue
            failures += 1
            link.wait_stop(link.reconnect_delay_s(failures))

    def _failed(self, exc: BaseException, level: int) -> None:
        link, cfg = self.link, self.link.settings
        link.stats.connect_failures += 1
        link.stats.last_error = str(exc)
        log.log(level, "%s: AMI %s:%d: %s; retrying with backoff", link.name, cfg.host, cfg.port, exc)

    def _online(self, conn: AmiConnection) -> None:
        link = self.link
        if link.stopping():
            conn.close("client stopped")
            return
        link.went_online()
        link.went_offline(conn, self._keepalive(conn))

    def _keepalive(self, conn: AmiConnection) -> str:
        """Ping every ping_interval_s; a peer silent for ping_timeout_s after a Ping is stalled: dead."""
        link = self.link
        while not conn.closed.wait(link.settings.ping_interval_s):
            if link.stopping():
                return "client stopped"
            try:
                self._await_pong(conn)
            except AmiConnectionError as exc:
                if conn.closed.is_set():
                    break
                link.stats.ping_timeouts += 1
                return f"ping timeout: {exc.message}"
            except AmiError as exc:
                log.warning("%s: Ping answered with an error: %s", link.name, exc.message)
        return "client stopped" if link.stopping() else (conn.close_reason or "link lost")

    def _await_pong(self, conn: AmiConnection) -> None:
        """Ping once; AmiConnectionError when the peer is stalled (silent) or far too slow.

        Time the reader spends paused on our own backpressure (a full intake queue) is not
        counted: the Pong may be waiting unread in the socket, and reconnecting would only put
        the events in flight at risk. The keepalive, not the action timeout, decides."""
        timeout_s = self.link.settings.ping_timeout_s
        sent_at = time.monotonic()
        hard_deadline = sent_at + timeout_s * LAGGING_PING_FACTOR
        future = self.link.ping(conn, PING_ACTION_TIMEOUT_S)
        while True:
            try:
                future.result(timeout_s)
                return
            except FutureTimeout:
                now = time.monotonic()
                if conn.paused(now, timeout_s):
                    hard_deadline = now + timeout_s * LAGGING_PING_FACTOR   # our pause, not theirs
                    log.debug("%s: Pong unread while the intake queue is full; not counted", self.link.name)
                    continue
                silent_s = now - conn.last_alive()
                if silent_s >= timeout_s or now >= hard_deadline:
                    raise AmiConnectionError(f"no answer to Ping within {now - sent_at:.1f} s "
                                             f"(last bytes {silent_s:.1f} s ago)") from None
                log.debug("%s: Pong late but events still arriving; waiting on", self.link.name)
