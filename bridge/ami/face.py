"""The face every manager client shows the rest of the bridge, whichever link is behind it.

AmiClient (TCP), AjamClient (HTTP) and AriClient (WebSocket + REST) differ in how they reach
Asterisk and alike in everything above: a name, listeners that get events on the reader's thread
and Connected/Disconnected notices in order on a thread of their own, the connected flag, the
banner, ActionIDs unique to this process, AMI `Filter` lines, counters. ClientFace holds that
part once; each client owns its link (start, stop, send_action) and calls `_init_face` first.
"""

from __future__ import annotations

import itertools
import logging
import queue
import secrets
import threading
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

from bridge.ami import names
from bridge.ami.actions import Action
from bridge.ami.message import Banner, Message
from bridge.config import AmiConfig

log = logging.getLogger(__name__)


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


class ClientFace:
    """The shared public face; a subclass calls `_init_face(settings, filters)` in its __init__."""

    def _init_face(self, settings: AmiConfig, filters: Sequence[str] = ()) -> None:
        self.settings = settings
        self.name, self.username = settings.name, settings.username
        self._filters = tuple(filters)
        for line in self._filters:
            Action.build(names.FILTER, Filter=line)  # refuse CR/LF in a filter now, not at login
        self._listeners: list[AmiListener] = []
        self._ids = itertools.count(1)
        self._id_prefix = f"{settings.name}-{secrets.token_hex(3)}"
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._notifier = _Notifier(settings.name)
        self.banner: Banner | None = None
        self.asterisk_version: str | None = None
        self.stats = ClientStats()

    @classmethod
    def from_config(cls, cfg: AmiConfig, filters: Sequence[str] = ()):
        return cls(cfg, filters=filters)

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

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def next_action_id(self) -> str:
        return f"{self._id_prefix}-{next(self._ids)}"

    def _with_id(self, action: Action) -> Action:
        return action if action.action_id is not None else action.with_action_id(self.next_action_id())

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

    def _stop_notifier(self, timeout_s: float) -> None:
        self._notifier.stop(timeout_s)
        self._notifier = _Notifier(self.name)  # threads are single-use: ready for another start()


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
