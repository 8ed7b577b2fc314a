"""Crash test: SIGKILL the bridge at random moments while it ingests and delivers; nothing is lost."""

from __future__ import annotations

import pytest

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from bridge.outbox import db
from bridge.outbox.models import DELIVERED, OutboxRow

from tests.outbox.conftest import order_problems

pytestmark = pytest.mark.slow  # kills and restarts worker processes: ~20 s

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("crash_worker.py")
KILLS = 6


def spawn(db_url, sink_url, run, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, str(WORKER), db_url, sink_url, str(run), *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def committed_rows(db_url):
    engine = db.make_engine(db_url)
    try:
        t = OutboxRow.__table__
        with engine.connect() as conn:
            return conn.execute(select(t.c.id, t.c.event_uuid, t.c.order_key, t.c.status, t.c.payload)
                                .order_by(t.c.id)).all()
    finally:
        engine.dispose()


def test_every_committed_event_arrives_in_call_order_when_killed_repeatedly(sqlite_url, sink):
    db.upgrade(sqlite_url)
    rng = random.Random(int(os.environ.get("BRIDGE_CRASH_SEED", "20261127")))
    for run in range(KILLS):
        proc = spawn(sqlite_url, sink.url, run)
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.3, 1.0))          # a random moment inside ingest + delivery
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
    drain = spawn(sqlite_url, sink.url, KILLS, "--drain")
    assert drain.wait(90) == 0, "the restarted bridge did not drain the outbox"

    rows = committed_rows(sqlite_url)
    assert len(rows) > 500                             # the flood really happened across the runs
    assert {r.status for r in rows} == {DELIVERED}
    by_key: dict[str, list[str]] = {}
    for r in rows:
        by_key.setdefault(r.order_key, []).append(r.event_uuid)
    payloads = {r.event_uuid: r.payload.encode() for r in rows}
    # Every committed event reached the sink, each call in order of first receipt.
    assert order_problems(sink.receipts, by_key) == []
    # Nothing arrived that was never committed, and a duplicate is the same event, byte for byte.
    assert all(r.id in payloads and r.body == payloads[r.id] for r in sink.receipts)
    duplicates = len(sink.receipts) - len({r.id for r in sink.receipts})
    print(f"committed={len(rows)} receipts={len(sink.receipts)} duplicates={duplicates}")
