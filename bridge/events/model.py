"""The event that flows from the AMI listener through filters into the outbox, raw or normalized."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Mapping, Protocol, Sequence

RAW = "raw"
NORMALIZED = "normalized"
LINK = "link"  # LinkDown / LinkUp (bridge.events.link)

# Event ids need uniqueness, not secrecy. uuid.uuid4() asks the kernel for 16 random bytes per
# call, which was a third of the AMI reader thread's time under a 5k events/s flood; a PRNG
# seeded from the kernel (and reseeded in a forked child, so two processes never share a
# stream) gives the same 122 random bits of a version-4 UUID at a fraction of the cost.
_rng = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _rng.seed(os.urandom(32)))
_VERSION_4 = (0x4 << 76) | (0x2 << 62)  # version nibble 4, RFC 4122 variant bits 10
_CLEAR = ~((0xF << 76) | (0x3 << 62))


def new_event_uuid() -> str:
    """A random idempotency key (version-4 UUID), for events a node makes itself; events from the
    AMI stream get deterministic ids instead (bridge.events.ids). Stable across re-deliveries."""
    h = "%032x" % ((_rng.getrandbits(128) & _CLEAR) | _VERSION_4)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True, slots=True)
class BridgeEvent:
    """One event as subscribers see it.

    `headers` are the AMI headers for a raw event, or the normalized fields for a call event
    (`CallId`, `Extension`, `CallerIDNum`, `CalleeNum`, …). `text` is what a subscriber's regex
    `filter` searches: the AMI text exactly as received for raw events, and the same
    `Key: Value` CRLF form for normalized ones. `order_key` keeps one call's events in order
    (the call's Linkedid, or the channel for events outside a call).
    """

    server: str
    name: str
    kind: str  # RAW | NORMALIZED | LINK
    headers: tuple[tuple[str, str], ...]
    text: str
    order_key: str
    time: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    event_uuid: str = field(default_factory=new_event_uuid)
    call: Mapping[str, str] | None = None  # normalized call fields, for the PushEvent body
    received_monotonic: float = 0.0  # time.monotonic() at AMI arrival, for latency metrics
    # True for what this node makes itself (LinkDown/LinkUp, a resync's CallEnded): its id is
    # random, not derived from the AMI stream, so only the leader of `server` writes it (bridge.ha).
    local: bool = False

    def get(self, name: str, default: str | None = None) -> str | None:
        lname = name.lower()
        return next((v for k, v in self.headers if k.lower() == lname), default)


def queued_cost(event: BridgeEvent) -> int:
    """What a queued event costs in memory, roughly: its text and its header values (the same
    characters again, up to 2 bytes each once one is Cyrillic), then its envelope, plus objects.
    The outbox writer's queue and a standby's buffer (bridge.ha.gate) are both bounded by it."""
    return 4 * len(event.text) + 1024


class EventSink(Protocol):
    """Where routed events go: the outbox writer implements it.

    `accept` queues the event for the named subscribers. It may block to apply backpressure
    (counted by the implementation), and never drops an event silently.
    """

    def accept(self, event: BridgeEvent, subscribers: Sequence[str]) -> None: ...
