"""An Originate straight into an application (`Application: Wait`, no Context/Exten): the
originated channel's destination is the party called, on Asterisk 11 and 22 alike."""

from __future__ import annotations

import pytest

from bridge.ami.message import Message
from bridge.calls import CallTracker
from bridge.config import CallsConfig
from tests.calls.invariants import check_story
from tests.calls.support import CAPTURE_11, CAPTURE_22, COMPARED, StepClock, capture_messages

# (capture, CallId of the `orig-100-app*` Originate, the caller ID it was sent with)
APP_CALLS = [
    (CAPTURE_11 / "calls-11.25.3.ami", "1795667581.18", "100"),
    (CAPTURE_22 / "calls-22.10.1.ami", "1795666881.10", "100"),
    (CAPTURE_22 / "cp1251-callerid-amiheader-22.10.1.ami", "1795667227.20", "901"),
]


def _story(messages, call_id):
    tracker = CallTracker(CallsConfig(), clock=StepClock())
    events = [e for m in messages for e in tracker.feed("pbx1", m)]
    return [e for e in events if e.get("CallId") == call_id]


def _fields(event, *keys):
    d = dict(event.headers)
    return (event.name,) + tuple(d.get(k, "-") for k in keys)


@pytest.mark.parametrize("path,call_id,caller", APP_CALLS, ids=[p.name for p, _, _ in APP_CALLS])
def test_the_originated_extension_rings_answers_and_ends_the_call_when_capture_is_replayed(path, call_id, caller):
    story = _story(capture_messages(path), call_id)
    keys = ("Extension", "CallerIDNum", "CalleeNum", "State", "CallState", "Reason", "AnsweredBy", "HangupBy")
    # Local/100@test into Wait(1): 100's dialplan (Answer, Wait(2)) picks up without ringing (it
    # rang for no time); Wait(1), the originator's side, ends first.
    assert [_fields(e, *keys) for e in story] == [
        ("CallRinging", "100", caller, "100", "ringing", "ringing", "-", "-", "-"),
        ("CallAnswered", "100", caller, "100", "answered", "answered", "-", "100", "-"),
        ("CallEnded", "100", caller, "100", "ended", "ended", "answered", "100", "caller"),
    ]
    check_story(story)


@pytest.mark.parametrize("path,call_id,caller", APP_CALLS, ids=[p.name for p, _, _ in APP_CALLS])
def test_same_story_when_the_originate_response_never_arrives(path, call_id, caller):
    # A `Filter` on the bridge's AMI user, or a reconnect, may hide OriginateResponse: the call
    # still never ran dialplan nor dialed anyone once up, so its channel is still the party —
    # told as it ends. Only HangupBy is lost: when the hangup began, nobody was known to talk.
    messages = capture_messages(path)
    without = [m for m in messages if m.event != "OriginateResponse"]
    assert len(without) < len(messages)
    got = [dict(e.headers) for e in _story(without, call_id)]
    assert [g.pop("HangupBy", "-") for g in got] == ["-", "-", ""]
    want = [dict(e.headers) for e in _story(messages, call_id)]
    for w in want:
        w.pop("HangupBy", None)
    assert [[g.get(k) for k in COMPARED] for g in got] == [[w.get(k) for k in COMPARED] for w in want]
    assert [g["Event"] for g in got] == ["CallRinging", "CallAnswered", "CallEnded"]


def _ev(name, **headers):
    return Message.from_pairs([("Event", name)] + [(k, str(v)) for k, v in headers.items()])


def test_a_phone_channel_sent_into_an_application_is_the_party_from_its_originate_response():
    # No Local channel, so no far half to wait for: OriginateResponse decides at once.
    ch = dict(Channel="PJSIP/130-00000001", Uniqueid="1.1", Linkedid="1.1", Context="default",
              Exten="s", CallerIDNum="7001", CallerIDName="Autodialer")
    clock = StepClock()
    tracker = CallTracker(CallsConfig(), clock=clock)
    out = []
    for step, message in enumerate([
            _ev("Newchannel", ChannelState=0, **ch),
            _ev("Newstate", ChannelState=5, **ch),
            _ev("Newstate", ChannelState=6, **ch),
            _ev("OriginateResponse", ActionID="a1", Response="Success", Channel=ch["Channel"],
                Application="Playback", Data="hello-world", Reason=4, Uniqueid="1.1"),
            _ev("Hangup", Cause=16, **ch)]):
        clock.now += 2 if step == 4 else 1
        out.extend(tracker.feed("pbx1", message))
    keys = ("Extension", "CallerIDNum", "CalleeNum", "CallState", "Reason", "AnsweredBy", "Billsec")
    assert [_fields(e, *keys) for e in out] == [
        ("CallRinging", "130", "7001", "130", "ringing", "-", "-", "-"),
        ("CallAnswered", "130", "7001", "130", "answered", "-", "130", "-"),
        ("CallEnded", "130", "7001", "130", "ended", "answered", "130", "3"),
    ]
    check_story(out)
