"""Deterministic event ids: the same AMI event gets the same `id` on every bridge node.

Several nodes listen to one PBX (bridge.ha); the new leader writes the events it buffered as a
standby, and the ones the old leader already committed must be dropped at insert (the outbox's
unique (event_uuid, subscriber)). So an id is a hash of what every AMI session receives alike:
the server name and the event text. Measured on Asterisk 22.10.1: two AMI sessions of the same
user get byte-identical event text (list answers carry our ActionID, but they never reach the
listeners: bridge.ami.connection keeps them for the action's result).

Identical texts are real (Asterisk 22 sends `DeviceStateChange` / `ExtensionStatus` with the same
text for every call of a phone), so a text alone is not an event:
- With `timestampevents = yes` in manager.conf every event carries Asterisk's own microsecond
  `Timestamp`: the text is unique, and the id is the same on every node whatever its clock.
- Without it, the node's wall clock is mixed in, in BUCKET_S buckets: a text repeated later
  lands in another bucket and gets another id (it is a new event, never dropped as a duplicate).
  Two nodes whose arrival times straddle a bucket boundary compute different ids for that one
  event; if it is in a takeover's overlap the ERP gets it twice, under two ids (at least once
  still holds). docs/ha.md recommends `timestampevents = yes` for this reason.
Within one bucket (or, with Timestamp, one REPEAT_WINDOW_S) the n-th repeat of a text gets
occurrence index n. A node that connected between two repeats counts one fewer: its copy of the
second repeat gets the first one's id. Written as a standby's buffer, that copy is dropped as a
duplicate of the first, so the second is lost only if the old leader died before committing it.

Normalized events take their id from the raw event that caused them (derived_id), so they are
deterministic too. Events a node makes itself (LinkDown/LinkUp, a resync's CallEnded) keep a
random id and are marked `local` (bridge.events.model): only a leader writes them.
"""

from __future__ import annotations

import time
from collections import deque
from hashlib import blake2b
from typing import Callable

BUCKET_S = 60.0            # without Timestamp: wall-clock bucket mixed into the id
REPEAT_WINDOW_S = 10.0     # with Timestamp: how long a text is remembered to count exact repeats
_TIMESTAMP = "\nTimestamp: "
_VERSION_8 = (0x8 << 76) | (0x2 << 62)   # RFC 9562 version 8 (custom), variant bits 10
_CLEAR = ~((0xF << 76) | (0x3 << 62))


def _as_uuid(digest: bytes) -> str:
    h = "%032x" % ((int.from_bytes(digest, "big") & _CLEAR) | _VERSION_8)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def derived_id(source_id: str, name: str, index: int = 0) -> str:
    """The id of the `index`-th event named `name` that event `source_id` caused (normalized events)."""
    return _as_uuid(blake2b(f"{source_id}\0{name}\0{index}".encode(), digest_size=16).digest())


class _Repeats:
    """Occurrence counts of recently seen keys; forgets a key `window` after its last sighting."""

    __slots__ = ("counts", "expiry")

    def __init__(self) -> None:
        self.counts: dict[bytes, tuple[int, float]] = {}
        self.expiry: deque[tuple[float, bytes]] = deque()

    def next_index(self, key: bytes, now: float, window: float) -> int:
        counts, expiry = self.counts, self.expiry
        while expiry and expiry[0][0] <= now:
            at, old = expiry.popleft()
            seen = counts.get(old)
            if seen is not None and seen[1] <= at:
                del counts[old]
        seen = counts.get(key)
        index = 0 if seen is None else seen[0]
        counts[key] = (index + 1, now + window)
        expiry.append((now + window, key))
        return index


class EventIds:
    """Ids for one process: call raw_id() from each server's reader thread, in arrival order."""

    def __init__(self, wall_clock: Callable[[], float] = time.time,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._wall = wall_clock
        self._clock = clock
        self._repeats: dict[str, _Repeats] = {}

    def raw_id(self, server: str, text: str) -> str:
        stamped = _TIMESTAMP in text
        salt = b"" if stamped else b"\0%d" % int(self._wall() // BUCKET_S)
        key = blake2b(server.encode() + b"\0" + text.encode("utf-8", "surrogatepass") + salt,
                      digest_size=16).digest()
        repeats = self._repeats.get(server)
        if repeats is None:
            repeats = self._repeats[server] = _Repeats()
        # Without Timestamp the bucket bounds a key's life: remember it one bucket long.
        index = repeats.next_index(key, self._clock(), REPEAT_WINDOW_S if stamped else BUCKET_S)
        if index:
            key = blake2b(key + index.to_bytes(4, "big"), digest_size=16).digest()
        return _as_uuid(key)
