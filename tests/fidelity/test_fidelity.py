"""Simulator fidelity: for every scenario the simulator offers, the story the real Asterisk 22.10.1
told (tests/fixtures/ami/asterisk-22.10.1/live-*, replayed through the CallTracker) is the story
the simulator's asterisk20 profile tells over real TCP.

Both sides are clocked by their events' `Timestamp` (Asterisk's `timestampevents`, the
simulator's `timestamp_events`), so Duration/Billsec are compared too, to within a second.
"""

from __future__ import annotations

import pytest

from bridge.testing.scenarios import ORIGINATE_OUTCOMES, SCENARIOS
from tests.calls.invariants import check_story
from tests.fidelity.stories import LIVE, SAME, assert_same_story, live_capture, replay_live, sim_story

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


@pytest.mark.parametrize("scenario,outcome", sorted(LIVE, key=str), ids=sorted(LIVE.values()))
def test_simulator_tells_the_story_the_real_asterisk_told(sim, scenario, outcome):
    name = LIVE[(scenario, outcome)]
    real = replay_live(name)
    simulated = sim_story(sim, scenario, outcome)
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
