"""The event that flows from the AMI listener through filters into the outbox, raw or normalized."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Mapping, Protocol, Sequence

RAW = "raw"
NORMALIZED = "normalized"


def new_event_uuid() -> str:
    """The idempotency key an ERP sees as `id`; stable across re-deliveries."""
    return str(uuid.uuid4())


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
    kind: str  # RAW | NORMALIZED
    headers: tuple[tuple[str, str], ...]
    text: str
    order_key: str
    time: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    event_uuid: str = field(default_factory=new_event_uuid)
    call: Mapping[str, str] | None = None  # normalized call fields, for the PushEvent body
    received_monotonic: float = 0.0  # time.monotonic() at AMI arrival, for latency metrics

    def get(self, name: str, default: str | None = None) -> str | None:
        lname = name.lower()
        return next((v for k, v in self.headers if k.lower() == lname), default)


class EventSink(Protocol):
    """Where routed events go: the outbox writer implements it.

    `accept` queues the event for the named subscribers. It may block to apply backpressure
    (counted by the implementation), and never drops an event silently.
    """

    def accept(self, event: BridgeEvent, subscribers: Sequence[str]) -> None: ...
