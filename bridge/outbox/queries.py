"""ALL outbox SQL: inserting, claiming, settling and administering rows. Every SQLite/PostgreSQL
difference of the outbox lives here (SQL) or in db.py (engines, connections), nowhere else.

Theory of operation
- A row is *claimable* when it is the HEAD of its chain (the smallest pending id of its
  (subscriber, order_key)), due, and not leased by a live dispatcher. Heads live in their own
  table, outbox_head (models.OutboxHead), one row per chain with pending rows, maintained in the
  same transaction as the rows: insert_batch creates the heads of new chains, a settle (delivered
  or dead) moves the head to the chain's next pending row (one probe of ix_outbox_order) or
  deletes it, a retry re-times it, requeue makes a re-queued row the head again when its id is
  smaller. A claim reads due heads by ix_outbox_head_due: its cost is the batch size, whatever
  the backlog or the length of a call's chain.
- An in-flight row stays `pending` and stays its chain's head while leased, so it blocks its
  call's later rows: a later event of a call is never sent before an earlier one has been
  settled. `id` order is the per-call sequence: one writer thread inserts one call's events in
  arrival order. Among calls, the oldest due head goes first.
- The lease (locked_until, locked_by) is on the head; leasing also moves the head's due time to
  the lease's end, so in-flight heads are out of the claim range and come back by themselves
  when a dead dispatcher's lease expires.
- Dead rows do NOT block later rows of their call (see README "outbox"): `dead` means "given up";
  blocking would silently hold every later event of that call until it died too. A dead row
  re-queued by `outbox retry` is pending again and, having the smaller id, becomes the head and
  blocks its call's still-pending later rows until it is delivered.
- PostgreSQL claims with one UPDATE … WHERE row_id IN (SELECT … FOR UPDATE SKIP LOCKED) so
  several processes share the outbox; SQLite runs the same UPDATE inside BEGIN IMMEDIATE (db.py),
  a short write transaction, since SQLite serialises writers anyway.
- Times are UTC. SQLite hands back naive datetimes; `aware()` fixes that at this boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Sequence

from sqlalchemy import any_, bindparam, delete, func, literal_column, select, update
from sqlalchemy.engine import Connection

from bridge.outbox.models import DEAD, DELIVERED, LAST_ERROR_MAX_CHARS, PENDING, OutboxHead, OutboxRow

T = OutboxRow.__table__
H = OutboxHead.__table__
# 'pending' inlined, not bound: only a literal lets SQLite and PostgreSQL (generic plans) prove
# the partial index ix_outbox_order applies.
PENDING_LITERAL = literal_column("'pending'")


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


def _insert(conn: Connection):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


# -- insert_batch: insert accepted rows; a row already present (same event_uuid, subscriber) is
# -- skipped. Creates the heads of the chains the inserted pending rows start. Returns rows inserted.
def insert_batch(conn: Connection, rows: Sequence[dict]) -> int:
    if not rows:
        return 0
    insert = _insert(conn)
    # ON CONFLICT DO NOTHING makes re-running a batch whose COMMIT reply was lost harmless (and
    # drops the overlap a new HA leader re-inserts); RETURNING names only the rows really inserted.
    stmt = (insert(T).on_conflict_do_nothing(index_elements=["event_uuid", "subscriber"])
            .returning(T.c.id, T.c.subscriber, T.c.order_key, T.c.status, T.c.next_attempt_at))
    inserted = conn.execute(stmt, list(rows)).all()
    first: dict[tuple[str, str], tuple] = {}
    for r in inserted:
        key = (r.subscriber, r.order_key)
        if r.status == PENDING and (key not in first or r.id < first[key].id):
            first[key] = r
    _upsert_heads(conn, [(r.subscriber, r.order_key, r.id, r.next_attempt_at) for r in first.values()])
    return len(inserted)


def _upsert_heads(conn: Connection, heads: Iterable[tuple[str, str, int, datetime]]) -> None:
    """Make each (subscriber, order_key, row_id, due) the head of its chain unless the chain's head
    already has a smaller id (an older pending row stays first). One entry per chain."""
    insert = _insert(conn)
    stmt = insert(H)
    stmt = stmt.on_conflict_do_update(
        index_elements=[H.c.subscriber, H.c.order_key],
        set_={"row_id": stmt.excluded.row_id, "next_attempt_at": stmt.excluded.next_attempt_at,
              "locked_until": None, "locked_by": None},
        where=H.c.row_id >= stmt.excluded.row_id)
    params = [{"subscriber": s, "order_key": k, "row_id": i, "next_attempt_at": at} for s, k, i, at in heads]
    if params:
        conn.execute(stmt, params)


# -- relax_durability: this transaction may be lost on a database crash (dispatcher bookkeeping only).
def relax_durability(conn: Connection) -> None:
    # Leases and delivery outcomes: losing one on a server crash only re-sends an event with its
    # same id, so they need not wait for the WAL flush (PostgreSQL's synchronous_commit). SQLite
    # gets the same effect from the dispatcher's synchronous=NORMAL engine (dispatcher.py).
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


# -- claim_batch: lease up to `limit` due heads of one subscriber to `token` until `lease_until`.
def claim_batch(conn: Connection, subscriber: str, limit: int, now: datetime, lease_until: datetime,
                token: str) -> list[ClaimedRow]:
    due = (select(H.c.row_id).where(H.c.subscriber == subscriber, H.c.next_attempt_at <= now)
           .order_by(H.c.next_attempt_at, H.c.row_id).limit(limit))
    if conn.dialect.name == "postgresql":
        # = ANY(ARRAY(subquery)): the chosen ids become one value computed first, so the UPDATE
        # probes uq_outbox_head_row_id for them; with IN (subquery) PostgreSQL may hash-join the
        # whole head table instead (tests/outbox/test_plans.py).
        chosen = H.c.row_id == any_(func.array(due.with_for_update(skip_locked=True).scalar_subquery()))
    else:
        chosen = H.c.row_id.in_(due.scalar_subquery())
    lease = (update(H).where(chosen)
             .values(next_attempt_at=lease_until, locked_until=lease_until, locked_by=token)
             .returning(H.c.row_id))
    ids = [i for (i,) in conn.execute(lease)]
    if not ids:
        return []
    stmt = (select(T.c.id, T.c.event_uuid, T.c.subscriber, T.c.order_key, T.c.event_name, T.c.payload,
                   T.c.attempts, T.c.created_at)
            .where(T.c.id.in_(ids)).order_by(T.c.id))
    return [ClaimedRow(r.id, r.event_uuid, r.subscriber, r.order_key, r.event_name, r.payload,
                       r.attempts, aware(r.created_at)) for r in conn.execute(stmt)]


# -- has_due: whether `subscriber` has a head worth claiming now (a read-only probe before claim_batch).
def has_due(conn: Connection, subscriber: str, now: datetime) -> bool:
    stmt = select(H.c.row_id).where(H.c.subscriber == subscriber, H.c.next_attempt_at <= now).limit(1)
    return conn.execute(stmt).first() is not None


# -- mark_delivered: settle rows as delivered at `now`; their chains move on to the next row.
def mark_delivered(conn: Connection, ids: Iterable[int], now: datetime) -> None:
    ids = list(ids)
    if ids:
        # One statement for the batch (the same values for every row): on PostgreSQL a statement
        # per row was a round trip per row.
        conn.execute(update(T).where(T.c.id.in_(ids))
                     .values(status=DELIVERED, delivered_at=now, attempts=T.c.attempts + 1))
        _advance_heads(conn, ids)


# -- schedule_retry: count a failed attempt, keep pending (and the chain's head), due again at the given time.
def schedule_retry(conn: Connection, retries: Iterable[tuple[int, datetime, str]]) -> None:
    params = [{"b_id": i, "b_next": at, "b_err": short_error(err)} for i, at, err in retries]
    if params:
        conn.execute(update(T).where(T.c.id == bindparam("b_id"))
                     .values(attempts=T.c.attempts + 1, next_attempt_at=bindparam("b_next"),
                             last_error=bindparam("b_err")), params)
        conn.execute(update(H).where(H.c.row_id == bindparam("b_id"))
                     .values(next_attempt_at=bindparam("b_next"), locked_until=None, locked_by=None),
                     [{"b_id": p["b_id"], "b_next": p["b_next"]} for p in params])


# -- mark_dead: count the final failed attempt and give the row up (status dead); its chain moves on.
def mark_dead(conn: Connection, dead: Iterable[tuple[int, str]]) -> None:
    params = [{"b_id": i, "b_err": short_error(err)} for i, err in dead]
    if params:
        conn.execute(update(T).where(T.c.id == bindparam("b_id"))
                     .values(status=DEAD, attempts=T.c.attempts + 1, last_error=bindparam("b_err")), params)
        _advance_heads(conn, [p["b_id"] for p in params])


def _advance_heads(conn: Connection, settled: list[int]) -> None:
    """The heads pointing at `settled` (rows no longer pending) move to their chain's next pending
    row, or go when the chain has none. A settled row that is no longer its chain's head (a
    re-queued older row took over) matches no head and changes nothing."""
    nxt = T.alias("nxt")
    chain = (nxt.c.subscriber == H.c.subscriber, nxt.c.order_key == H.c.order_key,
             nxt.c.status == PENDING_LITERAL)
    # min(id) rather than EXISTS or ORDER BY … LIMIT 1: only the aggregate form makes SQLite probe
    # ix_outbox_order; the others scanned the pending rows via ix_outbox_status_created_at
    # (tests/outbox/test_plans.py). The same probe gives the due time of the next head.
    next_id = select(func.min(nxt.c.id)).where(*chain).correlate(H).scalar_subquery()
    gone = [i for (i,) in conn.execute(delete(H).where(H.c.row_id.in_(settled), next_id.is_(None))
                                       .returning(H.c.row_id))]
    # SET expressions all see the old head, so the due time looks the next row up again.
    due = select(T.c.next_attempt_at).where(T.c.id == next_id).correlate(H).scalar_subquery()
    conn.execute(update(H).where(H.c.row_id.in_(settled), next_id.is_not(None))
                 .values(row_id=next_id, next_attempt_at=due, locked_until=None, locked_by=None))
    if gone and conn.dialect.name == "postgresql":
        _restore_heads(conn, gone)


def _restore_heads(conn: Connection, settled: list[int]) -> None:
    """PostgreSQL, READ COMMITTED: an ingest that committed a row of a chain while the DELETE above
    waited on its head (the ingest's upsert locks it) is invisible to that DELETE's snapshot, so
    the head went although the chain has a pending row. This statement's fresh snapshot sees it
    and puts the head back (one statement for all the settled rows whose heads went); a later
    ingest finds no head and creates it itself."""
    was, nxt = T.alias("was"), T.alias("nxt")
    first = (select(func.min(nxt.c.id))
             .where(nxt.c.subscriber == was.c.subscriber, nxt.c.order_key == was.c.order_key,
                    nxt.c.status == PENDING_LITERAL)
             .correlate(was).scalar_subquery())
    rows = (select(T.c.subscriber, T.c.order_key, T.c.id, T.c.next_attempt_at)
            .select_from(was.join(T, T.c.id == first)).where(was.c.id.in_(settled)))
    conn.execute(_insert(conn)(H).from_select(["subscriber", "order_key", "row_id", "next_attempt_at"], rows)
                 .on_conflict_do_nothing())


# -- release_leases: drop the leases of heads (all, or one token's) so they are claimable when due.
def release_leases(conn: Connection, token: str | None = None) -> int:
    due = select(T.c.next_attempt_at).where(T.c.id == H.c.row_id).scalar_subquery()
    stmt = update(H).where(H.c.locked_until.is_not(None))
    if token is not None:
        stmt = stmt.where(H.c.locked_by == token)
    return conn.execute(stmt.values(next_attempt_at=due, locked_until=None, locked_by=None)).rowcount


# -- counts_by_status: (subscriber, status, count, oldest created_at) for every pair present.
def counts_by_status(conn: Connection) -> list[tuple[str, str, int, datetime | None]]:
    stmt = (select(T.c.subscriber, T.c.status, func.count(), func.min(T.c.created_at))
            .group_by(T.c.subscriber, T.c.status).order_by(T.c.subscriber, T.c.status))
    return [(s, st, n, aware(oldest)) for s, st, n, oldest in conn.execute(stmt)]


# -- count_status: number of rows with `status`, per subscriber (metrics gauges: pending, dead).
def count_status(conn: Connection, status: str) -> dict[str, int]:
    stmt = select(T.c.subscriber, func.count()).where(T.c.status == status).group_by(T.c.subscriber)
    return {s: n for s, n in conn.execute(stmt)}


# -- list_rows: newest-first rows without payload (with their head's lease), optionally by status and subscriber.
def list_rows(conn: Connection, status: str | None = None, subscriber: str | None = None,
              limit: int = 50) -> list[dict]:
    cols = [c for c in T.c if c.name != "payload"] + [H.c.locked_until, H.c.locked_by]
    stmt = select(*cols).select_from(T.outerjoin(H, H.c.row_id == T.c.id)).order_by(T.c.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(T.c.status == status)
    if subscriber:
        stmt = stmt.where(T.c.subscriber == subscriber)
    return [_row_dict(r) for r in conn.execute(stmt)]


# -- get_row: one full row including payload (and its head's lease), or None.
def get_row(conn: Connection, row_id: int) -> dict | None:
    stmt = (select(*T.c, H.c.locked_until, H.c.locked_by)
            .select_from(T.outerjoin(H, H.c.row_id == T.c.id)).where(T.c.id == row_id))
    r = conn.execute(stmt).first()
    return _row_dict(r) if r is not None else None


# -- requeue: put a row (or every dead row, optionally one subscriber's) back to pending, attempts 0,
# -- due at `now`; a re-queued row older than its chain's head becomes the head (per-call order).
def requeue(conn: Connection, now: datetime, row_id: int | None = None, dead: bool = False,
            subscriber: str | None = None) -> int:
    stmt = update(T).values(status=PENDING, attempts=0, next_attempt_at=now, delivered_at=None)
    if row_id is not None:
        stmt = stmt.where(T.c.id == row_id)
    elif dead:
        stmt = stmt.where(T.c.status == DEAD)
    else:
        raise ValueError("requeue needs a row id or dead=True")
    if subscriber:
        stmt = stmt.where(T.c.subscriber == subscriber)
    requeued = conn.execute(stmt.returning(T.c.id, T.c.subscriber, T.c.order_key)).all()
    first: dict[tuple[str, str], int] = {}
    for r in requeued:
        key = (r.subscriber, r.order_key)
        first[key] = min(r.id, first.get(key, r.id))
    _upsert_heads(conn, [(sub, key, i, now) for (sub, key), i in first.items()])
    return len(requeued)


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

# -- release_rows: drop the leases of claimed rows a worker did not send (the circuit opened):
# -- their heads are due again at the row's own time, attempts untouched.
def release_rows(conn: Connection, ids: Sequence[int]) -> None:
    ids = list(ids)
    if ids:
        due = select(T.c.next_attempt_at).where(T.c.id == H.c.row_id).scalar_subquery()
        conn.execute(update(H).where(H.c.row_id.in_(ids))
                     .values(next_attempt_at=due, locked_until=None, locked_by=None))


# -- release_outage: make due now the heads of `subscriber` whose last attempt found the ERP
# -- unreachable and that still wait on their own backoff (the rows that failed before the circuit
# -- opened; those failed while it was open are due already). Returns how many.
def release_outage(conn: Connection, subscriber: str, now: datetime) -> int:
    # last_error "attempt N unreachable: …" is written by dispatcher._Worker._failed. Leased heads
    # (in flight) are left alone. The range (subscriber, next_attempt_at > now) of
    # ix_outbox_head_due holds only failed or leased heads: one per call at most, not the backlog.
    waiting = (select(H.c.row_id).join(T, T.c.id == H.c.row_id)
               .where(H.c.subscriber == subscriber, H.c.next_attempt_at > now, H.c.locked_until.is_(None),
                      T.c.last_error.like("attempt % unreachable:%")))
    ids = [i for (i,) in conn.execute(waiting)]
    if not ids:
        return 0
    conn.execute(update(T).where(T.c.id.in_(ids)).values(next_attempt_at=now))
    conn.execute(update(H).where(H.c.row_id.in_(ids)).values(next_attempt_at=now))
    return len(ids)


# -- count_unreachable: per subscriber, pending rows whose last attempt found the ERP unreachable
# -- (what an outage holds back; `outbox stats`). An admin query: it reads the pending rows.
def count_unreachable(conn: Connection) -> dict[str, int]:
    stmt = (select(T.c.subscriber, func.count())
            .where(T.c.status == PENDING_LITERAL, T.c.last_error.like("attempt % unreachable:%"))
            .group_by(T.c.subscriber))
    return {s: n for s, n in conn.execute(stmt)}
