"""Dispatcher: per-subscriber worker threads that claim due outbox rows and POST them to the ERP."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable, Sequence

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from bridge.errors import BridgeError, DeliveryError, DeliveryRejected
from bridge.outbox import queries
from bridge.outbox.circuit import DEFAULT_PROBE_CAP_S, OPEN, PROBE, Circuit, CircuitState, is_transport_failure
from bridge.outbox.db import dispatch_engine, reader, single_process
from bridge.outbox.models import DEAD, PENDING
from bridge.outbox.queries import ClaimedRow
from bridge.outbox.retry import RetryPolicy
from bridge.outbox.turns import WriteTurns

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.5          # idle workers look for due rows this often (other processes, retries)
DB_ERROR_WAIT_S = 1.0          # back off after the database failed a claim or a settle
LEASE_MARGIN_S = 60.0          # a lease outlives the slowest possible POST by this much
CLAIM_BATCH_ROWS = 50
CIRCUIT_POLL_S = 0.05          # how often a worker behind an open circuit looks whether it may probe


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Dispatcher:
    """Delivers pending rows: `workers` threads per subscriber, so one slow ERP delays no other.

    Each worker claims up to `batch_rows` rows (heads of distinct calls: see queries.claim_batch),
    POSTs them one by one over its own keep-alive session (or, with the subscriber's batch_max > 1,
    as one PushEvents of up to batch_max rows) and settles the whole claim in one transaction. A
    crash between POST and settle redelivers with the same id (at least once). Each subscriber has
    a circuit (circuit.py) its workers consult before every request: while the ERP is down, only
    one probe at a time goes out, and its return makes the whole backlog due at once.
    """

    def __init__(self, engine: Engine, subscribers: Sequence, workers: int = 2, *,
                 transport_factory: Callable, batch_rows: int = CLAIM_BATCH_ROWS,
                 poll_interval_s: float = POLL_INTERVAL_S, release_leases_on_start: bool | None = None,
                 on_delivered: Callable[[ClaimedRow, float], None] | None = None,
                 on_failed: Callable[[ClaimedRow, BridgeError], None] | None = None,
                 rng: random.Random | None = None, clock: Callable[[], datetime] = _utcnow,
                 instance: str | None = None,
                 on_circuit: Callable[[CircuitState], None] | None = None) -> None:
        self.engine = dispatch_engine(engine)
        self._own_engine = self.engine is not engine
        # Claims and settles of all workers share SQLite write transactions (turns.py).
        self.turns = WriteTurns(self.engine)
        self.subscribers = [s for s in subscribers if s.enabled]
        self.instance = instance or f"{os.uname().nodename[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.on_delivered = on_delivered
        self.on_failed = on_failed
        self.on_circuit = on_circuit
        self._clock = clock
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        # Single-process databases (SQLite): leases left by a killed predecessor can be dropped at once.
        if release_leases_on_start is None:
            release_leases_on_start = single_process(engine)
        self._release_on_start = release_leases_on_start
        self._groups: dict[str, list[_Worker]] = {}
        self.circuits: dict[str, Circuit] = {}
        for sub in self.subscribers:
            group = self._groups.setdefault(sub.name, [])
            circuit = self.circuits.setdefault(sub.name, Circuit(
                sub.name, probe_cap_s=getattr(sub, "probe_cap_s", DEFAULT_PROBE_CAP_S),
                probe_base_s=sub.retry_base_s, on_change=self._circuit_changed))
            # Single events: the claim is split between the workers, so a sibling woken by a
            # full claim finds heads left to take instead of idling while one worker POSTs all.
            per_claim = max(1, -(-batch_rows // max(1, workers)))
            group.extend(_Worker(self, sub, i, transport_factory(sub), RetryPolicy.from_subscriber(sub),
                                 per_claim, poll_interval_s, group, circuit) for i in range(max(1, workers)))
        self._workers = [w for group in self._groups.values() for w in group]

    def start(self) -> None:
        if self._release_on_start:
            with self.engine.begin() as conn:
                released = queries.release_leases(conn)
            if released:
                log.info("released %d outbox leases left by a previous run", released)
        for w in self._workers:
            w.start()

    def notify(self, subscribers: Iterable[str] | None = None) -> None:
        """New rows were committed (OutboxWriter.on_commit): wake one idle worker per subscriber
        (only of `subscribers` when given). Waking every worker on every 5 ms commit made dozens of
        threads probe the database for nothing; a worker that claims a full batch wakes a sibling,
        so a burst still gets all workers."""
        wanted = None if subscribers is None else set(subscribers)
        for group in self._groups.values():
            if wanted is None or group[0].sub.name in wanted:
                _wake_one(group)

    def pending_counts(self) -> dict[str, int]:
        with reader(self.engine).connect() as conn:
            return queries.count_status(conn, PENDING)

    def dead_counts(self) -> dict[str, int]:
        with reader(self.engine).connect() as conn:
            return queries.count_status(conn, DEAD)

    def circuit_states(self) -> list[CircuitState]:
        return [c.snapshot() for c in self.circuits.values()]

    def _circuit_changed(self, state: CircuitState) -> None:
        if state.state == OPEN:
            log.warning("subscriber %s unreachable (%d failures in a row): circuit open, probing every "
                        "%g s at most; last error: %s", state.subscriber, state.failures,
                        self.circuits[state.subscriber].probe_cap_s, state.last_error)
        else:
            log.warning("subscriber %s answers again: circuit closed, delivering the backlog", state.subscriber)
        if self.on_circuit is not None:
            try:
                self.on_circuit(state)
            except Exception:
                log.exception("circuit hook failed")

    def _circuit_closed(self, subscriber: str) -> None:
        """Rows that failed just before the circuit opened still carry their own backoff: make
        them due too, then get every worker of the subscriber draining."""
        released = self.turns.run(lambda conn: queries.release_outage(conn, subscriber, self._clock()))
        if released:
            log.info("subscriber %s: %d row(s) held back by the outage are due now", subscriber, released)
        for w in self._groups.get(subscriber, ()):
            w.wake.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop claiming; in-flight deliveries finish and are settled (bounded by `timeout_s`)."""
        for w in self._workers:
            w.stopping.set()
            w.wake.set()
        deadline = time.monotonic() + timeout_s
        for w in self._workers:
            w.join(max(0.0, deadline - time.monotonic()))
        for w in self._workers:
            if not w.is_alive():
                w.transport.close()
        if self._own_engine and not any(w.is_alive() for w in self._workers):
            self.engine.dispose()

    def _jitter(self, policy: RetryPolicy, attempt: int, created_at, now, retry_after_s):
        with self._rng_lock:
            return policy.next_attempt_at(attempt, created_at, now, self._rng, retry_after_s)


def _wake_one(group: list["_Worker"]) -> None:
    idle = next((w for w in group if w.idle), None)
    (idle or group[0]).wake.set()


class _Worker(threading.Thread):
    """Claims and delivers one subscriber's rows until stopped."""

    def __init__(self, owner: Dispatcher, sub, index: int, transport, policy: RetryPolicy,
                 batch_rows: int, poll_interval_s: float, group: list["_Worker"], circuit: Circuit) -> None:
        super().__init__(name=f"outbox-{sub.name}-{index}", daemon=True)
        self.owner, self.sub, self.transport, self.policy = owner, sub, transport, policy
        self.circuit = circuit
        self.batch_max = max(1, getattr(sub, "batch_max", 1))
        self.linger_s = getattr(sub, "batch_linger_s", 0.0) if self.batch_max > 1 else 0.0
        # Batched: one claim is one PushEvents (heads of distinct calls, so a batch never holds two
        # events of a call and no event waits behind a later one of its own call).
        self.batch_rows = self.batch_max if self.batch_max > 1 else batch_rows
        self.poll_interval_s = poll_interval_s
        self.token = f"{owner.instance}/{index}"[:64]
        self.lease_s = sub.connect_timeout_s + sub.read_timeout_s + self.linger_s + LEASE_MARGIN_S
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.idle = False             # waiting for work (notify() prefers idle workers)
        self.group = group            # this subscriber's workers, self included

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                worked = self._round()
            except BridgeError as exc:
                log.error("outbox worker %s: %s", self.name, exc)
                worked = False
                self.stopping.wait(DB_ERROR_WAIT_S)
            except SQLAlchemyError as exc:
                log.error("outbox worker %s: database error %s: %s", self.name, type(exc).__name__,
                          queries.short_error(str(getattr(exc, "orig", None) or exc))[:200])
                worked = False
                self.stopping.wait(DB_ERROR_WAIT_S)
            except Exception:
                log.exception("outbox worker %s failed; continuing", self.name)
                worked = False
                self.stopping.wait(DB_ERROR_WAIT_S)
            if not worked:
                # Drain-then-wait: only sleep when a round found nothing to do. While the circuit
                # is open, wake for the next probe (another worker may hold the current one).
                wait = self.poll_interval_s
                if self.circuit.is_open:
                    wait = min(wait, max(CIRCUIT_POLL_S, self.circuit.wait_s()))
                self.idle = True
                self.wake.wait(wait)
                self.idle = False
                self.wake.clear()

    def _round(self) -> bool:
        gate = self.circuit.admit()
        if gate is None:
            return False                    # open: another worker probes, or the probe is not due
        probe = gate == PROBE
        try:
            rows = self._claim(1 if probe else self.batch_rows)
        except BaseException:
            if probe:
                self.circuit.probe_unused()
            raise
        if not rows:
            if probe:
                self.circuit.probe_unused()
            return False
        if not probe and len(rows) < self.batch_rows and self.linger_s > 0 \
                and not self.stopping.wait(self.linger_s):
            rows += self._claim(self.batch_rows - len(rows))   # let a batch fill (batch_linger)
        if len(rows) == self.batch_rows:   # more may be waiting: get a sibling going too
            _wake_one([w for w in self.group if w is not self] or [self])
        out = _Outcome()
        units = [rows] if self.batch_max > 1 else [[row] for row in rows]
        try:
            for unit in units:
                # Once the circuit opened (here or in a sibling), the rest of the claim is released
                # unsent: it waits behind the gate with its attempts untouched.
                if self.circuit.is_open and not probe:
                    break
                self._send(unit, probe, out)
        except BaseException:
            if probe and not out.probe_reported:   # an unexpected error: let the next probe go
                self.circuit.probe_unused()
            raise
        settled_at = self.owner._clock()
        settled = set(out.delivered_ids) | {r[0] for r in out.retries} | {d[0] for d in out.dead}
        unsent = [r.id for r in rows if r.id not in settled]

        def settle(conn) -> None:
            queries.mark_delivered(conn, out.delivered_ids, settled_at)
            queries.schedule_retry(conn, out.retries)
            queries.mark_dead(conn, out.dead)
            queries.release_rows(conn, unsent)

        self.owner.turns.run(settle)
        self._report(out.reports, settled_at)
        if out.closed:
            self.owner._circuit_closed(self.sub.name)
        return True

    def _claim(self, limit: int) -> list[ClaimedRow]:
        now = self.owner._clock()
        turns = self.owner.turns
        # A read-only probe first on SQLite: a claim is a write transaction that queues behind the
        # ingest commit's fsync, so an idle subscriber should not take the write lock for nothing.
        # PostgreSQL locks rows, not the database: the probe would only cost a round trip.
        if turns.shared:
            with reader(self.owner.engine).connect() as conn:
                if not queries.has_due(conn, self.sub.name, now):
                    return []
        lease_until = now + timedelta(seconds=self.lease_s)
        return turns.run(lambda conn: queries.claim_batch(conn, self.sub.name, limit, now, lease_until, self.token))

    def _send(self, unit: list[ClaimedRow], probe: bool, out: "_Outcome") -> None:
        """POST one row (PushEvent) or one batch (PushEvents), record the outcome of each row."""
        try:
            if self.batch_max > 1:
                self.transport.push_events([(row.event_uuid, row.payload) for row in unit])
            else:
                self.transport.push_event(unit[0].event_uuid, unit[0].payload)
        except DeliveryError as exc:
            out.probe_reported |= probe
            if is_transport_failure(exc):
                self.circuit.failed(exc, probe)
                for row in unit:
                    self._failed(row, exc, out, "unreachable", outage=self.circuit.is_open)
                return
            out.closed |= self.circuit.answered(probe)
            if len(unit) > 1:
                # The batch was refused as a whole (all-or-nothing): send its events one by one,
                # so only the event(s) the ERP refuses keep a backoff and the other calls move on.
                for row in unit:
                    if self.circuit.is_open:
                        break
                    self._send([row], False, out)
                return
            self._failed(unit[0], exc, out, "rejected" if isinstance(exc, DeliveryRejected) else "failed")
        else:
            out.probe_reported |= probe
            out.closed |= self.circuit.answered(probe)
            out.delivered_ids.extend(row.id for row in unit)
            out.reports.extend((row, None) for row in unit)

    def _failed(self, row: ClaimedRow, exc: DeliveryError, out: "_Outcome", kind: str,
                outage: bool = False) -> None:
        attempt = row.attempts + 1
        now = self.owner._clock()
        retry_after = getattr(exc, "retry_after_s", None)
        at = self.owner._jitter(self.policy, attempt, row.created_at, now, retry_after)
        out.reports.append((row, exc))
        if at is None:
            out.dead.append((row.id, f"attempt {attempt} {kind}: {exc}"))
            log.error("outbox row %d (%s → %s) is dead after %d attempts: %s", row.id, row.event_name,
                      self.sub.name, attempt, exc)
            return
        if outage:
            # Behind an open circuit the row stays due: the circuit decides when to try again,
            # and closing it must find the whole backlog due (no per-row minutes of backoff).
            at = now
        out.retries.append((row.id, at, f"attempt {attempt} {kind}: {exc}"))
        log.log(logging.INFO if outage else logging.WARNING,
                "delivery of row %d (%s) to %s %s (attempt %d), %s: %s", row.id, row.event_name, self.sub.name,
                kind, attempt, "held until the circuit closes" if outage
                else f"retry in {(at - now).total_seconds():.1f} s", exc)

    def _report(self, outcomes, settled_at: datetime) -> None:
        for row, exc in outcomes:
            try:
                if exc is None and self.owner.on_delivered is not None:
                    self.owner.on_delivered(row, (settled_at - row.created_at).total_seconds())
                elif exc is not None and self.owner.on_failed is not None:
                    self.owner.on_failed(row, exc)
            except Exception:
                log.exception("outbox delivery hook failed")


@dataclass
class _Outcome:
    """What one round did to its rows, settled in one transaction."""

    delivered_ids: list[int] = field(default_factory=list)
    retries: list[tuple[int, datetime, str]] = field(default_factory=list)
    dead: list[tuple[int, str]] = field(default_factory=list)
    reports: list[tuple[ClaimedRow, BridgeError | None]] = field(default_factory=list)
    closed: bool = False            # an answer from the ERP closed the circuit
    probe_reported: bool = False    # the probe's outcome reached the circuit
