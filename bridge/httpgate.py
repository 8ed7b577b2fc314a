"""RequestGate: a connection reaches a worker thread only once its whole request has arrived.

Theory of operation
-------------------
cheroot hands a connection to a worker thread as soon as its first byte arrives, and the worker
then reads head and body with a timeout *per read*: a client that trickles one header line
every few seconds holds a thread for as long as it likes, so 17 such sockets froze a 16-thread
SOAP service and 5 froze /healthz. This gate replaces cheroot's connection manager (the one
selector thread that accepts and watches idle connections). It reads every connection's bytes
itself, non-blocking, into a small buffer, and hands the connection (with the buffer put back in
front of its reader) to the worker pool only when the head is complete and, when the head
announces a body (Content-Length or chunked), the body too. Until then a slow client costs a
file descriptor and at most `max_header_bytes` + `max_body_bytes` of buffer, never a thread.

Limits, each answered without a worker thread:
- a peer outside the allow-list: 403 at accept, before a byte is read;
- a head larger than `max_header_bytes`: 431; a body larger than `max_body_bytes`: 413;
- a request that is not complete `read_timeout_s` after its first byte (or after the accept):
  408, whatever the pace of its bytes (a deadline, not an idle timeout);
- more than MAX_WAITING connections waiting: the one waiting longest is dropped.
"""

from __future__ import annotations

import logging
import selectors
from collections import deque
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Callable

from cheroot.connections import ConnectionManager

log = logging.getLogger(__name__)

RECV_BYTES = 64 * 1024
MAX_WAITING = 512              # connections with a partial request; beyond, the oldest is dropped
REFUSAL_LOG_INTERVAL_S = 10.0  # one warning per interval for refused peers, not one per socket
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError, InterruptedError)


@dataclass(frozen=True)
class GateLimits:
    max_header_bytes: int = 64 * 1024
    max_body_bytes: int = 256 * 1024
    read_timeout_s: float = 10.0
    allows: Callable[[str], bool] | None = None   # peer address → allowed; None: everyone


def _reply(status: str, text: str) -> bytes:
    body = text.encode() + b"\n"
    return (f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


class _Waiting:
    __slots__ = ("conn", "buf", "started", "head_end", "need", "continued")

    def __init__(self, conn, started: float) -> None:
        self.conn = conn
        self.buf = bytearray()
        self.started = started
        self.head_end: int | None = None   # index just past the blank line, once seen
        self.need: int | None = None       # total bytes (head + body) to wait for; -1: chunked
        self.continued = False             # 100 Continue sent


class RequestGate(ConnectionManager):
    """cheroot ConnectionManager that buffers each request whole before a worker sees it."""

    def __init__(self, server, limits: GateLimits) -> None:
        super().__init__(server)
        self.limits = limits
        self._waiting: dict[int, _Waiting] = {}     # touched by the gate thread only
        self._returned: deque = deque()               # (conn, pipelined bytes) from workers
        self._last_refusal_log = 0.0
        self.refused = 0                   # counters, for tests and logs
        self.timed_out = 0
        self.too_large = 0

    # -- cheroot's hooks ----------------------------------------------------------------------

    def put(self, conn) -> None:
        """A worker finished a request on a keep-alive connection: wait for the next one here.

        Runs on the worker thread; a pipelined next request already read by the worker is handed
        to the gate thread (only that thread touches the waiting table)."""
        conn.last_used = time.time()
        rfile = conn.rfile
        if rfile.has_data():
            leftover = bytes(rfile._read_buf[rfile._read_pos:])
            rfile._read_buf, rfile._read_pos = b"", 0
            self._returned.append((conn, leftover))
        else:
            self._selector.register(conn.socket.fileno(), selectors.EVENT_READ, data=conn)

    def _take_returned(self) -> None:
        while self._returned:
            conn, leftover = self._returned.popleft()
            fd = conn.socket.fileno()
            item = self._waiting[fd] = _Waiting(conn, time.monotonic())
            item.buf += leftover
            self._selector.register(fd, selectors.EVENT_READ, data=conn)
            self._advance(fd, item)

    def _run(self, expiration_interval: float) -> None:
        last_check = time.time()
        while not self._stop_requested:
            try:
                active = list(self._selector.select(timeout=expiration_interval))
            except OSError:
                self._remove_invalid_sockets()
                continue
            self._take_returned()
            for fd, conn in active:
                if conn is self.server:
                    self._accept()
                else:
                    self._on_readable(fd, conn)
            now = time.time()
            if now - last_check > expiration_interval:
                self._expire_waiting(time.monotonic())
                self._expire(threshold=now - self.server.timeout)
                last_check = now

    # -- accepting ----------------------------------------------------------------------------

    def _accept(self) -> None:
        conn = self._from_server_socket(self.server.socket)
        if conn is None:
            return
        allows = self.limits.allows
        if allows is not None and not allows(conn.remote_addr or ""):
            self.refused += 1
            now = time.monotonic()
            if now - self._last_refusal_log >= REFUSAL_LOG_INTERVAL_S:
                self._last_refusal_log = now
                log.warning("%s: connection from %s refused: not in the allow-list (%d refused so far)",
                            self.server.server_name, conn.remote_addr, self.refused)
            self._close(conn, _reply("403 Forbidden", "Forbidden: your network is not allowed"))
            return
        conn.last_used = time.time()
        fd = conn.socket.fileno()
        self._waiting[fd] = _Waiting(conn, time.monotonic())
        self._selector.register(fd, selectors.EVENT_READ, data=conn)
        if len(self._waiting) > MAX_WAITING:
            oldest_fd = min(self._waiting, key=lambda k: self._waiting[k].started)
            self._drop(oldest_fd, None)

    # -- reading ------------------------------------------------------------------------------

    def _on_readable(self, fd: int, conn) -> None:
        item = self._waiting.get(fd)
        if item is None:               # an idle keep-alive connection wakes up
            item = self._waiting[fd] = _Waiting(conn, time.monotonic())
        sock = conn.socket
        try:
            sock.setblocking(False)
            while True:
                try:
                    data = sock.recv(RECV_BYTES)
                except _WOULD_BLOCK:
                    break
                if not data:           # the peer closed before finishing a request
                    self._drop(fd, None)
                    return
                item.buf += data
                conn.last_used = time.time()
                if len(item.buf) > self._hard_cap:
                    break
        except OSError:
            self._drop(fd, None)
            return
        finally:
            if fd in self._waiting or sock.fileno() != -1:
                try:
                    sock.settimeout(self.server.timeout)
                except OSError:
                    pass
        self._advance(fd, item)

    @property
    def _hard_cap(self) -> int:
        # Read at most this much per wake-up; _advance() applies the precise limits. The slack
        # covers chunk framing.
        return self.limits.max_header_bytes + self.limits.max_body_bytes + 64 * 1024

    def _advance(self, fd: int, item: _Waiting) -> None:
        """Hand the connection over when its request is complete; refuse it when too large."""
        buf = item.buf
        if item.head_end is None:
            start = len(buf) - len(buf.lstrip(b"\r\n"))   # stray CRLFs between requests
            end = buf.find(b"\r\n\r\n", start)
            if end < 0:
                if len(buf) > self.limits.max_header_bytes:
                    self.too_large += 1
                    self._drop(fd, _reply("431 Request Header Fields Too Large",
                                          f"the request head is larger than {self.limits.max_header_bytes} bytes"))
                return
            if end + 4 > self.limits.max_header_bytes:
                self.too_large += 1
                self._drop(fd, _reply("431 Request Header Fields Too Large",
                                      f"the request head is larger than {self.limits.max_header_bytes} bytes"))
                return
            item.head_end = end + 4
            item.need = self._body_need(fd, item, bytes(buf[start:end]))
            if item.need is None:
                return                 # refused inside _body_need
        if item.need == -1:
            if not _chunked_complete(buf, item.head_end):
                if len(buf) - item.head_end > self.limits.max_body_bytes + 64 * 1024:
                    self._too_large_body(fd)
                return
        elif len(buf) < item.need:
            return
        self._handoff(fd, item)

    def _body_need(self, fd: int, item: _Waiting, head: bytes) -> int | None:
        length, chunked, expect = None, False, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    return item.head_end   # let cheroot answer the malformed head
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"expect" and value.strip().lower() == b"100-continue":
                expect = True
        if chunked:
            need = -1
        elif length is None or length <= 0:
            return item.head_end
        elif length > self.limits.max_body_bytes:
            return item.head_end       # the worker answers 413 at once, reading nothing
        else:
            need = item.head_end + length
        if expect and not item.continued:
            # The client waits for this before sending its body; cheroot would send it from the
            # worker, but the body must arrive here first. A second 100 from cheroot is legal.
            item.continued = True
            try:
                item.conn.socket.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            except OSError:
                pass
        return need

    def _too_large_body(self, fd: int) -> None:
        self.too_large += 1
        self._drop(fd, _reply("413 Payload Too Large",
                              f"the request body is larger than {self.limits.max_body_bytes} bytes"))

    def _handoff(self, fd: int, item: _Waiting) -> None:
        del self._waiting[fd]
        self._selector.unregister(fd)
        rfile = item.conn.rfile
        # cheroot's reader is a _pyio.BufferedReader (cheroot.makefile imports _pyio on purpose);
        # putting the bytes we read in front of its buffer is what its own has_data() inspects.
        rfile._read_buf = bytes(item.buf) + bytes(rfile._read_buf[rfile._read_pos:])
        rfile._read_pos = 0
        self.server.process_conn(item.conn)

    # -- giving up ----------------------------------------------------------------------------

    def _expire_waiting(self, now: float) -> None:
        deadline = now - self.limits.read_timeout_s
        late = [fd for fd, item in self._waiting.items() if item.started < deadline]
        for fd in late:
            self.timed_out += 1
            item = self._waiting[fd]
            self._drop(fd, _reply("408 Request Timeout",
                                  f"the request did not arrive within {self.limits.read_timeout_s:g} s")
                       if item.buf else None)

    def _drop(self, fd: int, answer: bytes | None) -> None:
        item = self._waiting.pop(fd, None)
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError):
            pass
        if item is not None:
            self._close(item.conn, answer)

    @staticmethod
    def _close(conn, answer: bytes | None) -> None:
        sock = conn.socket
        if answer is not None:
            try:
                sock.setblocking(False)
                sock.send(answer)      # best effort: a peer that does not read gets nothing
            except (OSError, ValueError):
                pass
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except (OSError, ValueError):
            pass
        try:
            conn.close()
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        for fd in list(self._waiting):
            self._drop(fd, None)
        super().close()


def _chunked_complete(buf: bytearray, pos: int) -> bool:
    """True when a complete chunked body (last chunk and trailers) follows `pos` in `buf`."""
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return False
        size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return True                # malformed: let cheroot answer 400
        if size < 0:
            return True
        if size == 0:
            # Trailers (rare) end with an empty line, like the head.
            if buf[eol + 2:eol + 4] == b"\r\n":
                return True
            return buf.find(b"\r\n\r\n", eol) >= 0
        pos = eol + 2 + size + 2
        if pos > len(buf):
            return False
