"""Dispatcher: per-subscriber worker threads that claim due outbox rows and POST them to the ERP."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable, Sequence

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from bridge.errors import BridgeError, DeliveryError, DeliveryRejected
from bridge.outbox import queries
from bridge.outbox.db import dispatch_engine, reader, single_process
from bridge.outbox.models import DEAD, PENDING
from bridge.outbox.queries import ClaimedRow
from bridge.outbox.retry import RetryPolicy

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.5          # idle workers look for due rows this often (other processes, retries)
DB_ERROR_WAIT_S = 1.0          # back off after the database failed a claim or a settle
LEASE_MARGIN_S = 60.0          # a lease outlives the slowest possible POST by this much
CLAIM_BATCH_ROWS = 50


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Dispatcher:
    """Delivers pending rows: `workers` threads per subscriber, so one slow ERP delays no other.

    Each worker claims up to `batch_rows` rows (heads of distinct calls: see queries.claim_batch),
    POSTs them one by one over its own keep-alive session and settles the whole batch in one
    transaction. A crash between POST and settle redelivers with the same id (at least once).
    """

    def __init__(self, engine: Engine, subscribers: Sequence, workers: int = 2, *,
                 transport_factory: Callable, batch_rows: int = CLAIM_BATCH_ROWS,
                 poll_interval_s: float = POLL_INTERVAL_S, release_leases_on_start: bool | None = None,
                 on_delivered: Callable[[ClaimedRow, float], None] | None = None,
                 on_failed: Callable[[ClaimedRow, BridgeError], None] | None = None,
                 rng: random.Random | None = None, clock: Callable[[], datetime] = _utcnow,
                 instance: str | None = None) -> None:
        self.engine = dispatch_engine(engine)
        self._own_engine = self.engine is not engine
        self.subscribers = [s for s in subscribers if s.enabled]
        self.instance = instance or f"{os.uname().nodename[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.on_delivered = on_delivered
        self.on_failed = on_failed
        self._clock = clock
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        # Single-process databases (SQLite): leases left by a killed predecessor can be dropped at once.
        if release_leases_on_start is None:
            release_leases_on_start = single_process(engine)
        self._release_on_start = release_leases_on_start
        self._groups: dict[str, list[_Worker]] = {}
        for sub in self.subscribers:
            group = self._groups.setdefault(sub.name, [])
            group.extend(_Worker(self, sub, i, transport_factory(sub), RetryPolicy.from_subscriber(sub),
                                 batch_rows, poll_interval_s, group) for i in range(max(1, workers)))
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
                 batch_rows: int, poll_interval_s: float, group: list["_Worker"]) -> None:
        super().__init__(name=f"outbox-{sub.name}-{index}", daemon=True)
        self.owner, self.sub, self.transport, self.policy = owner, sub, transport, policy
        self.batch_rows, self.poll_interval_s = batch_rows, poll_interval_s
        self.token = f"{owner.instance}/{index}"[:64]
        self.lease_s = sub.connect_timeout_s + sub.read_timeout_s + LEASE_MARGIN_S
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
                # Drain-then-wait: only sleep when a round found nothing to do.
                self.idle = True
                self.wake.wait(self.poll_interval_s)
                self.idle = False
                self.wake.clear()

    def _round(self) -> bool:
        now = self.owner._clock()
        # A read-only probe first: on SQLite a claim is a write transaction that queues behind the
        # ingest commit's fsync, so an idle subscriber should not take the write lock for nothing.
        with reader(self.owner.engine).connect() as conn:
            if not queries.has_due(conn, self.sub.name, now):
                return False
        with self.owner.engine.begin() as conn:
            queries.relax_durability(conn)
            rows = queries.claim_batch(conn, self.sub.name, self.batch_rows, now,
                                       now + timedelta(seconds=self.lease_s), self.token)
        if not rows:
            return False
        if len(rows) == self.batch_rows:   # more may be waiting: get a sibling going too
            _wake_one([w for w in self.group if w is not self] or [self])
        delivered, retries, dead = [], [], []
        outcomes: list[tuple[ClaimedRow, BridgeError | None]] = []
        for row in rows:
            # Rows of a batch are heads of distinct calls, so a failure here never reorders a call.
            try:
                self.transport.push_event(row.event_uuid, row.payload)
            except DeliveryError as exc:
                self._failed(row, exc, retries, dead)
                outcomes.append((row, exc))
            else:
                delivered.append(row.id)
                outcomes.append((row, None))
        settled_at = self.owner._clock()
        with self.owner.engine.begin() as conn:
            queries.relax_durability(conn)
            queries.mark_delivered(conn, delivered, settled_at)
            queries.schedule_retry(conn, retries)
            queries.mark_dead(conn, dead)
        self._report(outcomes, settled_at)
        return True

    def _failed(self, row: ClaimedRow, exc: DeliveryError, retries: list, dead: list) -> None:
        attempt = row.attempts + 1
        now = self.owner._clock()
        retry_after = getattr(exc, "retry_after_s", None)
        at = self.owner._jitter(self.policy, attempt, row.created_at, now, retry_after)
        kind = "rejected" if isinstance(exc, DeliveryRejected) else "failed"
        if at is None:
            dead.append((row.id, f"attempt {attempt} {kind}: {exc}"))
            log.error("outbox row %d (%s → %s) is dead after %d attempts: %s", row.id, row.event_name,
                      self.sub.name, attempt, exc)
        else:
            retries.append((row.id, at, f"attempt {attempt} {kind}: {exc}"))
            log.warning("delivery of row %d (%s) to %s %s (attempt %d), retry in %.1f s: %s", row.id,
                        row.event_name, self.sub.name, kind, attempt, (at - now).total_seconds(), exc)

    def _report(self, outcomes, settled_at: datetime) -> None:
        for row, exc in outcomes:
            try:
                if exc is None and self.owner.on_delivered is not None:
                    self.owner.on_delivered(row, (settled_at - row.created_at).total_seconds())
                elif exc is not None and self.owner.on_failed is not None:
                    self.owner.on_failed(row, exc)
            except Exception:
                log.exception("outbox delivery hook failed")
