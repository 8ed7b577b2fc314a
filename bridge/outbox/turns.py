"""Write turns: the dispatcher's short write transactions, shared and spaced out on SQLite.

SQLite has one writer. With 20 subscribers × 2 workers, every claim and every settle was its own
BEGIN IMMEDIATE … COMMIT, each queuing for the write lock behind the others and behind the ingest
commit: 20 subscribers cost 20× the transactions of one, and the lock was almost never free, so
another process waiting for it (busy_timeout polls the lock at 1, 2, 5 … 100 ms intervals) could
starve (tests/chaos/test_db_faults.py, BRIDGE_CHAOS_FULL=1).

WriteTurns.run(fn) runs `fn(conn)` in a write transaction shared with whatever other threads asked
meanwhile (group commit, as the ingest writer does for rows): the thread that gets the turn runs
every queued job, each in its own SAVEPOINT so one failing job rolls back alone, commits once and
hands each caller its own result or exception. A job asked while a transaction runs waits for the
next one; between two of them there is a gap of GAP_S in which this process does not take the
lock, so an outside writer gets its turn, and the jobs of the gap share the next transaction.

PostgreSQL has row locks and no single writer: run() is a plain transaction per job there.
Every transaction here is dispatcher bookkeeping, so it commits with relaxed durability
(queries.relax_durability: losing one re-sends an event with its same id).
"""

from __future__ import annotations

import threading
import time
from typing import Callable, TypeVar

from sqlalchemy.engine import Connection, Engine

from bridge.outbox import queries
from bridge.outbox.db import single_process

R = TypeVar("R")

# 2 ms: longer than SQLite's first busy-handler sleeps (1, 2 ms), so a waiting process that polls
# finds the lock free within a few turns; short next to a delivery round (tens of ms of POSTs).
GAP_S = 0.002


class _Job:
    __slots__ = ("fn", "result", "error", "done")

    def __init__(self, fn: Callable[[Connection], object]) -> None:
        self.fn = fn
        self.result: object = None
        self.error: BaseException | None = None
        self.done = False


class WriteTurns:
    """Runs `fn(conn)` in a write transaction of `engine`; on SQLite several threads' jobs share one."""

    def __init__(self, engine: Engine, *, gap_s: float = GAP_S) -> None:
        self.engine = engine
        self.shared = single_process(engine)    # SQLite: one writer at a time
        self.gap_s = gap_s
        self._queue: list[_Job] = []
        self._queue_lock = threading.Lock()
        self._turn = threading.Lock()        # held by the thread running a transaction for all
        self._next_start = 0.0               # monotonic time before which no new transaction begins
        self.transactions = 0                # committed or failed transactions (for tests and benchmarks)
        self.jobs = 0

    def run(self, fn: Callable[[Connection], R]) -> R:
        if not self.shared:
            with self.engine.begin() as conn:
                queries.relax_durability(conn)
                result = fn(conn)
            self.transactions += 1
            self.jobs += 1
            return result
        job = _Job(fn)
        with self._queue_lock:
            self._queue.append(job)
        with self._turn:
            if not job.done:                 # nobody took it along: this thread runs the next transaction
                self._run_queued()
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]

    def _run_queued(self) -> None:
        wait = self._next_start - time.monotonic()
        if wait > 0:
            time.sleep(wait)                 # the gap: others' jobs queue up meanwhile
        with self._queue_lock:
            jobs, self._queue = self._queue, []
        try:
            with self.engine.begin() as conn:
                queries.relax_durability(conn)
                for job in jobs:
                    savepoint = conn.begin_nested()
                    try:
                        job.result = job.fn(conn)
                    except Exception as exc:   # this job alone fails; the others still commit
                        savepoint.rollback()
                        job.error = exc
                    else:
                        savepoint.commit()
        except Exception as exc:             # BEGIN or COMMIT failed: nothing of this transaction holds
            for job in jobs:
                if job.error is None:
                    job.result, job.error = None, exc
        finally:
            self._next_start = time.monotonic() + self.gap_s
            self.transactions += 1
            self.jobs += len(jobs)
            for job in jobs:
                job.done = True
