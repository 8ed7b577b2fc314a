"""bridge/outbox/turns.py: on SQLite, jobs asked while a transaction runs share the next one; a
failing job rolls back alone; on PostgreSQL every job is its own transaction."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from bridge.outbox.turns import WriteTurns


def insert_marker(value: str):
    def job(conn):
        conn.execute(text("INSERT INTO turns_probe (v) VALUES (:v)"), {"v": value})
        return value
    return job


def markers(engine) -> set[str]:
    with engine.connect() as conn:
        return {v for (v,) in conn.execute(text("SELECT v FROM turns_probe"))}


def probe_table(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE turns_probe (v VARCHAR(20))"))


@pytest.fixture
def sqlite_engine(sqlite_url):
    from bridge.outbox import db

    engine = db.make_engine(sqlite_url)
    probe_table(engine)
    yield engine
    engine.dispose()


def wait_until(predicate) -> None:
    for _ in range(1000):
        if predicate():
            return
        time.sleep(0.005)
    raise AssertionError("condition never became true")


def test_jobs_queued_during_a_transaction_share_the_next_one_when_sqlite(sqlite_engine):
    turns = WriteTurns(sqlite_engine)
    release = threading.Event()
    results: dict[str, object] = {}

    def slow(conn):
        release.wait(10)
        return insert_marker("first")(conn)

    def call(name, fn):
        results[name] = turns.run(fn)

    threads = [threading.Thread(target=call, args=("first", slow))]
    threads[0].start()
    wait_until(lambda: turns._turn.locked() and not turns._queue)      # "first" runs, alone
    threads += [threading.Thread(target=call, args=(f"w{i}", insert_marker(f"w{i}"))) for i in range(3)]
    for t in threads[1:]:
        t.start()
    wait_until(lambda: len(turns._queue) == 3)
    release.set()
    for t in threads:
        t.join(10)
    assert results == {"first": "first", "w0": "w0", "w1": "w1", "w2": "w2"}
    assert (turns.transactions, turns.jobs) == (2, 4)
    assert markers(sqlite_engine) == {"first", "w0", "w1", "w2"}


def test_a_failing_job_rolls_back_alone_when_sharing_a_transaction(sqlite_engine):
    turns = WriteTurns(sqlite_engine)
    turns._turn.acquire()                          # hold the turn so both jobs queue for one transaction
    errors: list[BaseException] = []

    def failing(conn):
        insert_marker("bad")(conn)
        raise ValueError("job failed")

    def call(fn):
        try:
            turns.run(fn)
        except ValueError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(fn,)) for fn in (failing, insert_marker("good"))]
    for t in threads:
        t.start()
    wait_until(lambda: len(turns._queue) == 2)
    turns._turn.release()
    for t in threads:
        t.join(10)
    assert [str(e) for e in errors] == ["job failed"]
    assert turns.transactions == 1
    assert markers(sqlite_engine) == {"good"}


def test_every_job_is_its_own_transaction_when_postgresql(pg_url):
    from bridge.outbox import db

    engine = db.make_engine(pg_url)
    try:
        probe_table(engine)
        turns = WriteTurns(engine)
        assert turns.run(insert_marker("a")) == "a"
        with pytest.raises(ValueError):
            turns.run(lambda conn: (insert_marker("b")(conn), (_ for _ in ()).throw(ValueError("x"))))
        assert markers(engine) == {"a"}
        assert turns.transactions == 1
    finally:
        engine.dispose()
