"""The simulator's HTTP manager (AJAM): rawman with the mansession_id cookie, arawman with Digest.

Shaped after Asterisk 22 (main/manager.c `generic_http_callback`, `auth_http_callback`,
`action_waitevent`; tests/fixtures/ajam/): every request is one action; a request without a
known cookie gets a new, not-logged-in session (so an expired session answers
`Permission denied`); `WaitEvent` returns at once when events are queued, else when one
arrives or its timeout (capped at httptimeout - 10 s) ends; a second WaitEvent on the same
session releases the first with an empty body; sessions die `httptimeout` seconds after their
last request ends. Actions run through the same `SimSession` handlers as TCP, so both sides
play the same scenarios and keep the same channel table.

`sim.stall()` makes the HTTP side a path that swallows requests: accepted, never answered,
never executed (a pending WaitEvent gives nothing back either), while the sessions live on and
keep queuing events.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import random
import re
import socket
import threading
import time
from collections import deque
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from bridge.ami.message import Message
from bridge.testing.sim_session import SimSession

if TYPE_CHECKING:
    from bridge.testing.simulator import AmiSimulator

log = logging.getLogger(__name__)

PURGE_INTERVAL_S = 0.5
UNAUTHENTICATED_TIMEOUT_S = 5.0    # Asterisk keeps a session that never logged in this long
WAIT_SLICE_S = 0.2                 # how often a waiting WaitEvent checks stop/stall/kick
REALM = "asterisk"
_COOKIE = re.compile(r'mansession_id="?([0-9A-Fa-f]{1,16})"?')
_DIGEST_PAIR = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]*))')


class _NoSocket:
    """An HTTP session has no stream of its own: what SimSession writes goes to queues instead."""

    def settimeout(self, _timeout: float) -> None: ...
    def sendall(self, _data: bytes) -> None: ...
    def shutdown(self, _how: int) -> None: ...
    def close(self) -> None: ...


class HttpSession(SimSession):
    """One manager session reached over HTTP: events queue up until a WaitEvent takes them."""

    def __init__(self, front: "AjamFront", session_id: int, httptimeout_s: float) -> None:
        super().__init__(front.sim, _NoSocket(), session_id)  # type: ignore[arg-type]
        self.front = front
        self.session_id = session_id
        self.httptimeout_s = httptimeout_s
        self.nonce_count = 0                   # Digest: the last nc seen
        self.old_nonce: int | None = None      # Digest: the nonce before the last rotation
        self.in_use = 0
        self.expires_at = time.monotonic() + UNAUTHENTICATED_TIMEOUT_S
        self._events: deque[bytes] = deque()
        self._cond = threading.Condition()
        self._waiter: object | None = None
        self._answer = threading.local()

    @property
    def waiting(self) -> bool:
        """A WaitEvent is pending on this session (tests wait for this instead of sleeping)."""
        with self._cond:
            return self._waiter is not None

    # SimSession writes: events (emit) are queued, action answers go to the current HTTP body.
    def send(self, data: bytes) -> None:
        with self._cond:
            if not self.closed.is_set():
                self._events.append(data)
                self._cond.notify_all()

    def answer(self, data: bytes) -> None:
        self._answer.body.append(data)

    def run(self) -> None:  # no reader thread: requests arrive through AjamFront
        raise RuntimeError("an HTTP session has no reader thread")

    def join(self, timeout: float | None = None) -> None:  # nothing to wait for (never started)
        return None

    def _close_locked(self, reason: str) -> None:
        super()._close_locked(reason)
        with self._cond:
            self._cond.notify_all()
        self.sim.forget(self)
        self.front.forget(self)

    def perform(self, msg: Message) -> bytes:
        """Run one action as Asterisk does for an HTTP request; returns the body."""
        self._answer.body = []
        with self._cond:
            self.in_use += 1
        try:
            self.sim.record_action(msg)
            self.handle(msg)
            return b"".join(self._answer.body)
        finally:
            with self._cond:
                self.in_use -= 1
                lifetime = self.httptimeout_s if self.username is not None else UNAUTHENTICATED_TIMEOUT_S
                self.expires_at = time.monotonic() + lifetime

    def _action_waitevent(self, msg: Message) -> None:
        try:
            timeout = int(msg.get("Timeout") or "-1")
        except ValueError:
            timeout = -1
        cap = max(0.0, self.httptimeout_s - 10)  # action_waitevent: sessiontimeout - now - 10
        limit = cap if timeout < 0 or timeout > cap else timeout
        token = object()
        deadline = time.monotonic() + limit
        wedged = False
        with self._cond:
            self._waiter = token
            self._cond.notify_all()  # a previous WaitEvent on this session is abandoned
            while self._waiter is token and not self.closed.is_set() and not self.front.stopping:
                if self.sim.stalled:  # a wedged server never answers this request
                    wedged = True
                elif self._events or time.monotonic() >= deadline:
                    break
                self._cond.wait(WAIT_SLICE_S)
            if self._waiter is not token or wedged:
                if self._waiter is token:
                    self._waiter = None
                return  # kicked: Asterisk answers nothing at all ("Abandoning event request")
            self._waiter = None
            events, self._events = list(self._events), deque()
        aid = f"ActionID: {msg.action_id}\r\n" if msg.action_id is not None else ""
        self.answer(f"Response: Success\r\n{aid}Message: Waiting for Event completed.\r\n\r\n".encode())
        self.answer(b"".join(events))
        self.answer(f"Event: WaitEventComplete\r\n{aid}\r\n".encode())

    def expired(self, now: float) -> bool:
        with self._cond:
            return self.in_use == 0 and now > self.expires_at


class AjamFront:
    """The HTTP side of an AmiSimulator: `<prefix>rawman` (cookie) and `<prefix>arawman` (Digest)."""

    def __init__(self, sim: "AmiSimulator", host: str = "127.0.0.1", port: int = 0, *,
                 prefix: str = "/asterisk/", httptimeout_s: float = 60.0) -> None:
        self.sim, self.host, self.port = sim, host, port
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.httptimeout_s = httptimeout_s
        self.stopping = False
        self.requests = 0
        self._sessions: dict[int, HttpSession] = {}
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._rng = random.Random()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.prefix}"

    def start(self) -> "AjamFront":
        front = self

        class Handler(_Handler):
            pass

        Handler.front = front
        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.stopping = False
        self._stop.clear()
        serve = lambda: self._server.serve_forever(poll_interval=0.05)  # noqa: E731  (stop() in 50 ms)
        for target, name in ((serve, "serve"), (self._purge_loop, "purge")):
            thread = threading.Thread(target=target, name=f"ajam-sim-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self.stopping = True
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:  # keep-alive connections outlive the listener: end them, as a restart does
            connections, self._connections = self._connections, set()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for session in self.sessions:
            session.close("simulator stopped")
        for thread in self._threads:
            thread.join(2.0)
        self._threads = []

    @property
    def sessions(self) -> list[HttpSession]:
        with self._lock:
            return list(self._sessions.values())

    def forget(self, session: HttpSession) -> None:
        with self._lock:
            if self._sessions.get(session.session_id) is session:
                del self._sessions[session.session_id]

    def expire_sessions(self) -> int:
        """End every session now, as a restart or httptimeout would; their cookies stop working."""
        sessions = self.sessions
        for session in sessions:
            session.close("expired")
        return len(sessions)

    def new_session(self, session_id: int | None = None) -> HttpSession:
        with self._lock:
            while session_id is None or session_id in self._sessions or session_id == 0:
                session_id = self._rng.getrandbits(32)
            session = HttpSession(self, session_id, self.httptimeout_s)
            self._sessions[session_id] = session
        self.sim.attach(session)
        return session

    def find(self, session_id: int | None) -> HttpSession | None:
        with self._lock:
            return self._sessions.get(session_id) if session_id is not None else None

    def find_by_nonce(self, nonce: int) -> tuple[HttpSession | None, bool]:
        """(session, stale): main/manager.c find_session_by_nonce matches the current nonce, or the
        one before the last rotation (then stale)."""
        with self._lock:
            session = self._sessions.get(nonce)
            if session is not None:
                return session, False
            for session in self._sessions.values():
                if session.old_nonce == nonce:
                    return session, True
        return None, False

    def rotate_nonce(self, session: HttpSession) -> int:
        """Re-key a Digest session under a new nonce (its id); the old one answers stale."""
        with self._lock:
            new = self._rng.getrandbits(32)
            while new in self._sessions or new == 0:
                new = self._rng.getrandbits(32)
            del self._sessions[session.session_id]
            session.old_nonce, session.session_id = session.session_id, new
            session.nonce_count = 0
            self._sessions[new] = session
        return new

    def _purge_loop(self) -> None:
        while not self._stop.wait(PURGE_INTERVAL_S):
            now = time.monotonic()
            for session in self.sessions:
                if session.expired(now):
                    session.close("timed out")

    def a1(self, username: str) -> str | None:
        secret = self.sim.users.get(username)
        if secret is None:
            return None
        return hashlib.md5(f"{username}:{REALM}:{secret}".encode()).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True   # headers and body go out in two writes: no 40 ms Nagle stall
    server_version = "Asterisk/22.10.1"
    sys_version = ""
    front: AjamFront

    def setup(self) -> None:
        super().setup()
        with self.front._lock:
            self.front._connections.add(self.connection)

    def finish(self) -> None:
        with self.front._lock:
            self.front._connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: object) -> None:  # quiet: tests read the log
        log.debug("ajam sim: " + format, *args)

    def do_GET(self) -> None:
        self._serve(urlsplit(self.path).query)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._serve(self.rfile.read(length).decode("utf-8", "replace"))

    def _serve(self, query: str) -> None:
        front = self.front
        front.requests += 1
        if front.sim.stalled:
            # A path that swallows requests (a hung proxy, a black hole): this one never reaches the
            # manager and is never answered; once the stall ends its connection is just dropped.
            while front.sim.stalled and not front.stopping:
                front.sim.resumed.wait(WAIT_SLICE_S)
            self.close_connection = True
            return
        path = urlsplit(self.path).path
        pairs = parse_qsl(query, keep_blank_values=True)
        if path == front.prefix + "rawman":
            self._rawman(pairs)
        elif path == front.prefix + "arawman":
            self._arawman(pairs)
        else:
            self._reply(404, b"<html><title>404 Not Found</title></html>\r\n", "text/html")

    def _rawman(self, pairs: list[tuple[str, str]]) -> None:
        match = _COOKIE.search(self.headers.get("Cookie") or "")
        session = self.front.find(int(match.group(1), 16) if match else None) or self.front.new_session()
        body = session.perform(Message.from_pairs(pairs))
        cookie = f'mansession_id="{session.session_id:08x}"; Version=1; Max-Age={self.front.httptimeout_s:.0f}'
        self._reply(200, body, "text/plain", cookie)

    def _arawman(self, pairs: list[tuple[str, str]]) -> None:
        front = self.front
        fields = _digest_fields(self.headers.get("Authorization") or "")
        a1 = front.a1(fields.get("username", ""))
        if a1 is None or not _digest_ok(fields, a1, self.command):
            self._challenge(None)
            return
        nonce = int(fields.get("nonce", "0"), 16)
        nc = int(fields.get("nc", "0") or "0", 16)
        session, stale = front.find_by_nonce(nonce)
        if session is None:  # Asterisk builds an already-authenticated session for a new nonce
            session = front.new_session(nonce)
            session.username = fields["username"]
        elif stale:  # signed with the nonce before the last rotation: here is the current one
            self._challenge(session.session_id, stale=True)
            return
        elif nc <= session.nonce_count:  # out of order: rotate the nonce, keep the session
            self._challenge(front.rotate_nonce(session), stale=True)
            return
        session.nonce_count = nc
        self._reply(200, session.perform(Message.from_pairs(pairs)), "text/plain")

    def _challenge(self, nonce: int | None, stale: bool = False) -> None:
        nonce = nonce if nonce is not None else random.getrandbits(32)
        value = (f'Digest algorithm=MD5, realm="{REALM}", nonce="{nonce:08x}", qop="auth", '
                 f'opaque="{nonce:08x}"' + (", stale=true" if stale else ""))
        self._reply(401, b"<html><title>401 Unauthorized</title></html>\r\n", "text/html",
                    www_authenticate=value)

    def _reply(self, status: int, body: bytes, content_type: str, cookie: str | None = None,
               www_authenticate: str | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Date", formatdate(usegmt=True))
            self.send_header("Cache-Control", "no-cache, no-store")
            self.send_header("Content-type", content_type)
            if cookie:
                self.send_header("Set-Cookie", cookie)
            if www_authenticate:
                self.send_header("WWW-Authenticate", www_authenticate)
            self.send_header("Pragma", "SuppressEvents")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client went away (its read timeout); nothing to answer


def _digest_fields(header: str) -> dict[str, str]:
    if not header.lower().startswith("digest "):
        return {}
    return {k.lower(): quoted or bare for k, quoted, bare in _DIGEST_PAIR.findall(header[7:])}


def _digest_ok(fields: dict[str, str], a1: str, method: str) -> bool:
    """RFC 2617 with qop=auth, as main/manager.c computes it (A1 = user:realm:secret)."""
    try:
        a2 = hashlib.md5(f"{method}:{fields['uri']}".encode()).hexdigest()
        if fields.get("qop"):
            raw = f"{a1}:{fields['nonce']}:{fields['nc']}:{fields['cnonce']}:auth:{a2}"
        else:
            raw = f"{a1}:{fields['nonce']}:{a2}"
    except KeyError:
        return False
    return hashlib.md5(raw.encode()).hexdigest() == fields.get("response", "").lower()


__all__ = ["AjamFront", "HttpSession"]
