"""LinkDown / LinkUp: routing rules, and the whole way over real TCP (simulator killed and restarted
→ runtime → SQLite outbox → HTTP → sink)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bridge.testing.scenarios import call_events
from bridge.testing.simulator import AmiSimulator
from bridge.config import AmiConfig, Config, DatabaseConfig, SubscriberConfig
from bridge.events import LINK, LinkWatch
from bridge.events.filters import SubscriberFilter
from bridge.erp.envelope import build_envelope
from bridge.testing.fake_erp import FakeErp
from tests.events.link_support import iso_ts, links, pushed, wait_links

SECRET = "link-secret"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_link_events_carry_server_reason_since_and_downtime_when_built():
    clock = Clock(1_764_633_600.0)                       # 2025-12-02T00:00:00Z
    watch = LinkWatch(clock)
    first = watch.up("pbx1", "22.10.1", "11.0.0", 0)
    assert first.kind == LINK and first.order_key == "link:pbx1" and first.call is None
    assert first.headers == (("Event", "LinkUp"), ("Server", "pbx1"), ("AsteriskVersion", "22.10.1"),
                             ("AMIVersion", "11.0.0"), ("LostCalls", "0"))
    clock.now += 60.25
    down = watch.down("pbx1", "connection reset by peer")
    assert down.headers == (("Event", "LinkDown"), ("Server", "pbx1"), ("Reason", "connection reset by peer"),
                            ("Since", "2025-12-02T00:01:00.250+00:00"))
    assert down.text == "Event: LinkDown\r\nServer: pbx1\r\nReason: connection reset by peer\r\n" \
                        "Since: 2025-12-02T00:01:00.250+00:00"
    clock.now += 2.0
    assert watch.down("pbx1", "ping timeout").get("Since") == "2025-12-02T00:01:00.250+00:00"  # still down
    clock.now += 5.5
    up = watch.up("pbx1", None, "11.0.0", None)          # CoreSettings refused, resync failed
    assert dict(up.headers) == {"Event": "LinkUp", "Server": "pbx1", "AsteriskVersion": "", "AMIVersion": "11.0.0",
                                "DownSince": "2025-12-02T00:01:00.250+00:00", "DownSeconds": "7.5"}
    body = build_envelope(up)
    assert "<m:kind>link</m:kind>" in body and "<m:call>" not in body
    assert '<m:header name="DownSeconds">7.5</m:header>' in body


def test_link_envelope_validates_against_events_wsdl_when_built():
    from lxml import etree

    from bridge import ns

    wsdl = etree.parse(str(Path(__file__).resolve().parents[2] / "wsdl" / "events.wsdl"))
    schema = etree.XMLSchema(wsdl.find(f"{{{ns.WSDL}}}types/{{{ns.XSD}}}schema"))
    watch = LinkWatch()
    for event in (watch.down("pbx1", "ping timeout: <no answer> & gone"), watch.up("pbx1", "22.10.1", "11.0.0", 3)):
        body = etree.fromstring(build_envelope(event).encode("utf-8")).find(f"{{{ns.SOAP11_ENV}}}Body")[0]
        schema.assertValid(body)


def test_link_module_spells_the_call_models_words_when_counting_lost_calls():
    from bridge.calls import model
    from bridge.events import link

    assert (link.CALL_ENDED, link.CALL_OVER, link.LOST) == (model.CALL_ENDED, model.ENDED, model.R_LOST)


@pytest.mark.parametrize("kw,down,up", [
    (dict(mode="normalized"), True, True),
    (dict(mode="both"), True, True),
    (dict(mode="raw"), False, False),
    (dict(mode="raw", events=("Hangup", "LinkDown")), True, False),
    (dict(mode="normalized", events=("CallEnded",)), False, False),
    (dict(mode="normalized", exclude_events=("linkup",)), True, False),
    (dict(mode="normalized", filter="CallEnded|LinkDown.{1,}?Reason: ping"), True, False),
    (dict(mode="normalized", filter="902|Event: Link"), True, True),
    (dict(mode="normalized", headers={"Server": "pbx1"}), True, True),
    (dict(mode="normalized", headers={"Extension": "902"}), False, False),
])
def test_subscriber_gets_link_events_only_when_it_asks(kw, down, up):
    f = SubscriberFilter.compile(SubscriberConfig("s", "http://erp/ws", **kw))
    watch = LinkWatch()
    assert f.matches(watch.down("pbx1", "ping timeout: no answer to Ping within 5.0 s")) is down
    assert f.matches(watch.up("pbx1", "22.10.1", "11.0.0", 0)) is up


@pytest.fixture
def sink():
    with FakeErp(path="/ws") as receiver:
        yield receiver


def _steps_until_answered(profile: str, seq: int):
    steps = call_events(profile, "answered", seq=seq, time_scale=0)
    bridged = next(i for i, s in enumerate(steps) if dict(s.headers)["Event"] in ("Bridge", "BridgeEnter"))
    return steps[:bridged + 2]


def _outbox(db_url: str) -> list[dict]:
    from bridge.outbox import queries
    from bridge.outbox.db import make_engine

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return sorted(queries.list_rows(conn, limit=100_000), key=lambda r: r["id"])
    finally:
        engine.dispose()


def test_erp_hears_link_down_then_up_with_lost_calls_when_simulator_is_killed_and_restarted(tmp_path, sink):
    from bridge.runtime import Runtime

    db_url = f"sqlite:///{tmp_path / 'outbox.db'}"
    sim = AmiSimulator("asterisk20", users={"bridge": SECRET}, time_scale=0).start()
    port = sim.port
    config = Config(
        database=DatabaseConfig(url=db_url, batch_max_delay_s=0.005),
        ami=(AmiConfig(name="pbx1", port=port, username="bridge", secret=SECRET, reconnect_base_s=0.05,
                       reconnect_cap_s=0.2, connect_timeout_s=2.0),),
        subscribers=(SubscriberConfig("erp", sink.url + "/erp", retry_base_s=0.1),
                     SubscriberConfig("calls", sink.url + "/calls", events=("CallRinging", "CallAnswered",
                                                                             "CallEnded"), retry_base_s=0.1),
                     SubscriberConfig("rom", sink.url + "/rom", mode="raw", retry_base_s=0.1,
                                      events=("Hangup", "LinkDown", "LinkUp"))))
    runtime = Runtime(config, auto_upgrade=True, drain_timeout_s=5.0)
    try:
        runtime.start()
        first_up, = wait_links(sink, "/ws/erp", 1)
        assert first_up.headers == {"Event": "LinkUp", "Server": "pbx1", "AsteriskVersion": "22.10.1",
                                    "AMIVersion": "11.0.0", "LostCalls": "0"}   # down-time unknown at start
        assert (first_up.kind, first_up.server, first_up.order_key, first_up.has_call) == (
            "link", "pbx1", "link:pbx1", False)

        for step in _steps_until_answered("asterisk20", 7):           # a call is up when the PBX dies
            sim.emit(step.headers)
        assert sink.wait_for(lambda s: any(p.name == "CallAnswered" for p in pushed(s, "/ws/erp")))
        call_id = next(p["CallId"] for p in pushed(sink, "/ws/erp") if p.name == "CallAnswered")

        killed_at = time.time()
        sim.stop()
        down = wait_links(sink, "/ws/erp", 2)[1]
        assert down.name == "LinkDown" and down["Server"] == "pbx1" and down["Reason"]
        assert killed_at - 0.5 <= iso_ts(down["Since"]) <= time.time()
        time.sleep(0.6)                                                 # the PBX stays down a while
        sim = AmiSimulator("asterisk20", port=port, users={"bridge": SECRET}, time_scale=0).start()
        back = wait_links(sink, "/ws/erp", 3)[2]
        assert back.name == "LinkUp" and back["AsteriskVersion"] == "22.10.1" and back["AMIVersion"] == "11.0.0"
        assert back["DownSince"] == down["Since"] and back["LostCalls"] == "1"
        assert 0.6 <= float(back["DownSeconds"]) <= time.time() - killed_at + 0.1

        second = sim.run_scenario("answered", wait=True)              # life goes on after the reconnect
        assert sink.wait_for(lambda s: any(p.name == "CallEnded" and p["CallId"] == second
                                           and p["CallState"] == "ended" for p in pushed(s, "/ws/calls")))
    finally:
        runtime.stop()
        sim.stop()

    erp = pushed(sink, "/ws/erp")
    story = [(p.name, p.headers.get("CallId"), p.headers.get("Reason")) for p in erp if p.name != "LinkUp"
             and p.name != "LinkDown" and p["CallId"] == call_id]
    assert story == [("CallRinging", call_id, None), ("CallAnswered", call_id, None),
                     ("CallEnded", call_id, "lost-during-disconnect")]
    assert [(p.name, p.headers.get("Reason")) for p in links(sink, "/ws/erp")] == [
        ("LinkUp", None), ("LinkDown", down["Reason"]), ("LinkUp", None), ("LinkDown", "bridge stopped")]
    assert [p.name for p in links(sink, "/ws/rom")] == ["LinkUp", "LinkDown", "LinkUp", "LinkDown"]
    assert {p.name for p in pushed(sink, "/ws/rom")} == {"LinkUp", "LinkDown", "Hangup"}
    assert links(sink, "/ws/calls") == []
    assert [p.name for p in pushed(sink, "/ws/calls") if p["CallId"] == second] == [
        "CallRinging", "CallAnswered", "CallEnded"]

    rows = _outbox(db_url)
    assert {r["status"] for r in rows} == {"delivered"}                  # nothing pending, nothing dead
    assert {r["event_uuid"] for r in rows} == {r.id for r in sink.delivered()}  # nothing lost, nothing extra
    erp_rows = [r for r in rows if r["subscriber"] == "erp"]
    lost_row = next(i for i, r in enumerate(erp_rows) if r["event_name"] == "CallEnded" and r["order_key"] == call_id)
    up_rows = [i for i, r in enumerate(erp_rows) if r["event_name"] == "LinkUp"]
    assert up_rows[0] < lost_row < up_rows[1]           # the LinkUp counting the lost call comes after it


def test_erp_hears_link_down_when_asterisk_is_unreachable_at_start_and_link_up_when_it_appears(tmp_path, sink):
    import socket

    from bridge.runtime import Runtime

    with socket.socket() as s:          # a port nobody listens on (yet)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = Config(database=DatabaseConfig(url=f"sqlite:///{tmp_path / 'outbox.db'}", batch_max_delay_s=0.005),
                    ami=(AmiConfig(name="pbx1", port=port, username="bridge", secret=SECRET, reconnect_base_s=0.05,
                                   reconnect_cap_s=0.2, connect_timeout_s=2.0),),
                    subscribers=(SubscriberConfig("erp", sink.url + "/erp", retry_base_s=0.1),))
    runtime = Runtime(config, auto_upgrade=True, drain_timeout_s=5.0, link_grace_s=0.3)
    sim = AmiSimulator("asterisk20", port=port, users={"bridge": SECRET}, time_scale=0)
    try:
        started_at = time.time()
        runtime.start()
        down, = wait_links(sink, "/ws/erp", 1)
        assert down.name == "LinkDown" and down["Reason"].startswith("not reachable since the bridge started: ")
        assert "refused" in down["Reason"] and started_at <= iso_ts(down["Since"]) <= time.time()
        time.sleep(0.3)
        sim.start()
        up = wait_links(sink, "/ws/erp", 2)[1]
        assert up.headers == {"Event": "LinkUp", "Server": "pbx1", "AsteriskVersion": "22.10.1",
                              "AMIVersion": "11.0.0", "DownSince": down["Since"],
                              "DownSeconds": up["DownSeconds"], "LostCalls": "0"}
        assert 0.3 <= float(up["DownSeconds"]) <= time.time() - started_at + 0.05  # rounded to 0.1 s
    finally:
        runtime.stop()
        sim.stop()
    assert [(p.name, p.headers.get("Reason")) for p in links(sink, "/ws/erp")][1:] == [
        ("LinkUp", None), ("LinkDown", "bridge stopped")]
