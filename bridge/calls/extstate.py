"""Extension (hint) states: AMI `ExtensionState` answers cached and kept fresh by `ExtensionStatus` events.

GetExtensionState is what a 1C form polls, often for many users at once. An AMI round trip
per request would put Asterisk's manager thread on every refresh, so the first query for an
extension asks Asterisk, and the `ExtensionStatus` events Asterisk sends on every hint change
(class `call`, all versions) keep the answer current. A short TTL bounds staleness when those
events are hidden from us (an AMI `Filter`, or manager.conf `read=` without `call`), and a
disconnect forgets everything learnt on that link.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from bridge.ami.actions import Action
from bridge.ami.message import Banner, Message

EXTENSION_STATUS = "ExtensionStatus"
EXTENSION_STATE_ACTION = "ExtensionState"
CACHE_TTL_S = 2.0
ACTION_TIMEOUT_S = 5.0
MAX_ENTRIES = 50_000

# ast_extension_state() codes (include/asterisk/pbx.h, enum ast_extension_states).
STATES = {
    -2: "removed",
    -1: "not_found",
    0: "idle",
    1: "in_use",
    2: "busy",
    4: "unavailable",
    8: "ringing",
    9: "ringing",        # INUSE | RINGING: a second call rings on a busy phone
    16: "on_hold",
    17: "on_hold",       # INUSE | ONHOLD
}


def state_name(code: int | None) -> str:
    if code is None:
        return "unknown"
    return STATES.get(code, "unknown")


@dataclass(frozen=True)
class HintState:
    server: str
    exten: str
    context: str
    status_code: int | None
    state: str
    learnt_at: float


# Events that mean a device's calls changed; the hint state of that device is then re-asked.
_CHANNEL_EVENTS = frozenset({
    "Newchannel", "Newstate", "Hangup", "DialBegin", "DialEnd", "Dial", "BridgeEnter", "BridgeLeave",
    "Bridge", "Link", "Unlink", "Hold", "Unhold", "MusicOnHoldStart", "MusicOnHoldStop",
})
DEVICE_STATE_CHANGE = "DeviceStateChange"       # Asterisk 12+: Device: PJSIP/202, State: INUSE
ARI_DEVICE_STATE_CHANGED = "DeviceStateChanged"  # the same over ARI


def device_resource(channel: str | None) -> str | None:
    """`PJSIP/202-0000001a` → `202`; `Local/202@from-internal-0001;1` → `202`."""
    if not channel or "/" not in channel:
        return None
    resource = channel.split("/", 1)[1].split("@", 1)[0]
    head, sep, tail = resource.rpartition("-")
    return head if sep and tail and all(c in "0123456789abcdefABCDEF;" for c in tail) else resource


class ExtensionStateCache:
    """AmiListener + query: `lookup(client, exten, context)` → HintState (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, ttl_s: float = CACHE_TTL_S) -> None:
        self._clock = clock
        self._ttl_s = ttl_s
        self._states: dict[tuple[str, str], dict[str, HintState]] = {}   # (server, exten) → {context: state}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def lookup(self, client, exten: str, context: str) -> HintState:
        """Cached state, else ask Asterisk (raises AmiConnectionError / AmiActionError)."""
        now = self._clock()
        with self._lock:
            cached = self._states.get((client.name, exten), {}).get(context)
            if cached is not None and now - cached.learnt_at <= self._ttl_s:
                self.hits += 1
                return cached
            self.misses += 1
        action = Action.build(EXTENSION_STATE_ACTION, Exten=exten, Context=context)
        result = client.send_action(action, ACTION_TIMEOUT_S).result(ACTION_TIMEOUT_S + 1.0)
        return self._store(client.name, exten, context, _int(result.response.get("Status")))

    def _store(self, server: str, exten: str, context: str, code: int | None) -> HintState:
        state = HintState(server, exten, context, code, state_name(code), self._clock())
        with self._lock:
            if len(self._states) >= MAX_ENTRIES:
                self._states.clear()
            self._states.setdefault((server, exten), {})[context] = state
        return state

    # --- AmiListener ----------------------------------------------------------------------------

    def on_event(self, server: str, message: Message) -> None:
        event = message.event
        if event == ARI_DEVICE_STATE_CHANGED:
            # ARI (bridge.ari.event flattens `device_state.name`): `PJSIP/202` names extension 202;
            # a custom device (`Custom:x`) names none we know, so that server's answers are re-asked.
            resource = device_resource(message.get("device_state.name"))
            if resource:
                self._forget_exten(server, resource)
            else:
                self.forget(server)
        elif event == EXTENSION_STATUS:
            exten, context = message.get("Exten"), message.get("Context")
            if exten and context:
                self._store(server, exten, context, _int(message.get("Status")))
        elif event in _CHANNEL_EVENTS or event == DEVICE_STATE_CHANGE:
            # Where Asterisk sends no ExtensionStatus to us (hidden by a Filter or read= class),
            # channel activity on the device still makes the next query ask Asterisk again.
            resource = device_resource(message.get("Device") if event == DEVICE_STATE_CHANGE
                                       else message.get("Channel"))
            if resource:
                self._forget_exten(server, resource)

    def on_connected(self, server: str, banner: Banner) -> None:
        self.forget(server)

    def on_disconnected(self, server: str, reason: str) -> None:
        self.forget(server)

    def _forget_exten(self, server: str, exten: str) -> None:
        with self._lock:
            self._states.pop((server, exten), None)

    def forget(self, server: str) -> None:
        with self._lock:
            for key in [k for k in self._states if k[0] == server]:
                del self._states[key]


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
