"""OriginateTracker: remembers each Originate we sent and its outcome from `OriginateResponse` (by ActionID)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Callable

from bridge.ami import names
from bridge.ami.message import Banner, Message
from bridge.ari.event import AriEvent

PENDING, SUCCESS, FAILURE = "pending", "success", "failure"
MAX_TRACKED = 10_000             # oldest outcomes are forgotten first; 1C polls within seconds
RETENTION_S = 24 * 3600.0
# Asterisk sends OriginateResponse once the first channel answers or the ring timeout ends;
# past that plus this grace it never will (events off, `read=` without `call`, a Filter).
RESPONSE_GRACE_S = 30.0
DEFAULT_RING_TIMEOUT_S = 30.0    # Asterisk's own Originate default

# OriginateResponse `Reason` is the last AST_CONTROL_* frame seen (include/asterisk/frame.h);
# 0 means the channel could not be created at all.
REASONS = {
    0: "failed",
    1: "hangup",
    3: "no_answer",
    4: "answered",
    5: "busy",
    8: "congestion",
}


# Over ARI the originate's Dial status stands in for OriginateResponse Reason (app_dial's DIALSTATUS).
ARI_DIAL_REASON = {"ANSWER": 4, "BUSY": 5, "NOANSWER": 3, "CANCEL": 1, "CONGESTION": 8, "CHANUNAVAIL": 0,
                   "DONTCALL": 0, "TORTURE": 0, "INVALIDARGS": 0}


@dataclass(frozen=True)
class OriginateState:
    originate_id: str
    server: str
    channel: str
    status: str = PENDING
    reason: str | None = None
    reason_code: int | None = None
    uniqueid: str | None = None       # ChannelId we chose (AMI ≥ 2), or Uniqueid from the response
    linkedid: str | None = None
    created_at: float = 0.0
    finished_at: float | None = None
    deadline: float | None = None      # clock time after which no OriginateResponse is expected


class OriginateTracker:
    """An AmiListener: `register()` before sending the action, `on_event` settles it (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.time, max_tracked: int = MAX_TRACKED) -> None:
        self._clock = clock
        self._max = max_tracked
        self._states: OrderedDict[str, OriginateState] = OrderedDict()
        self._lock = threading.Lock()

    def register(self, originate_id: str, server: str, channel: str, uniqueid: str | None = None,
                 ring_timeout_s: float | None = None) -> OriginateState:
        now = self._clock()
        deadline = now + (ring_timeout_s or DEFAULT_RING_TIMEOUT_S) + RESPONSE_GRACE_S
        state = OriginateState(originate_id, server, channel, uniqueid=uniqueid, linkedid=uniqueid,
                               created_at=now, deadline=deadline)
        with self._lock:
            self._states[originate_id] = state
            while len(self._states) > self._max:
                self._states.popitem(last=False)
        return state

    def fail(self, originate_id: str, reason: str) -> None:
        """The action itself failed (Response: Error, link down): no OriginateResponse will come."""
        self._update(originate_id, status=FAILURE, reason=reason)

    def get(self, originate_id: str) -> OriginateState | None:
        now = self._clock()
        with self._lock:
            state = self._states.get(originate_id)
            if state is not None and now - state.created_at > RETENTION_S:
                del self._states[originate_id]
                return None
        if state is not None and state.status == PENDING and state.deadline is not None and now > state.deadline:
            self.fail(originate_id, "no OriginateResponse from Asterisk in time (are AMI events on, "
                                    "with the `call` read class?)")
            with self._lock:
                return self._states.get(originate_id)
        return state

    def _update(self, originate_id: str, **changes: object) -> OriginateState | None:
        with self._lock:
            state = self._states.get(originate_id)
            if state is None or state.status != PENDING:
                return None
            state = replace(state, finished_at=self._clock(), **changes)  # type: ignore[arg-type]
            self._states[originate_id] = state
            return state

    # --- AmiListener ----------------------------------------------------------------------------

    def on_event(self, server: str, message: Message) -> None:
        if isinstance(message, AriEvent):
            self._on_ari(server, message)
            return
        if message.event != names.ORIGINATE_RESPONSE:
            return
        action_id = message.action_id
        if not action_id:
            return
        ok = (message.get(names.RESPONSE) or "").lower() == names.SUCCESS.lower()
        code = _int(message.get("Reason"))
        uniqueid = message.get(names.UNIQUEID)
        if uniqueid in ("", "<null>", "<unknown>"):
            uniqueid = None
        changes: dict = {"status": SUCCESS if ok else FAILURE, "reason_code": code,
                         "reason": REASONS.get(code, f"reason {code}") if code is not None else None}
        with self._lock:
            current = self._states.get(action_id)
        if current is None or current.server != server:
            return
        if uniqueid:
            changes["uniqueid"] = uniqueid
            changes["linkedid"] = message.get(names.LINKEDID) or current.linkedid or uniqueid
        self._update(action_id, **changes)

    def _on_ari(self, server: str, message: AriEvent) -> None:
        """ARI has no OriginateResponse: the channel we named (channelId = originate id) tells.
        The originate's own `Dial` event (no caller, `peer` = our channel) ends with a dialstatus
        (ANSWER, BUSY, NOANSWER, …); a channel destroyed before any is a failure."""
        kind = message.event
        if kind == "Dial":
            uid, status = message.get("peer.id"), message.get("dialstatus") or ""
            if message.get("caller.id") or status not in ARI_DIAL_REASON:
                return
            code = ARI_DIAL_REASON[status]
        elif kind == "ChannelDestroyed":
            uid, code = message.get("channel.id"), 0
        else:
            return
        with self._lock:
            current = self._states.get(uid or "")
        if current is None or current.server != server or current.status != PENDING:
            return
        self._update(uid, status=SUCCESS if code == 4 else FAILURE, reason_code=code, reason=REASONS[code],
                     uniqueid=uid)

    def on_connected(self, server: str, banner: Banner) -> None:
        pass

    def on_disconnected(self, server: str, reason: str) -> None:
        # An Async Originate in flight reports over the session that sent it; after a drop no
        # OriginateResponse will arrive for it, so a 1C client polling status must not wait forever.
        with self._lock:
            pending = [k for k, s in self._states.items() if s.server == server and s.status == PENDING]
        for originate_id in pending:
            self._update(originate_id, status=FAILURE, reason=f"AMI link lost: {reason}")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
