"""Waiting and recording helpers shared by the tests, the chaos rig and the benchmarks."""

from __future__ import annotations

import threading
import time
from typing import Callable

WAIT_S = 10.0            # long enough for a loaded 2-core CI machine; a passing wait returns at once
POLL_S = 0.01


def wait_until(predicate: Callable[[], object], timeout_s: float = WAIT_S, interval_s: float = POLL_S) -> bool:
    """Poll `predicate` until it is true or `timeout_s` passed; the last look happens after the deadline,
    so a condition met during the final sleep still counts."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())


class RecordingSink:
    """An EventSink that keeps what the Pipeline accepted for subscribers (stands in for the outbox)."""

    def __init__(self) -> None:
        self.accepted: list[tuple[object, tuple[str, ...]]] = []
        self._cond = threading.Condition()

    def accept(self, event, subscribers) -> None:
        with self._cond:
            self.accepted.append((event, tuple(subscribers)))
            self._cond.notify_all()

    def wait_for(self, predicate, timeout_s: float = WAIT_S) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.accepted), timeout_s)

    def normalized(self, call_id: str | None = None) -> list:
        with self._cond:
            return [e for e, _ in self.accepted
                    if e.kind == "normalized" and (call_id is None or e.get("CallId") == call_id)]


class RecordingListener:
    """An AmiListener that keeps everything it is told and lets tests wait for it."""

    def __init__(self) -> None:
        self.events: list = []
        self.connected: list = []
        self.disconnected: list[str] = []
        self._cond = threading.Condition()

    def on_event(self, server: str, message) -> None:
        with self._cond:
            self.events.append(message)
            self._cond.notify_all()

    def on_connected(self, server: str, banner) -> None:
        with self._cond:
            self.connected.append(banner)
            self._cond.notify_all()

    def on_disconnected(self, server: str, reason: str) -> None:
        with self._cond:
            self.disconnected.append(reason)
            self._cond.notify_all()

    def wait_for(self, predicate, timeout_s: float = WAIT_S) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout_s)

    def named(self, event: str) -> list:
        with self._cond:
            return [m for m in self.events if m.event == event]


def actions_sent(sim, *names: str) -> list:
    """The actions an AmiSimulator received whose name is one of `names` (case-insensitive), in order."""
    wanted = {n.lower() for n in names}
    return [m for m in list(sim.received_actions) if (m.get("Action") or "").lower() in wanted]
