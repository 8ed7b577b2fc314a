"""bridge/outbox/ingest.py: group commit, stored payload = envelope, backpressure, database outage."""

from __future__ import annotations

import threading

from sqlalchemy import select

from bridge.outbox import db
from bridge.erp.envelope import build_envelope
from bridge.outbox.ingest import BACKLOG_BATCH_FACTOR, OutboxWriter
from bridge.outbox.models import OutboxRow
from bridge.testing.helpers import wait_until

from tests.outbox.conftest import calls_interleaved, make_event


def stored(engine):
    t = OutboxRow.__table__
    with engine.connect() as conn:
        return conn.execute(select(t.c.id, t.c.event_uuid, t.c.subscriber, t.c.payload, t.c.order_key)
                            .order_by(t.c.id)).all()




def test_events_are_committed_in_batches_in_accept_order_when_flooded(engine):
    commits = []
    w = OutboxWriter(engine, envelope_builder=build_envelope, batch_max_events=100, batch_max_delay_s=0.05,
                     on_commit=lambda events, rows, subs: commits.append((len(events), rows)))
    w.start()
    events = calls_interleaved(50, 10)
    for e in events:
        w.accept(e, ["erp", "crm"])
    w.stop(flush=True)
    rows = stored(engine)
    assert len(rows) == 1000 and w.stats.committed == 500 and w.stats.rows == 1000
    assert [r.event_uuid for r in rows if r.subscriber == "erp"] == [e.event_uuid for e in events]
    assert sum(n for n, _ in commits) == 500 and len(commits) == w.stats.batches < 500
    assert max(n for n, _ in commits) <= 100 * BACKLOG_BATCH_FACTOR   # N, or N × factor on a backlog


def test_commit_hook_names_only_the_subscribers_that_got_rows_when_routing_differs(engine):
    seen = []
    w = OutboxWriter(engine, envelope_builder=build_envelope,
                     on_commit=lambda events, rows, subs: seen.append((rows, subs)))
    w.start()
    first, second = calls_interleaved(1, 2)
    w.accept(first, ["crm"])
    assert wait_until(lambda: seen)
    w.accept(second, ["erp", "crm"])
    w.stop(flush=True)
    # The dispatcher wakes only these subscribers' workers (Runtime._on_commit).
    assert seen == [(1, {"crm"}), (2, {"erp", "crm"})]


def test_batch_stops_at_n_events_unless_a_backlog_is_queued(engine):
    commits = []
    w = OutboxWriter(engine, envelope_builder=build_envelope, batch_max_events=10, batch_max_delay_s=1.0,
                     on_commit=lambda events, rows, subs: commits.append(len(events)))
    for e in calls_interleaved(3, 4):          # 12 queued before start: a backlog of ≥ N
        w.accept(e, ["erp"])
    w.start()
    assert wait_until(lambda: sum(commits) == 12)
    w.accept(make_event("late", 0), ["erp"])
    assert wait_until(lambda: w._queue.qsize() == 0)   # the writer holds it, waiting for more
    for i in range(1, 12):
        w.accept(make_event("late", i), ["erp"])
    w.stop(flush=True)
    assert commits == [12, 10, 2]


def test_stored_payload_is_the_envelope_when_committed(engine):
    w = OutboxWriter(engine, envelope_builder=build_envelope)
    w.start()
    e = make_event("1.1", 0, normalized=True)
    w.accept(e, ["erp"])
    w.stop()
    (row,) = stored(engine)
    assert row.payload == build_envelope(e) and row.order_key == "1.1"


def test_event_without_subscribers_is_not_stored(engine):
    w = OutboxWriter(engine, envelope_builder=build_envelope)
    w.start()
    w.accept(make_event("1.1", 0), [])
    w.stop()
    assert stored(engine) == [] and w.stats.accepted == 0


def test_accept_blocks_and_counts_when_queue_full(engine):
    w = OutboxWriter(engine, envelope_builder=build_envelope, queue_max_events=5)
    events = [make_event("1.1", i) for i in range(20)]
    producer = threading.Thread(target=lambda: [w.accept(e, ["erp"]) for e in events], daemon=True)
    producer.start()
    assert wait_until(lambda: w.stats.backpressure_waits >= 1)
    assert producer.is_alive() and w.queued == 5     # blocked, nothing dropped
    w.start()
    producer.join(10)
    w.stop(flush=True)
    assert not producer.is_alive()
    assert [r.event_uuid for r in stored(engine)] == [e.event_uuid for e in events]


def test_queued_events_survive_until_database_comes_back(db_url, caplog):
    engine = db.make_engine(db_url)            # not migrated yet: every commit fails
    try:
        w = OutboxWriter(engine, envelope_builder=build_envelope, batch_max_events=10)
        w.start()
        events = [make_event(f"c{i % 3}", i) for i in range(25)]
        for e in events:
            w.accept(e, ["erp"])
        assert wait_until(lambda: w.stats.db_failures >= 2)
        assert w.stats.committed == 0
        db.upgrade(db_url)                     # the database is back
        w.stop(flush=True, timeout_s=30)
        assert w.stats.committed == 25
        assert [r.event_uuid for r in stored(engine)] == [e.event_uuid for e in events]
        assert any("retrying in" in r.getMessage() for r in caplog.records)
    finally:
        engine.dispose()
