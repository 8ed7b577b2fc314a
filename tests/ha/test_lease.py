"""bridge/ha/lease.py and the fenced OutboxWriter on a real PostgreSQL: one leader, takeover, fencing."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from bridge.erp.envelope import build_envelope
from bridge.errors import NotLeader
from bridge.ha import lease
from bridge.ha.gate import StandbyGate
from bridge.outbox import queries
from bridge.outbox.db import make_engine, upgrade
from bridge.outbox.ingest import OutboxWriter
from bridge.testing.helpers import wait_until
from tests.outbox.conftest import make_event

LEASE_S = 0.5


@pytest.fixture
def engines(pg_url):
    upgrade(pg_url)
    a, b = make_engine(pg_url), make_engine(pg_url)   # two nodes: two pools
    yield a, b
    a.dispose()
    b.dispose()


def acquire(engine, node: str, server: str = "pbx1", lease_s: float = LEASE_S):
    with engine.begin() as conn:
        return lease.acquire(conn, server, node, lease_s)


def renew(engine, node: str, token: int, server: str = "pbx1"):
    with engine.begin() as conn:
        return lease.renew(conn, server, node, token, LEASE_S)


def test_only_one_node_holds_a_server_when_both_ask(engines):
    a, b = engines
    assert acquire(a, "A") == 1
    assert acquire(b, "B") is None
    assert renew(a, "A", 1) is False           # renewed, no handover asked
    assert acquire(b, "B", server="pbx2") == 1  # another server is another lease


def test_standby_takes_over_with_next_token_when_the_lease_expires(engines):
    a, b = engines
    assert acquire(a, "A") == 1
    took = []
    assert wait_until(lambda: took.append(acquire(b, "B")) or took[-1] is not None, 10)
    assert took[-1] == 2
    assert renew(a, "A", 1) is None            # the paused leader finds its lease gone


def test_guard_refuses_the_old_leader_and_admits_the_new_one_when_taken_over(engines):
    a, b = engines
    acquire(a, "A")
    assert wait_until(lambda: acquire(b, "B") is not None, 10)
    with a.begin() as conn, pytest.raises(NotLeader) as refused:
        lease.guard(conn, "A", {"pbx1": 1}, {"pbx1"})
    assert refused.value.servers == {"pbx1"}
    with b.begin() as conn:
        lease.guard(conn, "B", {"pbx1": 2}, {"pbx1"})


def test_takeover_waits_for_a_commit_holding_the_guard_when_the_lease_runs_out_meanwhile(engines):
    a, b = engines
    acquire(a, "A", lease_s=0.3)
    with a.begin() as conn:
        lease.guard(conn, "A", {"pbx1": 1}, {"pbx1"})     # FOR SHARE until this commit
        wait_until(lambda: False, 0.5)                    # the lease expires inside the transaction
        with pytest.raises(OperationalError):             # lock_timeout: the takeover cannot pass
            acquire(b, "B")
    assert acquire(b, "B") == 2                           # once committed, it can


def test_step_down_request_is_seen_by_the_leader_at_its_next_renewal(engines):
    a, b = engines
    acquire(a, "A")
    with b.begin() as conn:
        assert lease.request_handover(conn) == [("pbx1", "A")]
    assert renew(a, "A", 1) is True
    with a.begin() as conn:
        assert lease.release(conn, "pbx1", "A", 1)
    assert acquire(b, "B") == 2                           # released: no need to wait for expiry
    with b.connect() as conn:
        (row,) = lease.leases(conn)
    assert (row.node, row.token, row.handover, row.live) == ("B", 2, False, True)


def test_fenced_writer_hands_events_back_when_its_lease_is_gone(engines, pg_url):
    a, b = engines
    held = {"pbx1": acquire(a, "A", lease_s=0.3)}
    gate = StandbyGate(None, buffer_s=30.0)
    writer = OutboxWriter(a, envelope_builder=build_envelope, on_refused=gate.refused,
                          commit_guard=lambda conn, servers: lease.guard(conn, "A", held, servers))
    gate.sink = writer
    gate.promote("pbx1")
    writer.start()
    try:
        first = make_event("c1", 1)
        gate.accept(first, ["erp"])
        assert wait_until(lambda: writer.settled == 1, 10)
        assert wait_until(lambda: acquire(b, "B") is not None, 10)    # "paused" past its lease
        late = make_event("c1", 2)
        gate.accept(late, ["erp"])          # the old leader still believes it leads
        assert wait_until(lambda: writer.settled == 2, 10)
    finally:
        writer.stop()
    with b.connect() as conn:
        stored = [r["event_uuid"] for r in queries.list_rows(conn)]
    assert stored == [first.event_uuid]
    assert (writer.stats.committed, writer.stats.refused) == (1, 1)
    assert gate.buffered("pbx1") == 1       # kept for this node's next takeover, not lost


def test_writer_commits_other_servers_when_one_server_is_refused(engines):
    a, _ = engines
    held = {"pbx1": acquire(a, "A"), "pbx2": None}
    refused: list = []
    writer = OutboxWriter(a, envelope_builder=build_envelope, on_refused=refused.extend,
                          commit_guard=lambda conn, servers: lease.guard(conn, "A", held, servers))
    writer.start()
    try:
        mine, theirs = make_event("c1", 1, server="pbx1"), make_event("c2", 1, server="pbx2")
        writer.accept(mine, ["erp"])
        writer.accept(theirs, ["erp"])
        assert wait_until(lambda: writer.settled == 2, 10)
    finally:
        writer.stop()
    with a.connect() as conn:
        assert [r["event_uuid"] for r in queries.list_rows(conn)] == [mine.event_uuid]
        assert conn.execute(text("SELECT count(*) FROM outbox")).scalar() == 1
    assert [e.event_uuid for e, _ in refused] == [theirs.event_uuid]


def test_concurrent_acquire_gives_one_winner_when_many_nodes_race(engines, pg_url):
    engines_ = [make_engine(pg_url) for _ in range(4)]
    results: list = []
    barrier = threading.Barrier(len(engines_))

    def race(i, engine):
        barrier.wait()
        try:
            results.append(acquire(engine, f"N{i}"))
        except OperationalError:
            results.append(None)

    threads = [threading.Thread(target=race, args=(i, e)) for i, e in enumerate(engines_)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in engines_:
        e.dispose()
    assert sorted(results, key=lambda r: r is None) == [1, None, None, None]


@pytest.mark.parametrize("frozen_in", ["insert", "settle"])
def test_reap_ends_a_frozen_nodes_open_transaction_so_the_new_leaders_insert_goes_through(pg_url, frozen_in):
    """The frozen node's writer inserted the overlap rows and did not commit, or its dispatcher
    settled (updated) a committed overlap row and did not commit: either makes the new leader's
    ON CONFLICT DO NOTHING insert of that row wait for the frozen transaction."""
    from bridge.config import HaConfig
    from bridge.ha import session_options
    from bridge.ha.node import APPLICATION_PREFIX, application_name
    from bridge.outbox.ingest import outbox_rows
    from datetime import datetime, timezone

    upgrade(pg_url)
    cfg = HaConfig(lease_s=60.0)      # the server's own idle timeout stays out of the way
    frozen = make_engine(pg_url, connect_args=session_options(cfg, "A"))
    new = make_engine(pg_url, connect_args=session_options(cfg, "B"))
    event = make_event("c9", 1)
    rows = outbox_rows(event, ["erp"], "<x/>", datetime.now(timezone.utc))
    if frozen_in == "settle":
        with frozen.begin() as conn:
            queries.insert_batch(conn, rows)
    stuck = frozen.connect()
    stuck.begin()
    if frozen_in == "insert":
        queries.insert_batch(stuck, rows)   # uncommitted, as if the process froze right here
    else:
        stuck.execute(text("UPDATE outbox SET attempts = attempts + 1"))   # a settle, uncommitted
    done = threading.Event()

    def insert_same_rows():
        with new.begin() as conn:
            queries.insert_batch(conn, rows)  # waits on A's uncommitted duplicate key
        done.set()

    inserter = threading.Thread(target=insert_same_rows)
    inserter.start()
    try:
        assert not done.wait(0.5)
        with new.begin() as conn:
            ended = lease.reap(conn, APPLICATION_PREFIX, application_name("B"), 0.1)
        assert ended == [application_name("A")]
        assert done.wait(10)
    finally:
        inserter.join(10)
        try:
            stuck.close()
        except Exception:
            pass
        frozen.dispose()
        new.dispose()
    check = make_engine(pg_url)
    with check.connect() as conn:
        assert [r["event_uuid"] for r in queries.list_rows(conn)] == [event.event_uuid]
    check.dispose()
