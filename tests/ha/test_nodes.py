"""Two bridge nodes (two Runtimes, own engines and threads) on one simulator and one PostgreSQL."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import text

from bridge.config import AmiConfig, Config, DatabaseConfig, HaConfig, SubscriberConfig
from bridge.ha import LEADER
from bridge.ha.cli import render_status
from bridge.ha import lease
from bridge.outbox.db import make_engine, upgrade
from bridge.testing.helpers import wait_until

SECRET = "ha-secret-51c"
WAIT_S = 20.0


@pytest.fixture
def sim():
    from bridge.testing.simulator import AmiSimulator

    with AmiSimulator("asterisk20", users={"bridge": SECRET}, time_scale=0.02, timestamp_events=True) as s:
        yield s


@pytest.fixture
def sink():
    from bridge.testing.fake_erp import FakeErp

    with FakeErp() as receiver:
        yield receiver


def config(pg_url, sim, sink, node: str) -> Config:
    return Config(database=DatabaseConfig(url=pg_url),
                  ami=(AmiConfig(name="pbx1", port=sim.port, username="bridge", secret=SECRET,
                                 reconnect_base_s=0.1),),
                  subscribers=(SubscriberConfig(name="erp", url=sink.url, mode="both"),),
                  ha=HaConfig(node_id=node, lease_s=1.0, renew_s=0.2))


def rows(pg_url) -> list[tuple[str, str, str]]:
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(
                "SELECT event_uuid, event_name, order_key FROM outbox ORDER BY id"))]
    finally:
        engine.dispose()


def leader_of(*runtimes):
    leaders = [r for r in runtimes if r.ha is not None and r.ha.is_leader("pbx1")]
    return leaders[0] if len(leaders) == 1 else None


def sim_events(runtime) -> int:
    return runtime.clients[0].stats.events


def story(pg_url) -> list[str]:
    """The call events in the outbox, one entry per event text (link events are per node)."""
    return [name for _, name, _ in rows(pg_url) if not name.startswith("Link")]


@pytest.mark.slow
def test_two_nodes_write_each_event_once_and_hand_over_on_stop(pg_url, sim, sink):
    from bridge.runtime import Runtime

    upgrade(pg_url)
    a = Runtime(config(pg_url, sim, sink, "node-a")).start()
    b = Runtime(config(pg_url, sim, sink, "node-b")).start()
    try:
        assert wait_until(lambda: leader_of(a, b) is not None, WAIT_S)
        first, second = leader_of(a, b), (b if leader_of(a, b) is a else a)
        assert second.ha.roles["pbx1"].role != LEADER
        sim.run_scenario("answered", wait=True)
        assert wait_until(lambda: "CallEnded" in story(pg_url), WAIT_S)
        sent = sim_events(first)
        assert wait_until(lambda: sim_events(second) == sent and first.writer.queued == 0, WAIT_S)
        before = story(pg_url)
        first_call = {key for _, name, key in rows(pg_url) if not name.startswith("Link")}
        # Both nodes saw the call; only the leader wrote it, and the standby buffered it.
        assert second.gate.buffered("pbx1") > 0
        first.stop()                                    # SIGTERM path: flush, then release
        assert wait_until(lambda: second.ha.is_leader("pbx1"), WAIT_S)
        assert second.gate.stats.replayed >= len(before)   # it wrote its whole buffer
        sim.run_scenario("busy", wait=True)
        assert wait_until(lambda: story(pg_url).count("CallEnded") >= 2, WAIT_S)
    finally:
        a.stop()
        b.stop()
    stored = rows(pg_url)
    ids = Counter(uuid for uuid, _, _ in stored)
    assert max(ids.values()) == 1
    # The takeover replayed the standby's buffer: the first call's events were already there
    # under the same ids, so none of them came twice (no row of that call after them).
    assert story(pg_url)[:len(before)] == before
    calls = [key for _, name, key in stored if not name.startswith("Link")]
    later = calls[len(before):]
    assert later and not first_call & set(later)


@pytest.mark.slow
def test_both_nodes_compute_the_same_ids_for_the_same_stream(pg_url, sim, sink):
    from bridge.runtime import Runtime

    upgrade(pg_url)
    nodes = [Runtime(config(pg_url, sim, sink, f"node-{n}")).start() for n in "ab"]
    seen: list[dict] = [{}, {}]
    try:
        assert wait_until(lambda: all(r.clients[0].connected for r in nodes), WAIT_S)
        for recorded, node in zip(seen, nodes):
            original = node.pipeline.sink.accept

            def record(event, subscribers, _orig=original, _rec=recorded):
                _rec[event.event_uuid] = event.name
                _orig(event, subscribers)
            node.pipeline.sink = type("Tap", (), {"accept": staticmethod(record)})()
        sim.run_scenario("answered", wait=True)
        assert wait_until(lambda: all("CallEnded" in d.values() for d in seen), WAIT_S)
    finally:
        for node in nodes:
            node.stop()
    calls = [{k: v for k, v in d.items() if not v.startswith("Link")} for d in seen]
    assert calls[0] == calls[1] and len(calls[0]) > 5


@pytest.mark.slow
def test_step_down_moves_the_lease_to_the_standby_and_status_names_it(pg_url, sim, sink):
    from bridge.runtime import Runtime

    upgrade(pg_url)
    a = Runtime(config(pg_url, sim, sink, "node-a")).start()
    b = Runtime(config(pg_url, sim, sink, "node-b")).start()
    engine = make_engine(pg_url)
    try:
        assert wait_until(lambda: leader_of(a, b) is not None, WAIT_S)
        old = leader_of(a, b)
        standby = b if old is a else a
        assert 'bridge_ami_leader{server="pbx1"} 1.0' in old.metrics.render().decode()
        assert 'bridge_ami_leader{server="pbx1"} 0.0' in standby.metrics.render().decode()
        assert old.health_details()["ha"]["servers"]["pbx1"]["role"] == "leader"
        assert standby.health_details()["ha"] == {"node": standby.ha.node_id, "servers": {"pbx1": {
            "role": "standby", "token": None, "since": None, "node": standby.ha.node_id}}}
        with engine.begin() as conn:
            assert lease.request_handover(conn) == [("pbx1", old.ha.node_id)]
        assert wait_until(lambda: leader_of(a, b) not in (None, old), WAIT_S)
        new = leader_of(a, b)
        with engine.connect() as conn:
            shown = render_status(lease.leases(conn))
        assert shown.startswith(f"pbx1: leader {new.ha.node_id} since ") and ", token 2, " in shown
    finally:
        engine.dispose()
        a.stop()
        b.stop()
