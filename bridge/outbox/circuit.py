"""A subscriber's circuit breaker: stop sending to an ERP that is down, probe it, resume at once.

Per-row backoff alone made an ERP outage cost a minute or more after the ERP came back (the head
of each call had backed off to its own 54 s or 10 min) and had every pending row probe the dead
ERP on its own schedule. The circuit is the subscriber's health instead:

- closed: rows are sent normally. OPEN_AFTER_FAILURES transport-level failures in a row (refused
  or reset connection, timeout, 5xx, 408/429, a 2xx that is not SOAP, a redirect) open it.
- open: one probe at a time (the oldest due head, claimed alone), on a backoff of its own whose
  ceiling doubles from the subscriber's retry_base up to `probe_cap` (equal jitter: the wait is in
  [c/2, c], so it never exceeds probe_cap). A Retry-After is honoured up to probe_cap. The first
  answer from the ERP (success, or a failure specific to the row: a SOAP Fault or another 4xx)
  closes it; the dispatcher then makes every row held back by the outage due at once.
- A failure specific to one row neither counts towards opening nor opens it: the ERP answered.

While open, the rows a transport failure hits stay due (next_attempt_at = now, see
dispatcher._Worker): the circuit is the only gate, so closing it needs no mass UPDATE of the
backlog. The state lives in this process (each dispatcher of a PostgreSQL cluster judges the ERP
from its own requests); `on_change` lets the owner log and publish transitions.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from bridge.backoff import Backoff
from bridge.errors import DeliveryError, DeliveryRejected, DeliveryRetryable

OPEN_AFTER_FAILURES = 3        # transport failures in a row that open the circuit
DEFAULT_PROBE_CAP_S = 30.0
CLOSED, OPEN = "closed", "open"
PROBE = "probe"                # admit(): send one row as the probe
# HTTP statuses that say "the endpoint as a whole cannot take requests now", though 4xx.
_ENDPOINT_4XX = frozenset({408, 429})


def is_transport_failure(exc: DeliveryError) -> bool:
    """Whether `exc` says the subscriber's endpoint is unwell (as opposed to this one row being refused).

    A SOAP Fault is the ERP's answer about this event; so is a 4xx other than 408/429 (e.g. 413
    for a too-large event, 400 for one it cannot parse). Everything else (no answer at all, 5xx,
    429, a redirect, a 2xx that is not SOAP) would happen to any row sent now."""
    if isinstance(exc, DeliveryRejected):
        return False
    if isinstance(exc, DeliveryRetryable):
        status = exc.status_code
        return status is None or not (400 <= status < 500) or status in _ENDPOINT_4XX
    return True


@dataclass(frozen=True)
class CircuitState:
    subscriber: str
    state: str                    # closed | open
    failures: int                 # transport failures in a row
    opened_at: datetime | None    # when it last opened (UTC), None while closed
    last_error: str | None        # the failure that opened it (or the last one while open)
    probes: int                   # probes sent since it opened


class Circuit:
    """Thread-safe; shared by the workers of one subscriber. Times are time.monotonic() seconds."""

    def __init__(self, subscriber: str, *, probe_cap_s: float = DEFAULT_PROBE_CAP_S, probe_base_s: float = 1.0,
                 open_after: int = OPEN_AFTER_FAILURES, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[CircuitState], None] | None = None) -> None:
        self.subscriber = subscriber
        self.probe_cap_s = probe_cap_s
        self._backoff = Backoff(min(probe_base_s, probe_cap_s), probe_cap_s, jitter=False)
        self.open_after = max(1, open_after)
        self._rng = rng or random.Random()
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at: datetime | None = None
        self._last_error: str | None = None
        self._probes = 0
        self._probe_failures = 0
        self._probe_in_flight = False
        self._next_probe = 0.0

    @property
    def is_open(self) -> bool:
        return self._state == OPEN

    def snapshot(self) -> CircuitState:
        with self._lock:
            return self._snapshot()

    def admit(self) -> str | None:
        """What a worker may do now: CLOSED (send normally), "probe" (send one row, then report),
        or None (the circuit is open and a probe is in flight or not due yet: wait)."""
        with self._lock:
            if self._state == CLOSED:
                return CLOSED
            if self._probe_in_flight or self._clock() < self._next_probe:
                return None
            self._probe_in_flight = True
            self._probes += 1
            return PROBE

    def probe_unused(self) -> None:
        """The admitted probe found no row to send: the next worker may probe at once."""
        with self._lock:
            self._probe_in_flight = False

    def wait_s(self) -> float:
        """Seconds until a probe may go (0 when closed)."""
        with self._lock:
            if self._state == CLOSED:
                return 0.0
            return max(0.0, self._next_probe - self._clock())

    def answered(self, probe: bool = False) -> bool:
        """The ERP answered (a success or a row-specific failure). True when this closed the circuit."""
        with self._lock:
            if probe:
                self._probe_in_flight = False
            self._failures = 0
            if self._state == CLOSED:
                return False
            self._state, self._opened_at, self._probes, self._probe_failures = CLOSED, None, 0, 0
            change = self._snapshot()
        self._notify(change)
        return True

    def failed(self, exc: DeliveryError, probe: bool = False) -> bool:
        """A transport-level failure. True when this opened the circuit."""
        retry_after = getattr(exc, "retry_after_s", None)
        with self._lock:
            if probe:
                self._probe_in_flight = False
            self._failures += 1
            self._last_error = str(exc)[:300]
            if self._state == OPEN:
                if probe:
                    self._probe_failures += 1
                    self._schedule_probe(retry_after)
                return False
            if self._failures < self.open_after:
                return False
            self._state, self._opened_at = OPEN, datetime.now(timezone.utc)
            self._probes, self._probe_failures = 0, 1
            self._schedule_probe(retry_after)
            change = self._snapshot()
        self._notify(change)
        return True

    def _schedule_probe(self, retry_after_s: float | None) -> None:
        ceiling = self._backoff.ceiling_s(self._probe_failures)
        wait = self._rng.uniform(ceiling / 2, ceiling)
        if retry_after_s is not None and retry_after_s == retry_after_s:   # not NaN
            wait = max(wait, min(retry_after_s, self.probe_cap_s))
        self._next_probe = self._clock() + wait

    def _snapshot(self) -> CircuitState:
        return CircuitState(self.subscriber, self._state, self._failures, self._opened_at, self._last_error,
                            self._probes)

    def _notify(self, change: CircuitState) -> None:
        if self._on_change is not None:
            self._on_change(change)
