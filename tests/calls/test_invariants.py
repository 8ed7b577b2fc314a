"""tests/calls/invariants.py: each check passes good stories and fails the story that breaks it.

Stories are written by hand: the fields a 1C developer reads, for calls whose outcome is known.
"""

from __future__ import annotations

import copy

import pytest

from bridge.events.model import NORMALIZED, BridgeEvent
from tests.calls.invariants import check_stories, check_story


def ev(event, ext, state, call_state, *, caller="202", call="1700.1", **extra):
    e = {"Event": event, "CallId": call, "Extension": ext, "CallerIDNum": caller,
         "CalleeNum": "902", "State": state, "CallState": call_state}
    if event == "CallAnswered":
        e["AnsweredBy"] = ext
    if event == "CallEnded":
        e.update(Reason="", Duration="0", Billsec="0", AnsweredBy="", HangupBy="")
    e.update({k: str(v) for k, v in extra.items()})
    return e


def ended(ext, call_state, reason, duration, billsec, by="", **kw):
    return ev("CallEnded", ext, "ended", call_state, Reason=reason, Duration=duration,
              Billsec=billsec, AnsweredBy=by, **kw)


# 202 calls 902, 902 answers after 2 s, they talk 3 s.
ANSWERED = [
    ev("CallRinging", "902", "ringing", "ringing"),
    ev("CallAnswered", "902", "answered", "answered"),
    ended("902", "ended", "answered", 5, 3, "902"),
]
# 202 calls 902, nobody answers within the Dial timeout.
NOANSWER = [
    ev("CallRinging", "902", "ringing", "ringing"),
    ended("902", "ended", "no-answer", 6, 0),
]
# Busy before ringing: only the end.
BUSY = [ended("902", "ended", "busy", 0, 0)]
# Queue 600 rings members 901, 902, 903; 902 answers; the others lose the race.
QUEUE = [
    ev("CallRinging", "600", "ringing", "ringing", caller="79161234567"),
    ev("CallRinging", "901", "ringing", "ringing", caller="79161234567"),
    ev("CallRinging", "902", "ringing", "ringing", caller="79161234567"),
    ev("CallRinging", "903", "ringing", "ringing", caller="79161234567"),
    ev("CallAnswered", "902", "answered", "answered", caller="79161234567"),
    ended("901", "answered", "answered-elsewhere", 2, 0, "902", caller="79161234567"),
    ended("903", "answered", "answered-elsewhere", 2, 0, "902", caller="79161234567"),
    ended("600", "answered", "answered", 5, 3, "902", caller="79161234567"),
    ended("902", "ended", "answered", 5, 3, "902", caller="79161234567"),
]
# ClickToCall: operator 151 rings and answers, then the number 252 is dialed and never answers.
CLICK_NOANSWER = [
    ev("CallRinging", "151", "ringing", "ringing", caller="151"),
    ev("CallAnswered", "151", "answered", "ringing", caller="151"),
    ev("CallRinging", "252", "ringing", "ringing", caller="151"),
    ended("252", "ended", "no-answer", 10, 0, caller="151"),
]
# Answered by 902, blind-transferred to 903 which answers; 902 leaves.
TRANSFER = [
    ev("CallRinging", "902", "ringing", "ringing"),
    ev("CallAnswered", "902", "answered", "answered"),
    ev("CallTransferred", "902", "answered", "answered", TransferTarget="903"),
    ended("902", "answered", "transferred", 5, 3, "902"),
    ev("CallRinging", "903", "ringing", "answered"),
    ev("CallAnswered", "903", "answered", "answered"),
    ended("903", "ended", "answered", 12, 8, "903"),
]
# The bridge lost the AMI link during an answered call.
LOST = [
    ev("CallRinging", "902", "ringing", "ringing"),
    ev("CallAnswered", "902", "answered", "answered"),
    ended("902", "ended", "lost-during-disconnect", 40, 38, "902"),
]
GOOD = {"answered": ANSWERED, "noanswer": NOANSWER, "busy": BUSY, "queue": QUEUE,
        "click-noanswer": CLICK_NOANSWER, "transfer": TRANSFER, "lost": LOST}


def broken(story, edit):
    story = copy.deepcopy(story)
    edit(story)
    return story


def _swap(story, i, j):
    story[i], story[j] = story[j], story[i]


# (name, good story, edit that breaks it, invariant the message must name)
BROKEN = [
    ("mixed call ids", ANSWERED, lambda s: s[1].update(CallId="1700.9"), "invariant 1"),
    ("unknown event", ANSWERED, lambda s: s[1].update(Event="CallHeld"), "invariant 1"),
    ("State does not match the event", ANSWERED, lambda s: s[0].update(State="answered"), "invariant 1"),
    ("no final CallEnded", ANSWERED, lambda s: s.pop(), "invariant 2"),
    ("final CallEnded not the last event", ANSWERED, lambda s: _swap(s, 1, 2), "invariant 2"),
    ("two final CallEnded", NOANSWER, lambda s: s.append(dict(s[-1])), "invariant 2"),
    ("event after the final CallEnded", BUSY,
     lambda s: s.append(ev("CallRinging", "902", "ringing", "ended")), "invariant 2"),
    ("CallState goes back", QUEUE, lambda s: s[5].update(CallState="ringing"), "invariant 3"),
    ("answered without a CallAnswered", NOANSWER,
     lambda s: s[-1].update(Reason="answered", AnsweredBy="902"), "invariant 4"),
    ("answered but Reason cancelled", ANSWERED,
     lambda s: s[-1].update(Reason="cancelled", Billsec="0"), "invariant 4"),
    ("answered with empty AnsweredBy", ANSWERED, lambda s: s[-1].update(AnsweredBy=""), "invariant 4"),
    ("AnsweredBy names a party that never answered", QUEUE,
     lambda s: s[-1].update(AnsweredBy="903"), "invariant 4"),
    ("AnsweredBy on an unanswered call", NOANSWER, lambda s: s[-1].update(AnsweredBy="902"), "invariant 4"),
    ("CallAnswered naming somebody else", ANSWERED, lambda s: s[1].update(AnsweredBy="903"), "invariant 4"),
    ("operator answering counted as the call answered", CLICK_NOANSWER,
     lambda s: s[-1].update(Reason="answered", AnsweredBy="151"), "invariant 4"),
    ("Billsec > Duration", ANSWERED, lambda s: s[-1].update(Billsec="6"), "invariant 5"),
    ("Billsec not a number", ANSWERED, lambda s: s[-1].update(Billsec="-1"), "invariant 5"),
    ("Billsec on an unanswered call", NOANSWER, lambda s: s[-1].update(Billsec="2"), "invariant 5"),
    ("Billsec for a loser", QUEUE, lambda s: s[5].update(Billsec="1"), "invariant 5"),
    ("a ringing party never closed", QUEUE, lambda s: s.pop(6), "invariant 6"),
    ("answered without ringing", ANSWERED, lambda s: s.pop(0), "invariant 7"),
    ("answered twice", ANSWERED, lambda s: s.insert(2, dict(s[1])), "invariant 7"),
    ("a loser answers after the winner", QUEUE, lambda s: s.__setitem__(
        5, ev("CallAnswered", "901", "answered", "answered", caller="79161234567")), "invariant 7"),
    ("a loser rings after the winner answered", QUEUE,
     lambda s: s.insert(4, dict(s.pop(1), CallState="answered")), "invariant 7"),
    ("answered-elsewhere with nobody answering", NOANSWER,
     lambda s: s[-1].update(Reason="answered-elsewhere"), "invariant 7"),
]


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_story_passes_when_every_invariant_holds(name):
    check_story(GOOD[name])


@pytest.mark.parametrize("name,story,edit,rule", BROKEN, ids=[b[0] for b in BROKEN])
def test_check_fails_naming_the_invariant_when_the_story_breaks_it(name, story, edit, rule):
    bad = broken(story, edit)
    with pytest.raises(AssertionError, match=rule):
        check_story(bad)


def test_empty_story_fails():
    with pytest.raises(AssertionError, match="invariant 2"):
        check_story([])


def test_bridge_events_are_accepted_as_well_as_dicts():
    events = [BridgeEvent(server="pbx1", name=e["Event"], kind=NORMALIZED, headers=tuple(e.items()),
                          text="", order_key=e["CallId"]) for e in ANSWERED]
    check_story(events)
    with pytest.raises(AssertionError, match="invariant 2"):
        check_story(events[:-1])


def test_interleaved_stream_is_split_by_call_id_and_each_call_checked():
    other = [dict(e, CallId="1700.2") for e in NOANSWER]
    stream = [ANSWERED[0], other[0], ANSWERED[1], other[1], ANSWERED[2]]
    assert check_stories(stream) == 2
    with pytest.raises(AssertionError, match="invariant 2"):
        check_stories(stream[:-1])
