"""Keeps an AJAM list answer behind the events that came before it (TCP gets this for free).

Over TCP, an action's answer and the events travel on one stream, so everything Asterisk
queued before a `CoreShowChannels` answer reaches the listeners before the answer. Over AJAM
the answer comes on an action connection while the events wait for the long poll: a resync
could see a channel in the snapshot before its `Newchannel`, and the call model would adopt it
from the snapshot with the wrong context. So a list answer is handed out only once a WaitEvent
that *started after the answer arrived* has been dispatched: Asterisk answers a WaitEvent with
everything queued up to its start, at once. A WaitEvent still waiting `IDLE_GRACE_S` after the
answer found nothing queued, so there is nothing to deliver first and the answer goes out.
"""

from __future__ import annotations

import threading
import time

IDLE_GRACE_S = 0.3     # a WaitEvent with queued events answers in milliseconds
MAX_WAIT_S = 5.0       # never hold an answer longer than this (a stalled long poll)


class EventBarrier:
    """The poller reports each WaitEvent's start, its answer and the end of its dispatch; callers wait."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._started_at = 0.0       # the WaitEvent in flight (or last) began at …
        self._done_started_at = 0.0  # … the last fully dispatched WaitEvent began at
        self._in_flight = False

    def poll_started(self) -> None:
        with self._cond:
            self._started_at = time.monotonic()
            self._in_flight = True

    def poll_answered(self) -> None:
        """The WaitEvent's answer is in: no longer waiting, now dispatching."""
        with self._cond:
            self._in_flight = False

    def poll_done(self) -> None:
        with self._cond:
            self._done_started_at = self._started_at
            self._in_flight = False
            self._cond.notify_all()

    def wait_after(self, answered_at: float, stop: threading.Event) -> None:
        """Return once every event queued before `answered_at` has been dispatched (or bounded)."""
        deadline = answered_at + MAX_WAIT_S
        with self._cond:
            while not stop.is_set():
                now = time.monotonic()
                if self._done_started_at > answered_at or now >= deadline:
                    return
                # A WaitEvent still pending IDLE_GRACE_S after both the answer and its own start had
                # nothing queued when it started, or it would have answered: nothing is owed.
                if self._in_flight and now - max(self._started_at, answered_at) >= IDLE_GRACE_S:
                    return
                self._cond.wait(0.05)
