"""ALL outbox SQL: inserting, claiming, settling and administering rows. Every SQLite/PostgreSQL
difference of the outbox lives here (SQL) or in db.py (engines, connections), nowhere else.

Theory of operation
- A row is *claimable* when it is pending, due (next_attempt_at <= now), not leased by a live
  dispatcher (locked_until is NULL or past), and no EARLIER row (smaller id) of the same
  (subscriber, order_key) is still pending. An in-flight row stays `pending` while leased, so it
  blocks its call's later rows too: a later event of a call is never sent before an earlier one
  has been settled. `id` order is the per-call sequence: one writer thread inserts one call's
  events in arrival order. Among calls, the oldest due row goes first (ix_outbox_claim order).
- Dead rows do NOT block later rows of their call (see README "outbox"): `dead` means "given up";
  blocking would silently hold every later event of that call until it died too. A dead row
  re-queued by `outbox retry` is pending again and, having the smaller id, blocks its call's
  still-pending later rows until it is delivered.
- PostgreSQL claims with one UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) so several
  processes share the outbox; SQLite runs the same UPDATE inside BEGIN IMMEDIATE (db.py), a short
  write transaction, since SQLite serialises writers anyway.
- Times are UTC. SQLite hands back naive datetimes; `aware()` fixes that at this boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Sequence

from sqlalchemy import bindparam, delete, func, literal_column, or_, select, update
from sqlalchemy.engine import Connection

from bridge.outbox.models import DEAD, DELIVERED, LAST_ERROR_MAX_CHARS, PENDING, OutboxRow

T = OutboxRow.__table__


def aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class ClaimedRow:
    id: int
    event_uuid: str
    subscriber: str
    order_key: str
    event_name: str
    payload: str
    attempts: int
    created_at: datetime


# -- insert_batch: insert accepted rows; a row already present (same event_uuid, subscriber) is skipped.
def insert_batch(conn: Connection, rows: Sequence[dict]) -> None:
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    # ON CONFLICT DO NOTHING makes re-running a batch whose COMMIT reply was lost harmless.
    conn.execute(insert(T).on_conflict_do_nothing(index_elements=["event_uuid", "subscriber"]), list(rows))


# -- relax_durability: this transaction may be lost on a database crash (dispatcher bookkeeping only).
def relax_durability(conn: Connection) -> None:
    # Leases and delivery outcomes: losing one on a server crash only re-sends an event with its
    # same id, so they need not wait for the WAL flush (PostgreSQL's synchronous_commit). SQLite
    # gets the same effect from the dispatcher's synchronous=NORMAL engine (dispatcher.py).
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


# -- claim_batch: lease up to `limit` claimable rows of one subscriber to `token` until `lease_until`.
def claim_batch(conn: Connection, subscriber: str, limit: int, now: datetime, lease_until: datetime,
                token: str) -> list[ClaimedRow]:
    cand, earlier = T.alias("cand"), T.alias("earlier")
    # 'pending' is inlined, not bound: only a literal lets SQLite and PostgreSQL (generic plans)
    # prove the partial indexes ix_outbox_claim / ix_outbox_order apply.
    pending = literal_column("'pending'")
    # "cand is the head of its call": a correlated scalar subquery rather than NOT EXISTS, because
    # PostgreSQL may turn NOT EXISTS into an anti-join that scans a subscriber's whole pending set
    # per candidate when statistics are stale (seen: 200 ms claims on a young 10k-row table); a
    # min() subquery always runs as one index probe on ix_outbox_order per candidate.
    head_id = (select(func.min(earlier.c.id))
               .where(earlier.c.subscriber == cand.c.subscriber,
                      earlier.c.order_key == cand.c.order_key,
                      earlier.c.status == pending)
               .scalar_subquery())
    ids = (select(cand.c.id)
           .where(cand.c.subscriber == subscriber, cand.c.status == pending,
                  cand.c.next_attempt_at <= now,
                  or_(cand.c.locked_until.is_(None), cand.c.locked_until < now),
                  cand.c.id == head_id)
           .order_by(cand.c.next_attempt_at, cand.c.id).limit(limit))
    if conn.dialect.name == "postgresql":
        ids = ids.with_for_update(skip_locked=True)
    stmt = (update(T).where(T.c.id.in_(ids.scalar_subquery()))
            .values(locked_until=lease_until, locked_by=token)
            .returning(T.c.id, T.c.event_uuid, T.c.subscriber, T.c.order_key, T.c.event_name,
                       T.c.payload, T.c.attempts, T.c.created_at))
    rows = [ClaimedRow(r.id, r.event_uuid, r.subscriber, r.order_key, r.event_name, r.payload,
                       r.attempts, aware(r.created_at)) for r in conn.execute(stmt)]
    rows.sort(key=lambda r: r.id)  # RETURNING order is unspecified
    return rows


# -- has_due: whether `subscriber` has a row worth claiming now (a read-only probe before claim_batch).
def has_due(conn: Connection, subscriber: str, now: datetime) -> bool:
    pending = literal_column("'pending'")  # inlined for the partial index, as in claim_batch
    stmt = (select(T.c.id)
            .where(T.c.subscriber == subscriber, T.c.status == pending, T.c.next_attempt_at <= now,
                   or_(T.c.locked_until.is_(None), T.c.locked_until < now))
            .limit(1))
    return conn.execute(stmt).first() is not None


# -- mark_delivered: settle rows as delivered at `now`, releasing their lease.
def mark_delivered(conn: Connection, ids: Iterable[int], now: datetime) -> None:
    params = [{"b_id": i} for i in ids]
    if params:
        conn.execute(update(T).where(T.c.id == bindparam("b_id"))
                     .values(status=DELIVERED, delivered_at=now, attempts=T.c.attempts + 1,
                             locked_until=None, locked_by=None), params)


# -- schedule_retry: count a failed attempt, keep pending, due again at the given time.
def schedule_retry(conn: Connection, retries: Iterable[tuple[int, datetime, str]]) -> None:
    params = [{"b_id": i, "b_next": at, "b_err": short_error(err)} for i, at, err in retries]
    if params:
        conn.execute(update(T).where(T.c.id == bindparam("b_id"))
                     .values(attempts=T.c.attempts + 1, next_attempt_at=bindparam("b_next"),
                             last_error=bindparam("b_err"), locked_until=None, locked_by=None), params)


# -- mark_dead: count the final failed attempt and give the row up (status dead).
def mark_dead(conn: Connection, dead: Iterable[tuple[int, str]]) -> None:
    params = [{"b_id": i, "b_err": short_error(err)} for i, err in dead]
    if params:
        conn.execute(update(T).where(T.c.id == bindparam("b_id"))
                     .values(status=DEAD, attempts=T.c.attempts + 1, last_error=bindparam("b_err"),
                             locked_until=None, locked_by=None), params)


# -- release_leases: drop the leases of pending rows (all, or one token's) so they are claimable now.
def release_leases(conn: Connection, token: str | None = None) -> int:
    stmt = update(T).where(T.c.status == PENDING, T.c.locked_until.is_not(None))
    if token is not None:
        stmt = stmt.where(T.c.locked_by == token)
    return conn.execute(stmt.values(locked_until=None, locked_by=None)).rowcount


# -- counts_by_status: (subscriber, status, count, oldest created_at) for every pair present.
def counts_by_status(conn: Connection) -> list[tuple[str, str, int, datetime | None]]:
    stmt = (select(T.c.subscriber, T.c.status, func.count(), func.min(T.c.created_at))
            .group_by(T.c.subscriber, T.c.status).order_by(T.c.subscriber, T.c.status))
    return [(s, st, n, aware(oldest)) for s, st, n, oldest in conn.execute(stmt)]


# -- count_status: number of rows with `status`, per subscriber (metrics gauges: pending, dead).
def count_status(conn: Connection, status: str) -> dict[str, int]:
    stmt = select(T.c.subscriber, func.count()).where(T.c.status == status).group_by(T.c.subscriber)
    return {s: n for s, n in conn.execute(stmt)}


# -- list_rows: newest-first rows without payload, optionally by status and subscriber.
def list_rows(conn: Connection, status: str | None = None, subscriber: str | None = None,
              limit: int = 50) -> list[dict]:
    cols = [c for c in T.c if c.name not in ("payload",)]
    stmt = select(*cols).order_by(T.c.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(T.c.status == status)
    if subscriber:
        stmt = stmt.where(T.c.subscriber == subscriber)
    return [_row_dict(r) for r in conn.execute(stmt)]


# -- get_row: one full row including payload, or None.
def get_row(conn: Connection, row_id: int) -> dict | None:
    r = conn.execute(select(T).where(T.c.id == row_id)).first()
    return _row_dict(r) if r is not None else None


# -- requeue: put a row (or every dead row, optionally one subscriber's) back to pending, attempts 0.
def requeue(conn: Connection, now: datetime, row_id: int | None = None, dead: bool = False,
            subscriber: str | None = None) -> int:
    stmt = update(T).values(status=PENDING, attempts=0, next_attempt_at=now, locked_until=None,
                            locked_by=None, delivered_at=None)
    if row_id is not None:
        stmt = stmt.where(T.c.id == row_id)
    elif dead:
        stmt = stmt.where(T.c.status == DEAD)
    else:
        raise ValueError("requeue needs a row id or dead=True")
    if subscriber:
        stmt = stmt.where(T.c.subscriber == subscriber)
    return conn.execute(stmt).rowcount


# -- purge: delete rows of `status` (delivered or dead) created before `before`.
def purge(conn: Connection, status: str, before: datetime) -> int:
    if status not in (DELIVERED, DEAD):
        raise ValueError("only delivered or dead rows can be purged")
    return conn.execute(delete(T).where(T.c.status == status, T.c.created_at < before)).rowcount


def short_error(text: str) -> str:
    """One line, bounded: last_error is for humans scanning a table."""
    line = " ".join(str(text).split())
    return line if len(line) <= LAST_ERROR_MAX_CHARS else line[:LAST_ERROR_MAX_CHARS - 1] + "…"


def _row_dict(r) -> dict:
    d = dict(r._mapping)
    for k, v in d.items():
        if isinstance(v, datetime):
            d[k] = aware(v)
    return d


# ---- delivery: circuit breaker and batching (issue 14b) ----------------------------------------

# -- release_rows: drop the leases of rows a worker claimed but did not send (the circuit opened).
def release_rows(conn: Connection, ids: Sequence[int]) -> None:
    params = [{"b_id": i} for i in ids]
    if params:
        conn.execute(update(T).where(T.c.id == bindparam("b_id"), T.c.status == PENDING)
                     .values(locked_until=None, locked_by=None), params)


# -- release_outage: make due now the pending rows of `subscriber` whose last attempt found the ERP
# unreachable (last_error "attempt N unreachable: …", dispatcher._Worker._failed) and that still
# wait on their own backoff: the rows that failed before the circuit opened. Rows failed while it
# was open are due already. Only failed heads of calls can have next_attempt_at > now, so this
# touches at most one row per call, found by the ix_outbox_claim range (subscriber, next_attempt_at).
def release_outage(conn: Connection, subscriber: str, now: datetime) -> int:
    pending = literal_column("'pending'")  # inlined for the partial index, as in claim_batch
    stmt = (update(T).where(T.c.subscriber == subscriber, T.c.status == pending, T.c.next_attempt_at > now,
                            T.c.last_error.like("attempt % unreachable:%"))
            .values(next_attempt_at=now))
    return conn.execute(stmt).rowcount
