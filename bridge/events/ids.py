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
from hashlib import blake2b, sha256
from typing import Callable

BUCKET_S = 60.0            # without Timestamp: wall-clock bucket mixed into the id
REPEAT_WINDOW_S = 10.0     # with Timestamp: how long a text is remembered to count exact repeats
_TIMESTAMP = "\nTimestamp: "


def as_uuid(key: bytes) -> str:
    """A 16-byte key as an RFC 9562 version-8 (custom) UUID string, variant bits 10."""
    h = key.hex()
    return f"{h[:8]}-{h[8:12]}-8{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


def derived_id(source_id: str, name: str, index: int = 0) -> str:
    """The id of the `index`-th event named `name` that event `source_id` caused (normalized events)."""
    return as_uuid(blake2b(f"{source_id}\0{name}\0{index}".encode(), digest_size=16).digest())


class _Repeats:
    """Occurrence counts of recently seen keys; forgets a key `window` after its last sighting."""

    __slots__ = ("counts", "expiry")

    def __init__(self) -> None:
        self.counts: dict[bytes, list] = {}          # key → [occurrences, forget at]
        self.expiry: deque[tuple[float, bytes]] = deque()

    def next_index(self, key: bytes, now: float, window: float) -> int:
        counts, expiry = self.counts, self.expiry
        if expiry and expiry[0][0] <= now:
            while expiry and expiry[0][0] <= now:
                at, old = expiry.popleft()
                seen = counts.get(old)
                if seen is not None and seen[1] <= at:
                    del counts[old]
        until = now + window
        expiry.append((until, key))
        seen = counts.get(key)
        if seen is None:          # the common case: a text not seen lately
            counts[key] = [1, until]
            return 0
        index = seen[0]
        seen[0], seen[1] = index + 1, until
        return index


class EventIds:
    """Ids for one process: call raw_id() from each server's reader thread, in arrival order."""

    def __init__(self, wall_clock: Callable[[], float] = time.time,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._wall = wall_clock
        self._clock = clock
        self._repeats: dict[str, _Repeats] = {}

    spell = staticmethod(as_uuid)

    def raw_id(self, server: str, text: str) -> str:
        return as_uuid(self.raw_key(server, text))

    def raw_key(self, server: str, text: str) -> bytes:
        """The id as 16 bytes (as_uuid spells it): the pipeline counts every event but spells
        only those it keeps."""
        # One SHA-256 per event (hardware-accelerated, ~1 µs for a 350-byte event; see
        # benchmarks/event_ids.py for what the whole id costs the reader thread).
        stamped = _TIMESTAMP in text
        try:
            data = text.encode()
        except UnicodeEncodeError:   # a lone surrogate (an ARI JSON escape): still hashable
            data = text.encode("utf-8", "surrogatepass")
        salt = b"" if stamped else b"\0%d" % int(self._wall() // BUCKET_S)
        key = sha256(b"%s\0%s%s" % (server.encode(), data, salt)).digest()[:16]
        repeats = self._repeats.get(server)
        if repeats is None:
            repeats = self._repeats[server] = _Repeats()
        # Without Timestamp the bucket bounds a key's life: remember it one bucket long.
        index = repeats.next_index(key, self._clock(), REPEAT_WINDOW_S if stamped else BUCKET_S)
        if index:
            key = blake2b(key + index.to_bytes(4, "big"), digest_size=16).digest()
        return key
