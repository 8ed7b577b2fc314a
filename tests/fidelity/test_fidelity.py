"""Simulator fidelity: for every scenario the simulator offers, the story the real Asterisk 22.10.1
told (tests/fixtures/ami/asterisk-22.10.1/live-*, replayed through the CallTracker) is the story
the simulator's asterisk20 profile tells over real TCP.

Both sides are clocked by their events' `Timestamp` (Asterisk's `timestampevents`, the
simulator's `timestamp_events`), so Duration/Billsec are compared too, to within a second.
"""

from __future__ import annotations

import pytest

from bridge.ami.scenarios import ORIGINATE_OUTCOMES, SCENARIOS
from bridge.ami.simulator import AmiSimulator
from tests.calls.invariants import check_story
from tests.fidelity.live import RawSession
from tests.fidelity.stories import LIVE, SAME, assert_same_story, feed, live_capture, replay_live

# Where the recording cannot be the simulator's scenario, and why. The simulator's queue caller
# is an incoming trunk channel (state Ring) that dialed 600; the recording's caller is an
# Originated Local channel (Down), for which the model takes the first party dialed as the
# number called — here the first member, 901. (No SIP or working trunk driver on the test PBX.)
EMULATION_ONLY = {"queue": {"CalleeNum": ("600", "901")}}


def test_every_simulator_scenario_has_a_live_recording():
    offered = {(s, None) for s in SCENARIOS if s != "originate"}
    offered |= {("originate", o) for o in ORIGINATE_OUTCOMES}
    assert offered == set(LIVE)
    assert all(live_capture(name).is_file() for name in LIVE.values())


@pytest.fixture(scope="module")
def sim():
    server = AmiSimulator("asterisk20", users={"bridge": "secret"}, time_scale=0.0,
                          timestamp_events=True).start()
    yield server
    server.stop()


def _sim_story(sim: AmiSimulator, scenario: str, outcome: str | None) -> list[dict[str, str]]:
    """Log in over TCP, make the simulator play the scenario, read until its channels hung up."""
    session = RawSession(sim.port)
    try:
        session.send(("Action", "Login"), ("ActionID", "login"), ("Username", "bridge"),
                     ("Secret", "secret"))
        session.wait_for(lambda m: m.get("ActionID") == "login", 5)
        if outcome is None:
            sim.run_scenario(scenario)
        else:
            # As 1C's ClickToCall reaches it: an Originate action for the operator's phone.
            sim.originate_outcomes["902"] = outcome
            session.send(("Action", "Originate"), ("ActionID", f"orig-{outcome}"),
                         ("Channel", "PJSIP/202"), ("Context", "from-internal"), ("Exten", "902"),
                         ("Priority", "1"), ("CallerID", "Оператор-202 <202>"), ("Async", "true"),
                         ("ChannelId", f"orig-{outcome}-chan"))
        session.wait_for(lambda m: m.event == "Newchannel", 5)
        while True:
            born = {m.get("Uniqueid") for m in session.messages if m.event == "Newchannel"}
            dead = {m.get("Uniqueid") for m in session.messages if m.event == "Hangup"}
            if born <= dead and (outcome is None or any(m.event == "OriginateResponse"
                                                        for m in session.messages)):
                break
            if not session.pump(0.5) and not (born <= dead):
                raise AssertionError(f"{scenario}: channels still up: {sorted(born - dead)}")
        return feed([m for m in session.messages if m.is_event])
    finally:
        session.close()


@pytest.mark.parametrize("scenario,outcome", sorted(LIVE, key=str), ids=sorted(LIVE.values()))
def test_simulator_tells_the_story_the_real_asterisk_told(sim, scenario, outcome):
    name = LIVE[(scenario, outcome)]
    real = replay_live(name)
    simulated = _sim_story(sim, scenario, outcome)
    check_story(real)
    check_story(simulated)
    for field, (sim_value, real_value) in EMULATION_ONLY.get(name, {}).items():
        assert {e[field] for e in simulated} == {sim_value}
        assert {e[field] for e in real} == {real_value}
        for e in simulated + real:
            e[field] = "(emulation)"
    assert_same_story(simulated, real)


def test_stories_compare_every_field_the_erp_reads_but_ids_and_times():
    assert {"Extension", "CallerIDNum", "CallerIDName", "CalleeNum", "Direction", "State",
            "CallState", "Queue", "Reason", "Cause", "HangupBy", "AnsweredBy",
            "TransferTarget"} <= set(SAME)
