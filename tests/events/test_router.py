"""Tests for bridge/events/router.py: the fast path agrees with the filters, ROM-compatibility."""

from __future__ import annotations

import random

import pytest

from bridge.ami.message import Message
from bridge.testing.scenarios import PROFILES, SCENARIOS, call_events
from bridge.calls import CALL_EVENT_NAMES, CallTracker
from bridge.config import SubscriberConfig
from bridge.events import SERVICE_EVENTS, Router
from bridge.events.pipeline import raw_event
from bridge.events.router import MAX_PLANS

ROM = "Dial.{1,}?Begin.{1,}?902|Bridge.{1,}?902|Hangup.{1,}?902"


def _sub(name, **kw):
    return SubscriberConfig(name=name, url="http://erp/ws", **kw)


def _stream(profile, scenario, seq=1, **kw):
    """Raw and normalized BridgeEvents of one scenario, in pipeline order."""
    tracker = CallTracker()
    out = []
    for step in call_events(profile, scenario, seq=seq, time_scale=0, **kw):
        message = Message.from_pairs(step.headers)
        out.append(raw_event("pbx1", message))
        out.extend(tracker.feed("pbx1", message))
    return out


def _label(event):
    sub = event.get("SubEvent") or event.get("Bridgestate")
    who = event.get("Channel") or event.get("Channel2") or ""
    return f"{event.name}{'/' + sub if sub else ''} {who.split('/')[1].split('-')[0] if '/' in who else ''}".strip()


def _many_subscribers(rng: random.Random, count: int = 50):
    shapes = [
        lambda e: dict(filter=f"Dial.{{1,}}?Begin.{{1,}}?{e}|Bridge.{{1,}}?{e}|Hangup.{{1,}}?{e}"),
        lambda e: dict(filter=f"{e}", mode="both"),
        lambda e: dict(filter=f"Exten: {e}|Extension: {e}", mode="both", exclude_events=("Newexten",)),
        lambda e: dict(mode="normalized", headers={"Extension": e}),
        lambda e: dict(mode="normalized", headers={"Extension": f"/^{e[:2]}/"}, events=("callended",)),
        lambda e: dict(filter=f"(?i)hangup.*{e}"),                       # no usable literal
        lambda e: dict(filter="[0-9]+3\r\n", events=("Hangup", "Newstate")),
        lambda e: dict(events=("DialBegin", "Dial"), headers={"Dialstring": e}),
    ]
    return [_sub(f"s{i}", **rng.choice(shapes)(str(rng.choice([901, 902, 903, 202, 600]))))
            for i in range(count)]


def test_route_agrees_with_each_filter_when_50_subscribers_see_every_scenario():
    rng = random.Random(7)
    subscribers = _many_subscribers(rng)
    router = Router(subscribers)
    events = [e for p in PROFILES for s in SCENARIOS for e in _stream(p, s)]
    assert len(events) > 250
    routed = 0
    for event in events:
        expected = [f.name for f in router.filters if f.matches(event)]
        assert router.route(event) == expected, event.text
        routed += bool(expected)
    assert 0 < routed < len(events)


def test_disabled_subscriber_gets_nothing_until_enabled_again():
    router = Router([_sub("a", mode="both", filter="902"), _sub("b", mode="both", filter="902", enabled=False)])
    event = _stream("asterisk20", "answered")[3]
    assert router.route(event) == ["a"]
    router.set_enabled("b", True)
    router.set_enabled("a", False)
    assert router.route(event) == ["b"] and router.is_enabled("b")
    with pytest.raises(KeyError):
        router.set_enabled("nobody", True)


def test_rom_filter_passes_exactly_the_902_dial_bridge_hangup_events_when_profile_is_asterisk11():
    router = Router([_sub("rom", mode="raw", filter=ROM)])
    to_902 = _stream("asterisk11", "answered", seq=1)
    to_903 = _stream("asterisk11", "answered", seq=2, callee="903")
    passed = [_label(e) for e in to_902 + to_903 if router.route(e)]
    # Ringing (Dial Begin), answer (Bridge Link), the end (HangupRequest, both Hangups — the
    # caller's names 902 as its connected line — and Bridge Unlink); nothing of the 903 call.
    assert passed == ["Dial/Begin 202", "Bridge/Link 902", "HangupRequest 902", "Hangup 902",
                      "Bridge/Unlink 902", "Hangup 202"]
    noanswer = [_label(e) for e in _stream("asterisk11", "noanswer") if router.route(e)]
    assert noanswer == ["Dial/Begin 202", "Hangup 902"]


def test_rom_filter_misses_the_ringing_when_profile_is_asterisk20():
    # Why the normalized model exists: DialBegin has no "Begin" after "Dial" (Asterisk 12+).
    router = Router([_sub("rom", mode="raw", filter=ROM)])
    passed = [_label(e) for e in _stream("asterisk20", "answered") if router.route(e)]
    assert not any(p.startswith("Dial") for p in passed)


@pytest.mark.parametrize("scenario,expected", [
    ("answered", ["CallRinging", "CallAnswered", "CallEnded"]),
    ("noanswer", ["CallRinging", "CallEnded"]),
    ("queue", ["CallRinging", "CallAnswered", "CallEnded"]),
])
def test_normalized_extension_filter_gives_ring_answer_end_on_both_profiles(scenario, expected):
    router = Router([_sub("erp", mode="normalized", headers={"Extension": "902"})])
    for profile in PROFILES:
        stream = _stream(profile, scenario, seq=1) + _stream(profile, "answered", seq=2, callee="903")
        passed = [e for e in stream if router.route(e)]
        assert [e.name for e in passed] == expected
        assert all(e.get("Extension") == "902" for e in passed)


def test_ami_filters_allow_only_needed_and_listed_events_when_every_subscriber_names_them():
    router = Router([_sub("erp", mode="normalized", headers={"Extension": "902"}),
                     _sub("raw", mode="raw", events=("PeerStatus", "Hangup"), enabled=False)],
                    needed_events=CALL_EVENT_NAMES)
    lines = router.ami_filters()
    assert "Event: PeerStatus[^A-Za-z]" in lines
    assert {f"Event: {n}[^A-Za-z]" for n in router.needed_events} <= set(lines)
    assert {"Newchannel", "DialBegin", "Dial", "OriginateResponse"} <= set(router.needed_events)
    assert set(SERVICE_EVENTS) | set(CALL_EVENT_NAMES) == set(router.needed_events)
    assert not any(line.startswith("!") for line in lines)


def test_ami_filters_deny_only_what_every_subscriber_excludes_and_nobody_needs():
    router = Router([_sub("a", mode="raw", filter=ROM, exclude_events=("VarSet", "Newexten", "RTCPSent")),
                     _sub("b", mode="both", exclude_events=("varset", "Newexten", "Cdr"))],
                    needed_events=CALL_EVENT_NAMES)
    # Newexten is excluded by both, but the call model reads it (redirects), so it still comes.
    assert router.ami_filters() == ["!Event: VarSet[^A-Za-z]"]
    assert Router([_sub("a", mode="raw", filter=ROM)]).ami_filters() == []


def test_plan_cache_stays_bounded_when_event_names_are_invented():
    router = Router([_sub("a", filter="902")])
    for i in range(MAX_PLANS + 10):
        router.route(raw_event("pbx1", Message.from_pairs([("Event", f"Made{i}"), ("X", "902")])))
    assert len(router._plans) <= MAX_PLANS


def test_call_event_names_cover_both_event_sets():
    assert {"Dial", "Bridge", "DialBegin", "BridgeEnter", "Hangup"} <= set(CALL_EVENT_NAMES)
