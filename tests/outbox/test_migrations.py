"""Migration 0002 on a database that already holds rows: heads filled from pending rows, leases kept."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import text

from bridge.outbox import db, queries

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=timezone.utc)


def test_upgrade_from_0001_gives_each_pending_chain_its_head_when_rows_exist(db_url):
    db.upgrade(db_url, "0001")
    engine = db.make_engine(db_url)
    try:
        rows = [  # (id, order_key, status, lease): A's first row is dead, B's head is in flight
            (1, "A", "dead", None), (2, "A", "pending", None), (3, "A", "pending", None),
            (4, "B", "pending", NOW + timedelta(minutes=5)), (5, "B", "pending", None),
            (6, "C", "delivered", None),
        ]
        with engine.begin() as conn:
            for i, key, status, lease in rows:
                conn.execute(text(
                    "INSERT INTO outbox (id, event_uuid, subscriber, server, event_name, order_key, payload, "
                    "status, attempts, next_attempt_at, locked_until, locked_by, event_time, created_at) "
                    "VALUES (:i, :u, 'erp', 'pbx1', 'Newstate', :k, '<x/>', :s, 0, :now, :lease, :by, :now, :now)"),
                    {"i": i, "u": f"uuid-{i}", "k": key, "s": status, "now": NOW, "lease": lease,
                     "by": "old-worker" if lease else None})
        db.upgrade(db_url)
        with engine.begin() as conn:
            assert [r.id for r in queries.claim_batch(conn, "erp", 10, NOW, NOW + timedelta(minutes=1), "w")] == [2]
            assert queries.get_row(conn, 4)["locked_by"] == "old-worker"
        later = NOW + timedelta(minutes=6)        # B's old lease has expired
        with engine.begin() as conn:
            assert [r.id for r in queries.claim_batch(conn, "erp", 10, later, later, "w2")] == [2, 4]
    finally:
        engine.dispose()


def test_downgrade_to_0001_keeps_leases_on_their_rows_when_heads_are_leased(sqlite_url):
    from alembic import command

    db.upgrade(sqlite_url)
    engine = db.make_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO outbox (id, event_uuid, subscriber, server, event_name, order_key, payload, status, "
                "attempts, next_attempt_at, event_time, created_at) "
                "VALUES (7, 'u7', 'erp', 'pbx1', 'Newstate', 'A', '<x/>', 'pending', 0, :now, :now, :now)"),
                {"now": NOW})
            conn.execute(text("INSERT INTO outbox_head (subscriber, order_key, row_id, next_attempt_at, "
                              "locked_until, locked_by) VALUES ('erp', 'A', 7, :now, :now, 'w')"), {"now": NOW})
        with engine.begin() as conn:
            cfg = db.alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0001")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT locked_by FROM outbox WHERE id = 7")).scalar() == "w"
    finally:
        engine.dispose()
