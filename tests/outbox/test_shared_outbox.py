"""Two dispatcher processes on one PostgreSQL outbox (FOR UPDATE SKIP LOCKED): no row delivered twice."""

from __future__ import annotations

import pytest

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from bridge.outbox import admin, db, queries
from bridge.erp.envelope import build_envelope
from bridge.outbox.ingest import outbox_rows

from tests.outbox.conftest import by_key, calls_interleaved, order_problems

pytestmark = pytest.mark.slow  # two dispatcher processes: ~10 s

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("dispatch_worker.py")


def test_two_processes_share_the_outbox_without_double_delivery(pg_url, sink):
    db.upgrade(pg_url)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, str(WORKER), pg_url, sink.url], env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE) for _ in range(2)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        events = calls_interleaved(200, 6, prefix="shared")
        engine = db.make_engine(pg_url)
        now = datetime.now(timezone.utc)
        with engine.begin() as conn:
            queries.insert_batch(conn, [r for e in events for r in outbox_rows(e, ["erp"], build_envelope(e), now)])
        assert sink.wait_for_ids([e.event_uuid for e in events], 60)
        counts = []
        for p in procs:
            out, _ = p.communicate("stop\n", timeout=30)
            counts.append(int(out.split("delivered")[1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    ids = [r.id for r in sink.receipts]
    assert len(ids) == len(set(ids)) == len(events)          # every row exactly once
    assert sum(counts) == len(events) and min(counts) > 0     # both processes took part
    assert order_problems(sink.receipts, by_key(events)) == []
    assert sum(r["pending"] for r in admin.stats(engine)) == 0
    engine.dispose()
