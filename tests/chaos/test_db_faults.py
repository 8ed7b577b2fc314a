"""Chaos: the SQLite file locked by another process for a while; PostgreSQL connections killed mid-run.

PostgreSQL is never restarted (other tests share the server): the bridge's own backends are
terminated with pg_terminate_backend, which is what a DBA, a failover or an idle-killer does.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.chaos.audit import audit
from tests.chaos.rig import Rig, scale
from tests.conftest import PG_ADMIN_URL

LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def hold_exclusive_lock(path, seconds: float) -> subprocess.Popen:
    """Another process takes SQLite's write lock on `path` and keeps it for `seconds`."""
    proc = subprocess.Popen([sys.executable, "-c", LOCKER, str(path), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_nothing_lost_when_sqlite_file_is_locked_by_another_process(tmp_path):
    # Short: locks shorter than the 30 s busy timeout (db.SQLITE_BUSY_TIMEOUT_MS): commits wait.
    # Full: one lock outlives it too, so commits fail with "database is locked" and are retried.
    locks_s = scale([1.5, 1.5], [3.0, 8.0, 35.0])
    path = tmp_path / "outbox.db"
    with Rig(tmp_path, f"sqlite:///{path}", rate_per_s=scale(500, 1500)) as rig:
        max_queued = 0
        for lock_s in locks_s:
            time.sleep(0.5)
            locker = hold_exclusive_lock(path, lock_s)
            while locker.poll() is None:
                max_queued = max(max_queued, rig.runtime.writer.queued)
                time.sleep(0.02)
            assert locker.returncode == 0
        drained = rig.drain()
        failures = rig.runtime.writer.stats.db_failures
        faults = f"locks of {'+'.join(f'{s:g}' for s in locks_s)} s, {failures} failed commits"
        result = audit("sqlite locked", faults, rig.db_url, rig.sink, rig.stream, expect_all_offered=True)
    assert max_queued > 0, "the lock never held a commit back"
    assert failures > 0 or max(locks_s) < 30
    assert drained, result.problems
    assert result.lost == 0 and not result.problems, result.problems


def terminate_backends(dbname: str) -> int:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,)).fetchall()
    return sum(1 for (ok,) in rows if ok)


def test_nothing_lost_when_postgresql_connections_are_killed_mid_run(tmp_path, pg_url):
    kills = scale(3, 12)
    dbname = pg_url.rsplit("/", 1)[1]
    killed = 0
    with Rig(tmp_path, pg_url, rate_per_s=scale(500, 1500)) as rig:
        for _ in range(kills):
            time.sleep(0.7)
            killed += terminate_backends(dbname)
        drained = rig.drain()
        result = audit("postgresql backends killed", f"{kills} rounds, {killed} backends terminated",
                       rig.db_url, rig.sink, rig.stream, expect_all_offered=True)
    assert killed > 0
    assert drained, result.problems
    assert result.lost == 0 and not result.problems, result.problems


@pytest.fixture(autouse=True)
def _quiet_sqlalchemy_pool(caplog):
    caplog.set_level("CRITICAL", logger="sqlalchemy.pool")
