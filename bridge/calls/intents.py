"""Calls the bridge placed itself (ClickToCall, Originate): who meant to call whom.

Asterisk cannot tell us: ClickToCall rings the operator's phone first with the *number* as caller
ID, so every channel of the call looks like the number calling the operator. The SOAP backend
says what it asked for, keyed by the first channel's Uniqueid (the ChannelId it chose, Asterisk
13+); the engine attaches the intent to the call that channel starts.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

MAX_PENDING = 10_000     # an Originate whose channel never appeared is forgotten, oldest first


@dataclass(frozen=True)
class Intent:
    originate_id: str    # what ClickToCall/Originate returned to 1C
    caller: str          # the extension (operator) whose phone rings first
    callee: str          # the number it then calls


class Intents:
    """Intents waiting for their first channel (thread-safe: SOAP threads add, the AMI reader takes)."""

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self._pending: OrderedDict[tuple[str, str], Intent] = OrderedDict()
        self._max = max_pending
        self._lock = threading.Lock()

    def expect(self, server: str, uniqueid: str, intent: Intent) -> None:
        with self._lock:
            self._pending[(server, uniqueid)] = intent
            while len(self._pending) > self._max:
                self._pending.popitem(last=False)

    def take(self, server: str, uniqueid: str) -> Intent | None:
        if not self._pending:
            return None
        with self._lock:
            return self._pending.pop((server, uniqueid), None)
