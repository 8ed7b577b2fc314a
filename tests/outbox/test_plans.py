"""Query plans of the claim and settle SQL: every access to outbox and outbox_head is an index probe.

Claims must cost the same at 1k and 1M pending rows and any chain length (issue 14). A plan is
the only thing that shows it without timing anything: the statements queries.py really sends
(captured while it works on a backlog of short and one very long chain) are EXPLAINed on the
same connection. The test fails when any of them scans a table, scans a whole index, reaches
outbox by status alone (ix_outbox_status_created_at walks every pending row) or a table by the
subscriber alone (every head or row of it). PostgreSQL plans
are taken with fresh statistics and sequential scans disabled: a Seq Scan then means no index
can serve the query at all. release_leases (startup only, every leased head) is not a claim.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from sqlalchemy import event

from bridge.outbox import queries

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=timezone.utc)
SHORT_CALLS, SHORT_LEN, LONG_LEN = 500, 20, 5000

# SQLite: (table or alias, the ways it may be reached). A SEARCH with these keys is a probe.
SQLITE_ALLOWED = {
    "outbox": (r"USING INTEGER PRIMARY KEY \(rowid=\?\)",),
    "nxt": (r"USING (COVERING )?INDEX ix_outbox_order \(subscriber=\? AND order_key=\?\)",),
    "outbox_head": (r"USING (COVERING )?INDEX ix_outbox_head_due \(subscriber=\? AND next_attempt_at<\?\)",
                    r"USING (COVERING )?INDEX sqlite_autoindex_outbox_head_\d "
                    r"\((row_id=\?|subscriber=\? AND order_key=\?)\)"),
}


def backlog_rows() -> list[dict]:
    calls = [("long", s) for s in range(LONG_LEN)]
    calls += [(f"short-{c}", s) for s in range(SHORT_LEN) for c in range(SHORT_CALLS)]
    return [{"event_uuid": f"{key}/{step}", "subscriber": "erp", "server": "pbx1", "event_name": "Newstate",
             "order_key": key, "payload": "<x/>", "status": "pending", "attempts": 0, "next_attempt_at": NOW,
             "event_time": NOW, "created_at": NOW, "last_error": None} for key, step in calls]


def captured_statements(engine) -> list[tuple[str, object]]:
    """Fill the backlog, then run one round of every claim/settle/head query and return what it sent."""
    with engine.begin() as conn:
        queries.insert_batch(conn, backlog_rows())
        queries.insert_batch(conn, [dict(backlog_rows()[0], event_uuid="lone/0", order_key="lone")])
        (lone,) = conn.exec_driver_sql("SELECT id FROM outbox WHERE order_key = 'lone'").one()
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE outbox")
            conn.exec_driver_sql("ANALYZE outbox_head")
    sent: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, params, _context, executemany):
        # INSERT … VALUES reads nothing but its conflict target (a unique index): not checked;
        # INSERT … SELECT (restoring a head) reads outbox: checked.
        head = statement.lstrip().upper()
        if head.startswith(("SELECT", "UPDATE", "DELETE")) or head.startswith("INSERT") and " SELECT " in head:
            one = params[0] if executemany else params
            sent.append((statement, one if isinstance(one, dict) else tuple(one)))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with engine.begin() as conn:
            queries.insert_batch(conn, backlog_rows()[:3] + [dict(backlog_rows()[0], event_uuid="new/0",
                                                                  order_key="new")])
            rows = queries.claim_batch(conn, "erp", 50, NOW, NOW + timedelta(minutes=1), "w1")
            queries.has_due(conn, "erp", NOW)
            queries.mark_delivered(conn, [rows[0].id], NOW)
            queries.schedule_retry(conn, [(rows[1].id, NOW + timedelta(seconds=5), "HTTP 503")])
            queries.mark_dead(conn, [(rows[2].id, "SOAP Fault")])
            queries.requeue(conn, NOW, row_id=rows[2].id)
            queries.mark_delivered(conn, [lone], NOW)      # a one-row chain: its head goes
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert len(rows) == 50 and rows[0].order_key == "long"   # the settles below move the long chain
    return sent


def sqlite_problems(engine, sent) -> list[str]:
    problems = []
    with engine.connect() as conn:
        for statement, params in sent:
            for *_, detail in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all():
                m = re.match(r"(SCAN|SEARCH) (\w+?)(_\d+)?\b", detail)
                if m is None or m.group(2) not in SQLITE_ALLOWED:
                    continue            # SCAN CONSTANT ROW, LIST SUBQUERY …: no table read
                allowed = SQLITE_ALLOWED[m.group(2)]
                if m.group(1) == "SCAN" or not any(re.search(p, detail) for p in allowed):
                    problems.append(f"{detail}\n    in: {statement[:160]}")
    return problems


def postgresql_problems(engine, sent) -> list[str]:
    problems = []
    with engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        for statement, params in sent:
            plan = [line for (line,) in conn.exec_driver_sql("EXPLAIN " + statement, params).all()]
            for i, line in enumerate(plan):
                scan = re.search(r"(Seq Scan|Index Scan|Index Only Scan|Bitmap Index Scan) (using|on) (\w+)", line)
                if scan is None:
                    continue
                follows = plan[i + 1].strip() if i + 1 < len(plan) else ""
                # A condition on the subscriber alone walks all its heads or rows (e.g. by the
                # primary key, then sorting them for the claim order).
                by_subscriber_only = "subscriber" in follows and " AND " not in follows
                if (scan.group(1) == "Seq Scan" or scan.group(3) == "ix_outbox_status_created_at"
                        or not follows.startswith("Index Cond") or by_subscriber_only):
                    problems.append(f"{line.strip()} / {follows}\n    in: {statement[:160]}")
    return problems


def test_claim_and_settle_queries_probe_indexes_when_backlog_is_deep(engine):
    sent = captured_statements(engine)
    assert len(sent) >= 10
    check = sqlite_problems if engine.dialect.name == "sqlite" else postgresql_problems
    problems = check(engine, sent)
    assert not problems, "\n".join(problems)


def test_plan_check_fails_when_the_claim_index_is_missing(engine):
    # The check itself must be able to fail: without ix_outbox_head_due the claim scans outbox_head.
    sent = captured_statements(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_outbox_head_due")
    check = sqlite_problems if engine.dialect.name == "sqlite" else postgresql_problems
    assert any("outbox_head" in p for p in check(engine, sent))
