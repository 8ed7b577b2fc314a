"""Calls our own ClickToCall/Originate placed: told as the extension calling the number, with the
OriginateId 1C got back (bridge/calls/intents.py), replayed from real Asterisk 22.10.1 captures of
the ClickToCall shape (Originate of the operator's phone with a ChannelId)."""

from __future__ import annotations

from bridge.calls import CallTracker
from bridge.calls.intents import Intent, Intents
from bridge.config import CallsConfig
from tests.calls.support import CAPTURE_22, StepClock, replay


def _story(events):
    return [(e.name, dict(e.headers)["Extension"], dict(e.headers)["CallerIDNum"],
             dict(e.headers)["CalleeNum"], dict(e.headers).get("OriginateId")) for e in events]


def test_every_event_names_the_operator_the_number_and_the_originate_id_when_we_placed_the_call():
    tracker = CallTracker(CallsConfig(), clock=StepClock())
    tracker.expect_originate("pbx1", "sim-orig-answered-chan", "oid-1", "202", "902")
    _, events = replay(CAPTURE_22 / "live-originate-answered-22.10.1.ami", tracker)
    # The operator's phone rings and answers, then 902 rings, answers and hangs up.
    assert _story(events) == [
        ("CallRinging", "202", "202", "902", "oid-1"),
        ("CallAnswered", "202", "202", "902", "oid-1"),
        ("CallRinging", "902", "202", "902", "oid-1"),
        ("CallAnswered", "902", "202", "902", "oid-1"),
        ("CallEnded", "902", "202", "902", "oid-1"),
    ]
    # The operator's own caller ID was set (not the number): its name is kept.
    assert {dict(e.headers)["CallerIDName"] for e in events} == {"Оператор-202"}


def test_a_call_someone_else_originated_carries_no_originate_id():
    _, events = replay(CAPTURE_22 / "live-originate-answered-22.10.1.ami")
    assert events and all("OriginateId" not in dict(e.headers) for e in events)


def test_an_intent_is_taken_once_and_the_oldest_is_forgotten_first():
    intents = Intents(max_pending=2)
    for n in range(3):
        intents.expect("pbx1", f"u{n}", Intent(f"o{n}", "601", "108"))
    assert intents.take("pbx1", "u0") is None          # pushed out by the third
    assert intents.take("pbx1", "u2") == Intent("o2", "601", "108")
    assert intents.take("pbx1", "u2") is None
    assert intents.take("pbx2", "u1") is None          # another server's channel is another call
