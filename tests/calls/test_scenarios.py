"""Tests for bridge/testing/scenarios.py: well-formed, parseable, unique, profile-shaped sequences."""

from __future__ import annotations

import pytest

from bridge.ami.message import Message
from bridge.ami.protocol import AmiParser
from bridge.testing.scenarios import PROFILES, SCENARIOS, ORIGINATE_OUTCOMES, call_events

ALL = [(p, s) for p in PROFILES for s in SCENARIOS]
CHANNEL_EVENTS = {"Newchannel", "Newstate", "Hangup", "HangupRequest", "Newexten", "DialBegin",
                  "DialState", "DialEnd", "BridgeEnter", "BridgeLeave", "QueueCallerJoin",
                  "QueueCallerLeave"}


def _events(profile, scenario, **kw):
    return [dict(step.headers) for step in call_events(profile, scenario, seq=kw.pop("seq", 1),
                                                       time_scale=0, **kw)]


@pytest.mark.parametrize("profile,scenario", ALL)
def test_every_step_is_an_event_that_round_trips_when_encoded(profile, scenario):
    steps = call_events(profile, scenario, seq=3, time_scale=0)
    assert steps
    wire = b""
    for step in steps:
        assert step.headers[0][0] == "Event" and step.headers[1][0] == "Privilege"
        assert step.delay_s >= 0
        wire += (Message.from_pairs(step.headers).text + "\r\n\r\n").encode("utf-8")
    parser = AmiParser(expect_banner=False)
    parser.feed(wire)
    parsed = list(parser)
    assert [m.headers for m in parsed] == [s.headers for s in steps]


@pytest.mark.parametrize("profile,scenario", ALL)
def test_uniqueids_differ_when_seq_differs(profile, scenario):
    def ids(seq):
        return {e["Uniqueid"] for e in _events(profile, scenario, seq=seq) if e["Event"] == "Newchannel"}
    first, second = ids(1), ids(2)
    assert first and second and not first & second
    channels = [e["Channel"] for e in _events(profile, scenario, seq=1) if e["Event"] == "Newchannel"]
    assert len(channels) == len(set(channels)) == len(first)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_old_event_set_when_profile_is_asterisk11(scenario):
    events = _events("asterisk11", scenario)
    names = {e["Event"] for e in events}
    assert not names & {"DialBegin", "DialEnd", "BridgeEnter", "BridgeLeave", "QueueCallerJoin"}
    assert all("Linkedid" not in e for e in events)
    assert all(e["Channel"].startswith("SIP/") for e in events if e["Event"] == "Newchannel")
    for e in events:
        if e["Event"] == "Dial":
            assert e["SubEvent"] in ("Begin", "End") and "UniqueID" in e
        if e["Event"] == "Bridge":
            assert e["Bridgestate"] in ("Link", "Unlink") and "Uniqueid1" in e and "Uniqueid2" in e


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_new_event_set_with_linkedid_when_profile_is_asterisk20(scenario):
    events = _events("asterisk20", scenario)
    assert not {e["Event"] for e in events} & {"Dial", "Bridge", "Join", "Leave"}
    first = events[0]
    assert first["Event"] == "Newchannel" and first["Linkedid"] == first["Uniqueid"]
    for e in events:
        if e["Event"] in CHANNEL_EVENTS:
            # An Originate's DialBegin/DialEnd has only Dest* fields (22.10.1 capture).
            assert e.get("Linkedid", e.get("DestLinkedid")) == first["Uniqueid"], e
            assert e.get("Channel", e.get("DestChannel")).startswith("PJSIP/")


def test_queue_members_ring_and_losers_end_with_cause_26_when_member_2_answers():
    for profile in PROFILES:
        events = _events(profile, "queue")
        ringing = [e["Channel"].split("/")[1][:3] for e in events
                   if e["Event"] == "Newstate" and e["ChannelState"] == "5"]
        assert ringing == ["901", "902", "903"]
        causes = {e["Channel"].split("/")[1].split("-")[0]: e["Cause"] for e in events if e["Event"] == "Hangup"}
        assert causes == {"901": "26", "903": "26", "902": "16", "trunk": "16"}
        assert events[0]["CallerIDNum"] == "79161234567" and events[0]["Context"] == "from-trunk"


def test_cancel_dialend_is_sent_twice_byte_identical_when_profile_is_asterisk20():
    steps = call_events("asterisk20", "queue", seq=1, time_scale=0)
    cancels = [s.headers for s in steps if dict(s.headers).get("DialStatus") == "CANCEL"]
    assert len(cancels) == 4 and len(set(cancels)) == 2
    assert sum(1 for s in steps if dict(s.headers)["Event"] == "DialEnd") == 5


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("outcome", ORIGINATE_OUTCOMES)
def test_originate_ends_with_response_carrying_action_id(profile, outcome):
    events = _events(profile, "originate", outcome=outcome, action_id="a-17", channel="PJSIP/202",
                     exten="902", channel_id="chan-77")
    responses = [e for e in events if e["Event"] == "OriginateResponse"]
    assert len(responses) == 1 and responses[0]["ActionID"] == "a-17"
    reply = responses[0]
    assert reply["Response"] == ("Success" if outcome == "answered" else "Failure")
    assert reply["Reason"] == {"answered": "4", "noanswer": "3", "busy": "5", "failed": "0"}[outcome]
    if outcome != "answered":
        assert events[-1]["Event"] in ("OriginateResponse", "Hangup")
        assert reply["Uniqueid"] == ("<null>" if profile == "asterisk11" else "<unknown>")
    elif profile == "asterisk20":
        assert reply["Uniqueid"] == "chan-77" and events[0]["Uniqueid"] == "chan-77"
    else:
        assert reply["Uniqueid"] == events[0]["Uniqueid"] != "chan-77"


def test_delays_scale_when_time_scale_changes():
    slow = call_events("asterisk20", "answered", seq=1, time_scale=1.0)
    fast = call_events("asterisk20", "answered", seq=1, time_scale=0.01)
    assert sum(s.delay_s for s in slow) > 4.0
    assert sum(s.delay_s for s in fast) == pytest.approx(sum(s.delay_s for s in slow) * 0.01)


@pytest.mark.parametrize("kw", [dict(profile="asterisk13", scenario="answered"),
                                dict(profile="asterisk20", scenario="lunch"),
                                dict(profile="asterisk20", scenario="originate", outcome="maybe")])
def test_value_error_when_arguments_are_unknown(kw):
    with pytest.raises(ValueError):
        call_events(seq=1, **kw)
