"""LinkDown / LinkUp: the ERP hears when an AMI link is lost and when it is back.

ROM-Asterisk gives 1C a Connect/Disconnect event so it can show "telephony unavailable"; these
are ours. They travel through the filters and the outbox like call events (durable, retried,
stable id) with kind `link` and the order key `link:<server>`, so one server's LinkDown and
LinkUp reach the ERP in the order they happened. Their headers are also their `text`
(`Key: Value` lines joined by CRLF), so a subscriber's regex `filter` reads them like any event.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Callable, Sequence

from bridge.events.model import LINK, BridgeEvent

LINK_DOWN = "LinkDown"
LINK_UP = "LinkUp"
LINK_EVENT_NAMES = (LINK_DOWN, LINK_UP)
STOPPING_REASON = "bridge stopped"   # LinkDown's Reason when the bridge itself shuts the link
NEVER_UP_REASON = "not reachable since the bridge started"   # + the last connect error
# The call model's words (bridge.calls.model), spelled here so events/ does not import calls/.
CALL_ENDED, CALL_OVER, LOST = "CallEnded", "ended", "lost-during-disconnect"


def order_key(server: str) -> str:
    return f"link:{server}"


def _iso(ts: float) -> str:
    # Same spelling as the call events' StartTime/EndTime (ISO 8601, UTC offset written out).
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


def _event(server: str, name: str, headers: list[tuple[str, str]], now: float) -> BridgeEvent:
    headers = [("Event", name), ("Server", server), *headers]
    return BridgeEvent(server=server, name=name, kind=LINK, headers=tuple(headers),
                       text="\r\n".join(f"{k}: {v}" for k, v in headers), order_key=order_key(server),
                       time=datetime.fromtimestamp(now, timezone.utc), local=True)


def lost_calls(events: Sequence[BridgeEvent]) -> int:
    """How many calls a resync closed as lost-during-disconnect (their final CallEnded)."""
    return len({e.get("CallId") for e in events
                if e.name == CALL_ENDED and e.get("CallState") == CALL_OVER and e.get("Reason") == LOST})


class LinkWatch:
    """Remembers, per server, since when its link is down; builds the two events.

    The first LinkUp after the bridge started has no `DownSince`/`DownSeconds`: whether and
    how long the PBX was unreachable before this process ran is unknown.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._down_since: dict[str, float] = {}
        self._lock = threading.Lock()

    def down(self, server: str, reason: str) -> BridgeEvent:
        now = self._clock()
        with self._lock:
            since = self._down_since.setdefault(server, now)
        return _event(server, LINK_DOWN, [("Reason", reason), ("Since", _iso(since))], now)

    def up(self, server: str, asterisk_version: str | None, ami_version: str | None,
           lost_calls: int | None) -> BridgeEvent:
        """`lost_calls`: calls the resync closed as lost-during-disconnect; None when the resync
        failed (then the header is left out rather than claiming 0)."""
        now = self._clock()
        with self._lock:
            since = self._down_since.pop(server, None)
        headers = [("AsteriskVersion", asterisk_version or ""), ("AMIVersion", ami_version or "")]
        if since is not None:
            headers += [("DownSince", _iso(since)), ("DownSeconds", f"{max(0.0, now - since):.1f}")]
        if lost_calls is not None:
            headers.append(("LostCalls", str(lost_calls)))
        return _event(server, LINK_UP, headers, now)
