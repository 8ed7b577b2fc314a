"""bridge/outbox/queries.py on SQLite and PostgreSQL: claim rules (FIFO per call), settle, admin SQL."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from bridge.outbox import queries
from bridge.erp.envelope import build_envelope
from bridge.outbox.ingest import outbox_rows
from bridge.outbox.models import DEAD, DELIVERED, PENDING

from tests.outbox.conftest import make_event

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc)
LEASE = NOW + timedelta(minutes=2)


def insert(engine, events, subscribers=("erp",), now=NOW):
    with engine.begin() as conn:
        for e in events:
            queries.insert_batch(conn, outbox_rows(e, subscribers, build_envelope(e), now))


def claim(engine, sub="erp", limit=100, now=NOW, token="t1"):
    with engine.begin() as conn:
        return queries.claim_batch(conn, sub, limit, now, now + timedelta(minutes=2), token)


def test_claim_returns_only_the_head_of_each_call_when_calls_have_many_events(engine):
    events = [make_event("A", 0), make_event("B", 0), make_event("A", 1), make_event("B", 1)]
    insert(engine, events)
    rows = claim(engine)
    assert [r.event_uuid for r in rows] == [events[0].event_uuid, events[1].event_uuid]


def test_claim_skips_later_event_when_earlier_is_in_flight(engine):
    events = [make_event("A", 0), make_event("A", 1)]
    insert(engine, events)
    assert len(claim(engine, token="w1")) == 1
    assert claim(engine, token="w2") == []          # head leased, follower blocked by it


def test_claim_skips_later_event_when_earlier_waits_for_retry(engine):
    events = [make_event("A", 0), make_event("A", 1)]
    insert(engine, events)
    head = claim(engine)[0]
    with engine.begin() as conn:
        queries.schedule_retry(conn, [(head.id, NOW + timedelta(seconds=30), "HTTP 500")])
    assert claim(engine) == []
    later = claim(engine, now=NOW + timedelta(seconds=31))
    assert [r.id for r in later] == [head.id]
    assert later[0].attempts == 1


def test_claim_returns_next_event_when_head_delivered(engine):
    events = [make_event("A", 0), make_event("A", 1)]
    insert(engine, events)
    head = claim(engine)[0]
    with engine.begin() as conn:
        queries.mark_delivered(conn, [head.id], NOW)
    assert [r.event_uuid for r in claim(engine)] == [events[1].event_uuid]


def test_dead_row_does_not_block_later_events_of_its_call(engine):
    events = [make_event("A", 0), make_event("A", 1)]
    insert(engine, events)
    head = claim(engine)[0]
    with engine.begin() as conn:
        queries.mark_dead(conn, [(head.id, "attempt 1 failed")])
    assert [r.event_uuid for r in claim(engine)] == [events[1].event_uuid]


def test_requeued_dead_row_blocks_its_calls_pending_rows_when_retried(engine):
    events = [make_event("A", 0), make_event("A", 1)]
    insert(engine, events)
    head = claim(engine)[0]
    with engine.begin() as conn:
        queries.mark_dead(conn, [(head.id, "gave up")])
        queries.release_leases(conn)
        assert queries.requeue(conn, NOW, dead=True) == 1
    assert [r.event_uuid for r in claim(engine)] == [events[0].event_uuid]


def test_subscribers_do_not_block_each_other_when_sharing_a_call(engine):
    events = [make_event("A", 0), make_event("A", 1)]
    insert(engine, events, subscribers=("erp", "crm"))
    assert len(claim(engine, "erp")) == 1
    assert len(claim(engine, "crm")) == 1


def test_expired_lease_is_claimable_again_when_dispatcher_died(engine):
    insert(engine, [make_event("A", 0)])
    assert len(claim(engine, token="dead-process")) == 1
    assert claim(engine, now=NOW + timedelta(minutes=1)) == []
    assert len(claim(engine, now=NOW + timedelta(minutes=3), token="w2")) == 1


def test_insert_batch_skips_duplicates_when_batch_is_replayed(engine):
    e = make_event("A", 0)
    insert(engine, [e])
    insert(engine, [e])
    with engine.connect() as conn:
        assert queries.count_status(conn, PENDING) == {"erp": 1}


def test_concurrent_claims_never_share_a_row_when_many_workers(engine):
    insert(engine, [make_event(f"K{k}", s) for s in range(3) for k in range(60)])
    got: list[int] = []
    lock = threading.Lock()

    def worker(token):
        while True:
            rows = claim(engine, limit=7, token=token)
            if not rows:
                # Nothing claimable right now; settle nothing else: the others still hold heads.
                with lock:
                    if len(got) >= 180:
                        return
                continue
            with engine.begin() as conn:
                queries.mark_delivered(conn, [r.id for r in rows], NOW)
            with lock:
                got.extend(r.id for r in rows)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got) == 180 and len(set(got)) == 180


def test_admin_queries_count_list_requeue_and_purge(engine):
    insert(engine, [make_event("A", 0), make_event("B", 0), make_event("C", 0)])
    rows = claim(engine)
    with engine.begin() as conn:
        queries.mark_delivered(conn, [rows[0].id], NOW)
        queries.mark_dead(conn, [(rows[1].id, "x" * 2000 + "\nsecond line")])
    with engine.connect() as conn:
        counts = {(s, st): n for s, st, n, _ in queries.counts_by_status(conn)}
        assert counts == {("erp", DELIVERED): 1, ("erp", DEAD): 1, ("erp", PENDING): 1}
        dead = queries.list_rows(conn, status=DEAD)
        assert len(dead) == 1 and len(dead[0]["last_error"]) == 500 and "\n" not in dead[0]["last_error"]
        assert queries.get_row(conn, rows[0].id)["payload"].startswith("<?xml")
        assert queries.get_row(conn, rows[0].id)["delivered_at"] == NOW
    with engine.begin() as conn:
        assert queries.purge(conn, DELIVERED, NOW + timedelta(days=1)) == 1
        assert queries.purge(conn, DELIVERED, NOW) == 0
        assert queries.requeue(conn, NOW, row_id=rows[1].id) == 1
    with engine.connect() as conn:
        assert queries.count_status(conn, PENDING) == {"erp": 2}


def test_replayed_rows_of_a_settled_call_create_no_head_when_inserted_again(engine):
    # HA: a new leader re-inserts the overlap; rows already present (here delivered) must not
    # come back as heads, or the ERP would get them again.
    events = [make_event("A", 0), make_event("A", 1)]
    insert(engine, events)
    for _ in events:
        head = claim(engine)[0]
        with engine.begin() as conn:
            queries.mark_delivered(conn, [head.id], NOW)
    with engine.begin() as conn:
        rows = [r for e in events for r in outbox_rows(e, ["erp"], build_envelope(e), NOW)]
        assert queries.insert_batch(conn, rows) == 0
    assert claim(engine) == []


def test_claim_walks_a_long_chain_in_order_when_one_call_has_many_events(engine):
    events = [make_event("A", s) for s in range(30)] + [make_event("B", 0)]
    insert(engine, events)
    seen = []
    while rows := claim(engine, limit=10):
        assert len(rows) <= 2                  # one head per call, never two rows of A
        seen.extend(r.event_uuid for r in rows)
        with engine.begin() as conn:
            queries.mark_delivered(conn, [r.id for r in rows], NOW)
    assert [u for u in seen if u != events[-1].event_uuid] == [e.event_uuid for e in events[:-1]]


def test_retry_of_one_row_makes_it_the_head_again_when_its_call_moved_on(engine):
    events = [make_event("A", s) for s in range(3)]
    insert(engine, events)
    first = claim(engine)[0]
    with engine.begin() as conn:
        queries.mark_dead(conn, [(first.id, "gave up")])
    second = claim(engine, token="w2")[0]                  # the call moved on: row 2 in flight
    assert second.event_uuid == events[1].event_uuid
    with engine.begin() as conn:
        assert queries.requeue(conn, NOW, row_id=first.id) == 1
        queries.mark_delivered(conn, [second.id], NOW)      # settling the old head changes nothing
    assert [r.event_uuid for r in claim(engine, token="w3")] == [events[0].event_uuid]
    with engine.connect() as conn:
        assert queries.get_row(conn, first.id)["locked_by"] == "w3"


def test_chain_keeps_its_head_when_an_ingest_commits_while_the_settle_waits(pg_url):
    # PostgreSQL READ COMMITTED: the ingest's head upsert locks the head; the settle's DELETE waits
    # for it and then judges "no pending row left" from a snapshot without the new row.
    import time

    from bridge.outbox import db

    db.upgrade(pg_url)
    engine = db.make_engine(pg_url)
    try:
        insert(engine, [make_event("A", 0)])
        head = claim(engine)[0]
        later = make_event("A", 1)
        ingest = engine.connect()
        tx = ingest.begin()
        queries.insert_batch(ingest, outbox_rows(later, ["erp"], build_envelope(later), NOW))

        def settle():
            with engine.begin() as conn:
                queries.mark_delivered(conn, [head.id], NOW)

        settler = threading.Thread(target=settle)
        settler.start()
        with engine.connect() as probe:        # wait until the settle is blocked on the head's lock
            for _ in range(500):
                waiting = probe.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()").scalar()
                if waiting:
                    break
                time.sleep(0.01)
        assert waiting
        tx.commit()
        ingest.close()
        settler.join(10)
        assert [r.event_uuid for r in claim(engine)] == [later.event_uuid]
    finally:
        engine.dispose()
