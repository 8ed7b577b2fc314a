"""One live AMI link: its socket, its reader thread, and ActionID correlation of the answers.

Theory of operation
-------------------
The reader thread owns the socket and does *all* socket I/O with non-blocking calls behind a
selector: it reads, parses, hands messages off, and flushes what `send()` queued. One thread per
socket keeps TLS correct (an OpenSSL connection must not be read and written from two threads at
once) and means a sender never blocks on a slow peer: `send()` only appends bytes to a buffer
and wakes the reader through a socketpair.

Answers are matched to actions by ActionID. A list action (`EventList: start`, or Asterisk 11's
`Message: ... will follow` without EventList) stays pending until its `...Complete` event; the
events in between carry its ActionID and are collected into the `ActionResult`, not dispatched.
Everything else goes to `on_event` inline on this thread, so that callback must never block
(Asterisk drops a client that reads too slowly, main/manager.c write timeout ~100 ms).
"""

from __future__ import annotations

import logging
import selectors
import socket
import ssl
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable

from bridge.ami import names
from bridge.ami.actions import Action
from bridge.ami.message import NEED_DATA, Banner, Message
from bridge.ami.protocol import AmiParser
from bridge.errors import AmiActionError, AmiConnectionError

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.1            # how often deadlines and the stop flag are checked
RECV_CHUNK_BYTES = 256 * 1024
MAX_OUTBOUND_BYTES = 8 * 1024 * 1024  # a peer that stops reading this much is dead to us
READS_PER_TURN = 8               # recv() calls per loop turn before pending writes go out
PAUSE_NOTICE_S = 0.05           # a hand-off to on_event longer than this is backpressure, not work
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError, InterruptedError)


@dataclass(frozen=True)
class ActionResult:
    """The answer to one action; for a list action, the events it produced (Complete excluded)."""

    response: Message
    events: tuple[Message, ...] = ()
    complete: Message | None = None   # the `...Complete` event that closed an event list


class _Counters:
    messages = 0
    unmatched = 0
    dropped = 0


class _Pending:
    __slots__ = ("future", "name", "deadline", "response", "events")

    def __init__(self, future: Future, name: str, deadline: float) -> None:
        self.future = future
        self.name = name
        self.deadline = deadline
        self.response: Message | None = None   # set once a list action's start arrives
        self.events: list[Message] = []


def _starts_list(response: Message) -> bool:
    if (response.get(names.EVENT_LIST) or "").lower() == "start":
        return True
    # Asterisk 11 answers Status/QueueStatus with `Message: ... will follow` and no EventList.
    return (response.get(names.MESSAGE) or "").endswith("will follow")


def _ends_list(event: Message) -> bool:
    if (event.get(names.EVENT_LIST) or "").lower() == "complete":
        return True
    return (event.event or "").endswith("Complete")


class AmiConnection(threading.Thread):
    """A connected socket and the thread that reads it. Single use: once closed, it is gone."""

    def __init__(self, sock: socket.socket, server: str, parser: AmiParser,
                 on_event: Callable[[Message], None], on_banner: Callable[[Banner], None] = lambda b: None,
                 stats: object | None = None) -> None:
        super().__init__(name=f"ami-reader-{server}", daemon=True)
        self.server = server
        self._sock = sock
        self._parser = parser
        self._on_event = on_event
        self._on_banner = on_banner
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._open_lists = 0  # pending list actions whose start arrived; 0: no event needs its ActionID read
        self._outbuf = bytearray()
        self._stop_event = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.banner_ready = threading.Event()
        self.closed = threading.Event()
        self.close_reason: str | None = None
        self.parser = parser
        # Counters go straight to the owner's stats (attributes messages, unmatched, dropped).
        self._stats = stats if stats is not None else _Counters()
        self._dropped_seen = 0
        self.last_read = time.monotonic()  # when bytes last arrived (the keepalive reads it)
        # While on_event runs (it may wait on a full intake queue: backpressure) this reader reads
        # nothing, so a late Pong says nothing about the peer; the keepalive reads these two.
        self.handoff_started = 0.0         # > 0 while on_event runs
        self.last_pause_end = 0.0          # when a hand-off longer than PAUSE_NOTICE_S last ended
        sock.setblocking(False)

    # --- called from any thread -------------------------------------------------------------

    def send(self, action: Action, timeout_s: float) -> Future:
        """Queue `action` (it must carry its ActionID); the Future resolves to an ActionResult."""
        future: Future = Future()
        future.set_running_or_notify_cancel()
        action_id = action.action_id
        if action_id is None:
            raise ValueError("AmiConnection.send needs an action with an ActionID")
        data = action.encode()
        with self._lock:
            if self.closed.is_set():
                future.set_exception(AmiConnectionError(f"{self.server}: not connected ({self.close_reason})"))
                return future
            if action_id in self._pending:
                future.set_exception(AmiConnectionError(f"{self.server}: ActionID {action_id} already pending"))
                return future
            if len(self._outbuf) > MAX_OUTBOUND_BYTES:
                future.set_exception(AmiConnectionError(f"{self.server}: peer is not reading our actions"))
                return future
            self._pending[action_id] = _Pending(future, action.name, time.monotonic() + timeout_s)
            self._outbuf += data
        self._wake()
        return future

    def close(self, reason: str) -> None:
        """Declare the link dead: pending actions fail now; the reader closes the socket."""
        with self._lock:
            if self.closed.is_set():
                return
            self.close_reason = reason
            self.closed.set()
            pending, self._pending = self._pending, {}
            self._open_lists = 0
        self._stop_event.set()
        self._wake()
        for item in pending.values():
            if not item.future.done():
                item.future.set_exception(
                    AmiConnectionError(f"{self.server}: link lost before {item.name} was answered ({reason})"))

    stop = close

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # already woken, or the pair is closed because the reader is gone

    # --- the reader thread ------------------------------------------------------------------

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        try:
            selector.register(self._sock, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            self._loop(selector)
        except (OSError, ValueError) as exc:  # ValueError: the socket was closed under us
            self.close(f"socket error: {exc}")
        except Exception:
            log.exception("%s: AMI reader crashed", self.server)
            self.close("reader crashed")
        finally:
            selector.close()
            for s in (self._sock, self._wake_r, self._wake_w):
                try:
                    s.close()
                except OSError:
                    pass

    def _loop(self, selector: selectors.BaseSelector) -> None:
        next_sweep = time.monotonic() + POLL_INTERVAL_S
        want_write = False
        while not self._stop_event.is_set():
            if bool(self._outbuf) != want_write:
                want_write = not want_write
                mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0)
                selector.modify(self._sock, mask)
            # TLS may hold decrypted bytes the socket no longer signals (a bounded _read left them).
            tls_pending = isinstance(self._sock, ssl.SSLSocket) and self._sock.pending() > 0
            for key, mask in selector.select(0 if tls_pending else POLL_INTERVAL_S):
                if key.fileobj is self._wake_r:
                    self._drain_wake()
                elif mask & selectors.EVENT_READ and not self._read():
                    return
            if tls_pending and not self._read():
                return
            if self._outbuf and not self._write():
                return
            now = time.monotonic()
            if now >= next_sweep:
                self._expire(now)
                next_sweep = now + POLL_INTERVAL_S

    def paused(self, now: float, within_s: float) -> bool:
        """True when the reader waits inside on_event (backpressure), or did so in the last
        `within_s`: then silence is ours, not the peer's."""
        started = self.handoff_started
        return (started > 0.0 and now - started > PAUSE_NOTICE_S) or self.last_pause_end > now - within_s

    def last_alive(self) -> float:
        """When the reader last saw the peer or came back from a pause."""
        return max(self.last_read, self.last_pause_end)

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _read(self) -> bool:
        # Bounded: under a flood there is always more to read, and a reader that never returns
        # to the loop never writes our Ping (the link then looked dead though the peer was fine).
        for _ in range(READS_PER_TURN):
            try:
                data = self._sock.recv(RECV_CHUNK_BYTES)
            except _WOULD_BLOCK:
                return True
            except OSError as exc:
                self.close(f"read failed: {exc}")
                return False
            if not data:
                self.close("connection closed by peer")
                return False
            self.last_read = time.monotonic()
            self._parser.feed(data)
            self._handle_parsed()
            if self._parser.dropped != self._dropped_seen:
                self._stats.dropped += self._parser.dropped - self._dropped_seen
                self._dropped_seen = self._parser.dropped
            if self._stop_event.is_set():
                return False
        return True

    def _write(self) -> bool:
        with self._lock:
            chunk = bytes(self._outbuf[:RECV_CHUNK_BYTES])
        try:
            sent = self._sock.send(chunk)
        except _WOULD_BLOCK:
            return True
        except OSError as exc:
            self.close(f"write failed: {exc}")
            return False
        with self._lock:
            del self._outbuf[:sent]
        return True

    def _handle_parsed(self) -> None:
        parser = self._parser
        while (msg := parser.next_message()) is not NEED_DATA:
            if isinstance(msg, Banner):
                self._on_banner(msg)
                self.banner_ready.set()
                continue
            self._stats.messages += 1
            if not self.banner_ready.is_set():
                self.banner_ready.set()  # a peer without a banner: go on, login will tell
            if msg.is_response:
                self._on_response(msg)
            elif not self._collect(msg):
                started = self.handoff_started = time.monotonic()
                self._on_event(msg)
                self.handoff_started = 0.0
                ended = time.monotonic()
                if ended - started > PAUSE_NOTICE_S:
                    self.last_pause_end = ended

    def _on_response(self, msg: Message) -> None:
        action_id = msg.action_id
        with self._lock:
            item = self._pending.get(action_id) if action_id is not None else None
            if item is None:
                self._stats.unmatched += 1
                return
            if msg.response == names.ERROR or not _starts_list(msg):
                del self._pending[action_id]
            else:
                item.response = msg
                self._open_lists += 1
                return
        if msg.response == names.ERROR:
            item.future.set_exception(AmiActionError(
                f"{self.server}: {item.name} failed: {msg.get(names.MESSAGE) or 'Response: Error'}",
                action_id=action_id, response=msg))
        else:
            item.future.set_result(ActionResult(msg))

    def _collect(self, event: Message) -> bool:
        """True when `event` belongs to a pending list action (and was kept for its result)."""
        if not self._open_lists:
            return False  # the common case: don't even split the event's headers
        action_id = event.action_id
        if action_id is None:
            return False
        with self._lock:
            item = self._pending.get(action_id)
            if item is None or item.response is None:
                return False
            if not _ends_list(event):
                item.events.append(event)
                return True
            del self._pending[action_id]
            self._open_lists -= 1
        item.future.set_result(ActionResult(item.response, tuple(item.events), event))
        return True

    def _expire(self, now: float) -> None:
        with self._lock:
            late = [aid for aid, item in self._pending.items() if item.deadline <= now]
            expired = [self._pending.pop(aid) for aid in late]
            self._open_lists -= sum(item.response is not None for item in expired)
        for item in expired:
            item.future.set_exception(AmiConnectionError(f"{self.server}: {item.name} timed out"))
