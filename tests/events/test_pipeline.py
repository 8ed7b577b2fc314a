"""Tests for bridge/events/pipeline.py over real TCP: AmiSimulator → AmiClient → Pipeline → sink."""

from __future__ import annotations

from collections import Counter

import pytest

from bridge.ami.client import AmiClient
from bridge.testing.scenarios import PROFILES, call_events
from bridge.testing.simulator import AmiSimulator
from bridge.calls import CALL_EVENT_NAMES, CallTracker
from bridge.config import AmiConfig, SubscriberConfig
from bridge.events import SERVICE_EVENTS, Pipeline, Router
from bridge.testing.helpers import RecordingSink
from tests.calls.support import short, untimed

SECRET = "s3cret-Пароль"
WAIT_S = 10.0




class CountingMetrics:
    def __init__(self) -> None:
        self.counts: Counter = Counter()

    def event_received(self, server):
        self.counts["received", server] += 1

    def event_filtered(self, server):
        self.counts["filtered", server] += 1

    def event_accepted(self, server, kind):
        self.counts["accepted", server, kind] += 1


def _final(call_id):
    return lambda accepted: any(e.kind == "normalized" and e.get("CallId") == call_id
                                and e.get("CallState") == "ended" for e, _ in accepted)


@pytest.fixture
def bridge_for():
    """Start a simulator of `profile`, a client, and a pipeline; stop them all afterwards."""
    started = []

    def start(profile, subscribers, **client_kw):
        sim = AmiSimulator(profile, users={"bridge": SECRET}, time_scale=0.0).start()
        router = Router(subscribers, needed_events=CALL_EVENT_NAMES)
        sink, metrics = RecordingSink(), CountingMetrics()
        pipeline = Pipeline(CallTracker(), router, sink, metrics=metrics)
        client = AmiClient(AmiConfig("pbx1", sim.host, sim.port, "bridge", SECRET, reconnect_base_s=0.05,
                                     reconnect_cap_s=0.2, connect_timeout_s=2.0, **client_kw),
                           filters=router.ami_filters())
        pipeline.attach(client)
        started.append((sim, client))
        client.start()
        assert client.wait_connected(WAIT_S) and sim.wait_logged_in(1, WAIT_S)
        return sim, client, pipeline, sink, metrics

    yield start
    for sim, client in started:
        client.stop()
        sim.stop()


EVERYONE = [SubscriberConfig("erp", "http://erp/ws", mode="normalized"),
            SubscriberConfig("rom", "http://rom/ws", mode="raw",
                             filter="Dial.{1,}?Begin.{1,}?902|Bridge.{1,}?902|Hangup.{1,}?902")]


def test_same_normalized_sequences_when_both_profiles_play_every_scenario(bridge_for):
    sequences = {}
    for profile in PROFILES:
        sim, client, pipeline, sink, _ = bridge_for(profile, EVERYONE)
        runs = []
        for scenario in ("answered", "noanswer", "busy", "caller-hangup-ringing", "queue", "blind-transfer"):
            call_id = sim.run_scenario(scenario, wait=True)
            assert sink.wait_for(_final(call_id)), (profile, scenario)
            runs.append([untimed(e) for e in sink.normalized(call_id)])   # wall-clock timed
        tech = "SIP" if profile == "asterisk11" else "PJSIP"
        for outcome in ("answered", "noanswer", "busy", "failed"):
            call_id = sim.run_scenario("originate", wait=True, outcome=outcome, channel=f"{tech}/202",
                                       exten="902", action_id=f"orig-{outcome}")
            assert sink.wait_for(_final(call_id)), (profile, outcome)
            runs.append([untimed(e) for e in sink.normalized(call_id)])   # wall-clock timed
        sequences[profile] = runs
        assert pipeline.tracker.active_calls() == []
    assert sequences["asterisk11"] == sequences["asterisk20"]
    assert [len(r) for r in sequences["asterisk20"]] == [3, 2, 2, 2, 7, 7, 5, 2, 1, 1]


@pytest.mark.parametrize("profile", PROFILES)
def test_subscribers_get_their_events_and_counters_add_up(profile, bridge_for):
    subs = [SubscriberConfig("n902", "http://a/ws", mode="normalized", headers={"Extension": "902"}),
            SubscriberConfig("raw-hangups", "http://b/ws", mode="raw", events=("Hangup",)),
            SubscriberConfig("off", "http://c/ws", mode="both", enabled=False)]
    sim, client, pipeline, sink, metrics = bridge_for(profile, subs)
    call_id = sim.run_scenario("queue", wait=True)
    assert sink.wait_for(_final(call_id))
    by_sub = Counter(name for _, names in sink.accepted for name in names)
    assert by_sub == {"n902": 3, "raw-hangups": 4}
    assert [short(e) for e in sink.normalized()] == [
        "CallRinging 902", "CallAnswered 902", "CallEnded 902 answered"]
    pipeline.router.set_enabled("off", True)
    second = sim.run_scenario("busy", wait=True)
    assert sink.wait_for(_final(second))
    assert any("off" in names for _, names in sink.accepted)
    c = metrics.counts
    accepted = sum(v for k, v in c.items() if k[0] == "accepted")
    assert accepted == len(sink.accepted)
    assert c["received", "pbx1"] >= len(call_events(profile, "queue", seq=1, time_scale=0))


def test_ami_filters_reach_the_pbx_and_it_sends_less_when_all_subscribers_are_normalized(bridge_for):
    subs = [SubscriberConfig("erp", "http://erp/ws", mode="normalized")]
    sim, client, pipeline, sink, metrics = bridge_for("asterisk20", subs)
    assert any(a.get("Filter") == "Event: DialBegin[^A-Za-z]" for a in sim.actions_named("Filter"))
    sim.emit([("Event", "VarSet"), ("Privilege", "dialplan,all"), ("Variable", "X"), ("Value", "1")])
    call_id = sim.run_scenario("answered", wait=True)
    assert sink.wait_for(_final(call_id))
    assert [short(e) for e in sink.normalized(call_id)] == [
        "CallRinging 902", "CallAnswered 902", "CallEnded 902 answered"]
    steps = call_events("asterisk20", "answered", seq=1, time_scale=0)
    allowed = sum(dict(s.headers)["Event"] in set(SERVICE_EVENTS) | set(CALL_EVENT_NAMES) for s in steps)
    assert allowed < len(steps)          # DialState, BridgeCreate/Destroy are not needed
    # What arrived: the call's needed events, plus FullyBooted after login; never VarSet.
    assert metrics.counts["received", "pbx1"] in (allowed, allowed + 1)


@pytest.mark.parametrize("profile", PROFILES)
def test_lost_during_disconnect_when_hangup_happens_while_link_is_down(profile, bridge_for):
    sim, client, pipeline, sink, _ = bridge_for(profile, EVERYONE)
    steps = call_events(profile, "answered", seq=50, time_scale=0)
    bridged = next(i for i, s in enumerate(steps) if dict(s.headers)["Event"] in ("Bridge", "BridgeEnter"))
    for step in steps[:bridged + 2]:
        sim.emit(step.headers)
    assert sink.wait_for(lambda acc: any(e.name == "CallAnswered" for e, _ in acc))
    call_id = sink.normalized()[0].get("CallId")
    sim.drop_connections()
    for step in steps[bridged + 2:]:      # the Hangups happen while nobody listens
        sim.emit(step.headers)
    assert sink.wait_for(_final(call_id)), "no CallEnded after reconnect"
    final = sink.normalized(call_id)[-1]
    assert (final.name, final.get("Reason"), final.get("Extension")) == (
        "CallEnded", "lost-during-disconnect", "902")
    assert pipeline.tracker.active_calls() == []
    assert any(a.event is None for a in sim.actions_named("CoreShowChannels"))


def test_raw_events_of_one_call_share_the_call_id_as_order_key_when_profile_is_asterisk11(bridge_for):
    subs = [SubscriberConfig("raw", "http://raw/ws", mode="both", exclude_events=("Newexten",))]
    sim, client, pipeline, sink, _ = bridge_for("asterisk11", subs)
    call_id = sim.run_scenario("answered", wait=True)
    assert sink.wait_for(_final(call_id))
    raw = [e for e, _ in sink.accepted if e.kind == "raw" and e.name in ("Dial", "Bridge", "Hangup", "Newstate")]
    assert len(raw) >= 6 and {e.order_key for e in raw} == {call_id}
    # LinkUp follows the resync on another thread and has its own order key: only call events here.
    kinds = [e.kind for e, _ in sink.accepted if e.kind != "link"]
    assert kinds.index("normalized") > 0 and kinds[-1] == "normalized"   # effects after causes


def test_every_routed_event_names_its_server_when_a_router_wrapper_reads_it(bridge_for):
    sim, client, pipeline, sink, _ = bridge_for("asterisk20", EVERYONE)
    seen = []
    route = pipeline.router.route
    pipeline.router.route = lambda event: seen.append((event.server, event.kind)) or route(event)
    call_id = sim.run_scenario("noanswer", wait=True)
    assert sink.wait_for(_final(call_id))
    # The first LinkUp may be routed after the wrapper went in (it follows the resync, on another thread).
    assert {server for server, _ in seen} == {"pbx1"}
    assert {kind for _, kind in seen} - {"link"} == {"raw", "normalized"}


def test_real_queue_captures_replayed_over_tcp_give_the_same_sequence(bridge_for):
    from tests.calls.support import CAPTURE_11, CAPTURE_22

    results = []
    for profile, path in (("asterisk11", CAPTURE_11 / "queue-11.25.3.ami"),
                          ("asterisk20", CAPTURE_22 / "queue-22.10.1.ami")):
        sim, client, pipeline, sink, _ = bridge_for(profile, EVERYONE)
        sim.replay(path)
        assert sink.wait_for(lambda acc: any(e.get("CallState") == "ended" for e, _ in acc))
        results.append([untimed(e) for e in sink.normalized()])
    assert results[0] == results[1]
    assert [r[0] for r in results[0]] == ["CallRinging"] * 4 + ["CallAnswered"] + ["CallEnded"] * 4
