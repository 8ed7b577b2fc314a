"""Tests for bridge/calls/tracker.py through the scenarios of both simulator profiles."""

from __future__ import annotations

import threading

import pytest

from bridge.ami.message import Message
from bridge.testing.scenarios import PROFILES, call_events
from bridge.calls import CallTracker
from bridge.config import CallsConfig
from bridge.events.model import NORMALIZED
from tests.calls.support import StepClock, comparable, play, short

SCENARIO_SEQUENCES = {
    "answered": ["CallRinging 902", "CallAnswered 902", "CallEnded 902 answered"],
    "noanswer": ["CallRinging 902", "CallEnded 902 no-answer"],
    "busy": ["CallRinging 902", "CallEnded 902 busy"],
    "caller-hangup-ringing": ["CallRinging 902", "CallEnded 902 cancelled"],
    "queue": ["CallRinging 901", "CallRinging 902", "CallRinging 903", "CallAnswered 902",
              "CallEnded 901 answered-elsewhere", "CallEnded 903 answered-elsewhere",
              "CallEnded 902 answered"],
    "blind-transfer": ["CallRinging 902", "CallAnswered 902", "CallTransferred 902",
                       "CallEnded 902 transferred", "CallRinging 903", "CallAnswered 903",
                       "CallEnded 903 answered"],
}


@pytest.mark.parametrize("scenario", sorted(SCENARIO_SEQUENCES))
def test_same_normalized_sequence_when_scenario_runs_on_both_profiles(scenario):
    _, old = play("asterisk11", scenario)
    _, new = play("asterisk20", scenario)
    assert [short(e) for e in old] == SCENARIO_SEQUENCES[scenario]
    assert [comparable(e) for e in old] == [comparable(e) for e in new]


@pytest.mark.parametrize("outcome,expected", [
    ("answered", ["CallRinging 202", "CallAnswered 202", "CallRinging 902", "CallAnswered 902",
                  "CallEnded 902 answered"]),
    ("noanswer", ["CallRinging 202", "CallEnded 202 no-answer"]),
    ("busy", ["CallEnded 202 busy"]),
    ("failed", ["CallEnded 202 failed"]),
])
def test_same_sequence_when_originate_outcome_is_played_on_both_profiles(outcome, expected):
    _, old = play("asterisk11", "originate", outcome=outcome, channel="SIP/202", exten="902")
    _, new = play("asterisk20", "originate", outcome=outcome, channel="PJSIP/202", exten="902")
    assert [short(e) for e in old] == expected
    assert [comparable(e) for e in old] == [comparable(e) for e in new]


@pytest.mark.parametrize("profile", PROFILES)
def test_call_end_carries_duration_billsec_and_cause_when_answered(profile):
    _, events = play(profile, "answered")
    end = dict(events[-1].headers)
    # RING_S = 2 s of ringing, TALK_S = 3 s of talk (bridge/testing/scenarios.py).
    assert (end["Duration"], end["Billsec"]) == ("5", "3")
    assert (end["Cause"], end["CauseTxt"], end["HangupBy"]) == ("16", "Normal Clearing", "callee")
    assert end["CallState"] == "ended" and end["Direction"] == "internal"


@pytest.mark.parametrize("profile", PROFILES)
def test_queue_call_is_inbound_and_not_missed_when_member_2_answers(profile):
    tracker, events = play(profile, "queue")
    final = dict(events[-1].headers)
    assert final["CallState"] == "ended" and final["Reason"] == "answered"
    assert final["AnsweredBy"] == "902" and final["Direction"] == "inbound"
    assert (final["CallerIDNum"], final["CallerIDName"]) == ("79161234567", "Иван Петров")
    assert all(e.get("Reason") != "no-answer" for e in events)
    info = tracker.call(final["CallId"])
    assert info.answered_by == "902" and info.queue == "support" and info.reason == "answered"
    assert [(leg.extension, leg.reason) for leg in info.legs] == [
        ("trunk", "answered"), ("901", "answered-elsewhere"), ("902", "answered"),
        ("903", "answered-elsewhere")]


@pytest.mark.parametrize("profile", PROFILES)
def test_normalized_events_are_bridge_events_ordered_by_call_id(profile):
    _, events = play(profile, "answered", server="pbx7")
    call_id = events[0].get("CallId")
    for event in events:
        assert event.kind == NORMALIZED and event.server == "pbx7" and event.order_key == call_id
        assert event.text.startswith(f"Event: {event.name}\r\nCallId: {call_id}\r\n")
        assert event.text == "\r\n".join(f"{k}: {v}" for k, v in event.headers)
        assert event.call["Extension"] == "902"


def test_call_id_is_linkedid_when_profile_is_asterisk20():
    steps = call_events("asterisk20", "answered", seq=4, time_scale=0)
    linkedid = dict(steps[0].headers)["Linkedid"]
    _, events = play("asterisk20", "answered", seq=4)
    assert {e.get("CallId") for e in events} == {linkedid}


@pytest.mark.parametrize("profile", PROFILES)
def test_status_queries_follow_the_call_when_it_rings_answers_and_ends(profile):
    clock = StepClock()
    tracker = CallTracker(CallsConfig(), clock=clock)
    steps = call_events(profile, "answered", seq=2, time_scale=1.0)
    seen = []
    for step in steps:
        clock.now += step.delay_s
        tracker.feed("pbx1", Message.from_pairs(step.headers))
        current = tracker.extension_call("902")
        seen.append(current.state if current else None)
    assert seen[0] is None and "ringing" in seen and "answered" in seen and seen[-1] is None
    assert tracker.active_calls() == [] and len(tracker) == 1


def test_active_calls_lists_only_live_calls_when_several_run():
    clock = StepClock()
    tracker = CallTracker(CallsConfig(), clock=clock)
    steps = call_events("asterisk20", "answered", seq=1, time_scale=0)
    for step in steps[:12]:   # up to and including BridgeEnter: the call is answered
        tracker.feed("pbx1", Message.from_pairs(step.headers))
    play("asterisk20", "busy", tracker=tracker, clock=clock, seq=2)
    active = tracker.active_calls()
    assert [(c.state, c.answered_by, c.caller_num) for c in active] == [("answered", "902", "202")]
    assert tracker.active_calls(extension="902") == active
    assert tracker.active_calls(extension="555") == []
    assert tracker.call(active[0].call_id) == active[0]
    assert tracker.call("no-such-call") is None


def test_expire_drops_ended_calls_when_grace_period_passed():
    clock = StepClock()
    tracker = CallTracker(CallsConfig(ended_grace_s=60.0), clock=clock)
    _, events = play("asterisk11", "noanswer", tracker=tracker, clock=clock)
    call_id = events[-1].get("CallId")
    clock.now += 59
    tracker.expire()
    assert tracker.call(call_id) is not None
    clock.now += 2
    tracker.expire()
    assert tracker.call(call_id) is None and len(tracker) == 0 and tracker.channel_count == 0


@pytest.mark.parametrize("profile", PROFILES)
def test_memory_stays_bounded_when_many_calls_end(profile):
    clock = StepClock()
    tracker = CallTracker(CallsConfig(ended_grace_s=0.0), clock=clock)
    for seq in range(200):
        play(profile, "queue", tracker=tracker, clock=clock, seq=seq, time_scale=0)
        tracker.expire()
    assert len(tracker) == 0 and tracker.channel_count == 0


@pytest.mark.parametrize("profile", PROFILES)
def test_lost_during_disconnect_when_reconcile_finds_the_call_gone(profile):
    clock = StepClock()
    tracker = CallTracker(CallsConfig(), clock=clock)
    steps = call_events(profile, "answered", seq=1, time_scale=0)
    bridged = next(i for i, s in enumerate(steps)
                   if dict(s.headers)["Event"] in ("Bridge", "BridgeEnter")) + 1
    for step in steps[:bridged + 1]:
        tracker.feed("pbx1", Message.from_pairs(step.headers))
    assert tracker.extension_call("902").state == "answered"
    # The link dropped; the Hangups were never seen; after reconnect nothing is live.
    events = tracker.reconcile("pbx1", [])
    assert [short(e) for e in events] == ["CallEnded 902 lost-during-disconnect"]
    assert events[0].get("CallState") == "ended"
    assert tracker.extension_call("902") is None and tracker.active_calls() == []
    # Hangups that arrive late change nothing.
    for step in steps[bridged + 1:]:
        assert tracker.feed("pbx1", Message.from_pairs(step.headers)) == []


def test_reconcile_keeps_calls_whose_channels_are_still_live():
    clock = StepClock()
    tracker = CallTracker(CallsConfig(), clock=clock)
    steps = call_events("asterisk20", "answered", seq=1, time_scale=0)
    for step in steps[:12]:
        tracker.feed("pbx1", Message.from_pairs(step.headers))
    live = [Message.from_pairs([("Event", "CoreShowChannel"), ("Channel", e["Channel"]),
                                ("Uniqueid", e["Uniqueid"]), ("Linkedid", e["Linkedid"])])
            for e in (dict(s.headers) for s in steps[:3]) if e["Event"] == "Newchannel"]
    assert tracker.reconcile("pbx1", live) == []
    assert tracker.reconcile("other-server", []) == []
    assert tracker.extension_call("902").state == "answered"


def test_direction_follows_trunk_patterns_when_configured():
    cfg = CallsConfig(trunk_channel_patterns=(r"^PJSIP/902-",))
    tracker = CallTracker(cfg, clock=StepClock())
    _, events = play("asterisk20", "answered", tracker=tracker)
    assert {e.get("Direction") for e in events} == {"outbound"}


def test_unrelated_events_are_ignored_when_fed():
    tracker = CallTracker()
    for pairs in ([("Event", "PeerStatus"), ("Peer", "SIP/202")], [("Event", "Hangup")],
                  [("Event", "Newstate"), ("Uniqueid", "nope"), ("ChannelState", "x")],
                  [("Response", "Success")], [("Event", "Dial"), ("SubEvent", "Begin")]):
        assert tracker.feed("pbx1", Message.from_pairs(pairs)) == []
    assert len(tracker) == 0


def test_threads_feeding_different_servers_keep_calls_apart():
    tracker = CallTracker(CallsConfig(), clock=StepClock())
    results = {}

    def run(server, profile):
        events = []
        for seq in range(30):
            events += play(profile, "queue", tracker=tracker, server=server, seq=seq, time_scale=0)[1]
        results[server] = events

    threads = [threading.Thread(target=run, args=(f"pbx{i}", p)) for i, p in enumerate(PROFILES * 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert all(len(events) == 30 * 7 for events in results.values()) and len(results) == 4
    assert len(tracker) == 4 * 30 and tracker.active_calls() == []


@pytest.mark.parametrize("profile", PROFILES)
def test_feature_blind_transfer_event_is_normalized_on_both_event_sets(profile):
    """Asterisk 12+ `BlindTransfer` and 11's `Transfer` (TransferType Blind), as features.c sends them."""
    clock = StepClock()
    tracker = CallTracker(CallsConfig(), clock=clock)
    steps = [dict(s.headers) for s in call_events(profile, "answered", seq=1, time_scale=0)]
    bridged = max(i for i, e in enumerate(steps) if e["Event"] in ("Bridge", "BridgeEnter"))
    for e in steps[:bridged + 1]:
        tracker.feed("pbx1", Message.from_pairs(e.items()))
    caller, callee = steps[0], next(e for e in steps[1:] if e["Event"] == "Newchannel")
    if profile == "asterisk11":
        pairs = [("Event", "Transfer"), ("Privilege", "call,all"), ("TransferMethod", "SIP"),
                 ("TransferType", "Blind"), ("Channel", callee["Channel"]), ("Uniqueid", callee["Uniqueid"]),
                 ("TargetChannel", caller["Channel"]), ("TargetUniqueid", caller["Uniqueid"]),
                 ("TransferExten", "903"), ("TransferContext", "from-internal")]
    else:
        pairs = [("Event", "BlindTransfer"), ("Privilege", "call,all"), ("Result", "Success"),
                 ("TransfererChannel", callee["Channel"]), ("TransfererUniqueid", callee["Uniqueid"]),
                 ("TransfereeChannel", caller["Channel"]), ("TransfereeUniqueid", caller["Uniqueid"]),
                 ("IsExternal", "No"), ("Context", "from-internal"), ("Extension", "903")]
    events = tracker.feed("pbx1", Message.from_pairs(pairs))
    assert [short(e) for e in events] == ["CallTransferred 902"]
    moved = dict(events[0].headers)
    assert (moved["TransferTarget"], moved["TransferType"]) == ("903", "blind")
    assert tracker.call(moved["CallId"]).transfers == ("903",)
    assert tracker.feed("pbx1", Message.from_pairs(pairs)) == []     # a repeat changes nothing
