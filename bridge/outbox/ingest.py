"""OutboxWriter: accepts routed events from AMI threads and group-commits them to the outbox."""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Sequence

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from bridge.backoff import Backoff
from bridge.errors import NotLeader
from bridge.events.model import BridgeEvent, queued_cost
from bridge.outbox import queries
from bridge.outbox.models import PENDING

log = logging.getLogger(__name__)

# A failed batch commit is retried after 0.1, 0.2, 0.4 … 5 s: no jitter, this is one writer and its database.
DB_RETRY = Backoff(base_s=0.1, cap_s=5.0, jitter=False)
IDLE_WAIT_S = 0.2              # how long the writer blocks on an empty queue before checking stop
BACKPRESSURE_LOG_INTERVAL_S = 10.0
# With a backlog of more than one batch already queued, commit up to this many batches' worth in
# one transaction: those events gain nothing from separate fsyncs (each would wait for the ones
# before it), and fewer fsyncs is what makes SQLite ingest fast (500 → 4,000 rows per commit
# measured 13.6k → 18–21k events/s with FULL sync on this host).
BACKLOG_BATCH_FACTOR = 8
BUILT_BATCHES_MAX = 2          # built batches waiting for the committer (pipelining depth)


@dataclass
class WriterStats:
    accepted: int = 0           # events handed to accept() (with at least one subscriber)
    committed: int = 0          # events whose rows are committed (= accepted by the bridge's promise)
    rows: int = 0               # outbox rows committed (events × subscribers)
    batches: int = 0
    backpressure_waits: int = 0  # accept() calls that found the queue full and had to wait
    db_failures: int = 0
    refused: int = 0            # events whose commit the commit_guard refused (HA: handed back)


def outbox_rows(event: BridgeEvent, subscribers: Sequence[str], payload: str, now: datetime,
                status: str = PENDING) -> list[dict]:
    """The outbox rows (one per subscriber) for an accepted event, due at once."""
    return [{"event_uuid": event.event_uuid, "subscriber": sub, "server": event.server,
             "event_name": event.name, "order_key": event.order_key or event.event_uuid,
             "payload": payload, "status": status, "attempts": 0, "next_attempt_at": now,
             "event_time": event.time, "created_at": now,
             "last_error": None if status == PENDING else "envelope build failed"} for sub in subscribers]


class OutboxWriter(threading.Thread):
    """EventSink for the Pipeline. accept() only queues; two threads turn events into committed rows.

    This thread collects a batch and builds its rows (the PushEvent envelope is built here, once,
    so the stored payload is exactly what is sent); a committer thread inserts it in one
    transaction. The two overlap: sqlite3 and psycopg release the GIL while the database works, so
    envelopes of batch k+1 are built during the fsync of batch k. A batch is flushed when it holds
    `batch_max_events` events or `batch_max_delay_s` after its first event arrived (defaults 500 /
    5 ms: added latency is the window plus one commit); when more than a batch is already queued,
    batches grow to BACKLOG_BATCH_FACTOR × that. A full queue blocks accept() (backpressure,
    counted); nothing is dropped. If the database is down, the same batch is retried with backoff
    until it commits.
    """

    def __init__(self, engine: Engine, batch_max_events: int = 500, batch_max_delay_s: float = 0.005,
                 queue_max_events: int = 100_000, queue_max_bytes: int = 64 * 1024 * 1024, *,
                 envelope_builder: Callable[[BridgeEvent], str],
                 on_commit: Callable[[Sequence[BridgeEvent], int, set[str]], None] | None = None,
                 clock: Callable[[], datetime] | None = None,
                 commit_guard: Callable[[Connection, set[str]], None] | None = None,
                 on_refused: Callable[[list[tuple[BridgeEvent, tuple[str, ...]]]], None] | None = None) -> None:
        super().__init__(name="outbox-writer", daemon=True)
        self.engine = engine
        self.batch_max_events = max(1, batch_max_events)
        self.batch_max_delay_s = batch_max_delay_s
        self.envelope_builder = envelope_builder
        self.on_commit = on_commit
        # HA fencing (bridge.ha): run inside the insert transaction just before COMMIT with the
        # batch's servers; NotLeader(servers) rolls back, those servers' events go to on_refused
        # and the rest of the batch is committed without them.
        self.commit_guard = commit_guard
        self.on_refused = on_refused
        self.stats = WriterStats()
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, queue_max_events))
        # The queue is bounded in bytes too (the events' AMI text): 100,000 events of binary
        # garbage at the parser's 64 KiB message cap would otherwise be 6 GiB.
        self.queue_max_bytes = max(1, queue_max_bytes)
        self._queued_bytes = 0
        self._room = threading.Condition()
        self._batch_bytes: queue.Queue = queue.Queue()   # bytes of each collected batch, in order
        # Built batches waiting for the committer; small, so a stuck database backs up into _queue
        # (where accept() applies backpressure) rather than into memory here.
        self._built: queue.Queue = queue.Queue(maxsize=BUILT_BATCHES_MAX)
        self._committer = threading.Thread(target=self._commit_loop, name="outbox-committer", daemon=True)
        self._stopping = threading.Event()
        self._flush_on_stop = True
        self._lock = threading.Lock()
        self._last_bp_log = 0.0

    @classmethod
    def from_config(cls, engine: Engine, cfg, **kw) -> "OutboxWriter":
        return cls(engine, cfg.batch_max_events, cfg.batch_max_delay_s, cfg.queue_max_events,
                   cfg.queue_max_bytes, **kw)

    def accept(self, event: BridgeEvent, subscribers: Sequence[str]) -> None:
        """Queue `event` for `subscribers`; blocks while the queue is full (never drops)."""
        if not subscribers:
            return
        size = queued_cost(event)
        item = (event, tuple(subscribers), size)
        with self._room:
            if self._queued_bytes and self._queued_bytes + size > self.queue_max_bytes:
                with self._lock:
                    self.stats.backpressure_waits += 1
                self._log_backpressure()
                # One event larger than the bound alone still passes (the queue is then empty).
                while self._queued_bytes and self._queued_bytes + size > self.queue_max_bytes:
                    self._room.wait(IDLE_WAIT_S)
            self._queued_bytes += size
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            with self._lock:
                self.stats.backpressure_waits += 1
            self._log_backpressure()
            self._queue.put(item)
        with self._lock:
            self.stats.accepted += 1

    @property
    def queued(self) -> int:
        """Events accepted but not yet committed (queued or in a built batch)."""
        with self._lock:
            return self.stats.accepted - self.stats.committed - self.stats.refused

    @property
    def settled(self) -> int:
        """Events accepted so far whose fate is decided (committed or refused), in accept order."""
        with self._lock:
            return self.stats.committed + self.stats.refused

    def start(self) -> None:
        self._committer.start()
        super().start()

    def stop(self, flush: bool = True, timeout_s: float | None = 30.0) -> None:
        """Stop the writer; with flush=True everything queued is committed first."""
        self._flush_on_stop = flush
        self._stopping.set()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for thread in (self, self._committer):
            if thread.is_alive():
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        left = self.queued
        if left:
            log.error("outbox writer stopped with %d events not committed (database unavailable?)", left)

    def run(self) -> None:
        try:
            while True:
                batch = self._collect()
                if batch:
                    self._built.put((batch, self._rows(batch, self._clock())))
                elif self._stopping.is_set():
                    return
                if self._stopping.is_set() and not self._flush_on_stop:
                    return
        finally:
            self._built.put(None)  # tells the committer that nothing more comes

    def _collect(self) -> list[tuple[BridgeEvent, tuple[str, ...]]]:
        batch = self._collect_items()
        # The bytes stay counted until the batch is committed (_release): with the database
        # stuck, built batches waiting to commit are memory too.
        if batch:
            self._batch_bytes.put(sum(size for _, _, size in batch))
        return [(event, subs) for event, subs, _ in batch]

    def _release(self) -> None:
        size = self._batch_bytes.get_nowait()
        with self._room:
            self._queued_bytes -= size
            self._room.notify_all()

    def _collect_items(self) -> list:
        try:
            first = self._queue.get(timeout=0 if self._stopping.is_set() else IDLE_WAIT_S)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.batch_max_delay_s
        limit = self.batch_max_events
        if self._queue.qsize() >= limit:
            limit *= BACKLOG_BATCH_FACTOR
        while len(batch) < limit:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stopping.is_set():
                break
            try:
                batch.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _rows(self, batch, now: datetime) -> list[dict]:
        rows = []
        for event, subscribers in batch:
            try:
                payload = self.envelope_builder(event)
            except Exception:  # a bug in envelope building must not lose the rest of the batch
                log.exception("cannot build the PushEvent envelope for event %s; storing it dead",
                              event.event_uuid)
                payload, status = "", "dead"
            else:
                status = PENDING
            rows.extend(outbox_rows(event, subscribers, payload, now, status))
        return rows

    def _commit_loop(self) -> None:
        while True:
            item = self._built.get()
            if item is None:
                return
            batch, rows = item
            self._commit_with_retry(batch, rows)

    def _commit_with_retry(self, batch, rows: list[dict]) -> None:
        failures = 0
        while True:
            try:
                with self.engine.begin() as conn:
                    queries.insert_batch(conn, rows)
                    if self.commit_guard is not None:
                        self.commit_guard(conn, {event.server for event, _ in batch})
            except NotLeader as exc:
                batch, rows = self._refuse(batch, rows, exc.servers)
                if not batch:
                    break
                continue
            except SQLAlchemyError as exc:
                self.stats.db_failures += 1
                failures += 1
                delay = DB_RETRY.delay_s(failures)
                reason = queries.short_error(str(getattr(exc, "orig", None) or exc))[:200]
                log.error("outbox commit of %d events failed (%s: %s); retrying in %.1f s, %d more queued",
                          len(batch), type(exc).__name__, reason, delay, self._queue.qsize())
                # Keep retrying even while stopping: these events were accepted from AMI and the
                # only copy is in this process. stop()'s join timeout bounds how long we try.
                time.sleep(delay)
                now = self._clock()
                for row in rows:  # accepted = committed: stamp the time it finally commits
                    row["created_at"] = row["next_attempt_at"] = now
                continue
            break
        self._release()
        with self._lock:
            self.stats.committed += len(batch)
            self.stats.rows += len(rows)
            self.stats.batches += 1
        if self.on_commit is not None:
            try:
                self.on_commit([e for e, _ in batch], len(rows), {row["subscriber"] for row in rows})
            except Exception:
                log.exception("outbox on_commit hook failed")

    def _refuse(self, batch, rows: list[dict], servers: frozenset[str]):
        """Take the events of `servers` out of the batch and hand them to on_refused."""
        refused = [(event, subs) for event, subs in batch if event.server in servers]
        log.warning("outbox commit refused for %d event(s): %s", len(refused), NotLeader(servers))
        with self._lock:
            self.stats.refused += len(refused)
        if self.on_refused is not None:
            try:
                self.on_refused(refused)
            except Exception:
                log.exception("outbox on_refused hook failed")
        return ([(e, subs) for e, subs in batch if e.server not in servers],
                [row for row in rows if row["server"] not in servers])

    def _log_backpressure(self) -> None:
        now = time.monotonic()
        if now - self._last_bp_log >= BACKPRESSURE_LOG_INTERVAL_S:
            self._last_bp_log = now
            log.warning("outbox writer queue full (%d events or %d bytes): AMI intake waits for the "
                        "database (%d waits so far)", self._queue.maxsize, self.queue_max_bytes,
                        self.stats.backpressure_waits)
