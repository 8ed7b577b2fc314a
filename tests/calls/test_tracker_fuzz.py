"""Robustness of bridge/calls/tracker.py: lost, repeated and reordered events never break it."""

from __future__ import annotations

import pytest

from hypothesis import given, settings, strategies as st

from bridge.ami.message import Message
from bridge.testing.scenarios import PROFILES, SCENARIOS, call_events
from bridge.calls import CallTracker
from bridge.config import CallsConfig
from tests.calls.support import StepClock

pytestmark = pytest.mark.slow  # long hypothesis runs

STREAMS = {(p, s): [Message.from_pairs(step.headers) for step in call_events(p, s, seq=i, time_scale=0)]
           for i, (p, s) in enumerate((p, s) for p in PROFILES for s in SCENARIOS)}


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(STREAMS)), st.sampled_from(sorted(STREAMS)), st.randoms(use_true_random=False),
       st.floats(0, 0.3), st.floats(0, 0.2))
def test_tracker_survives_and_empties_when_events_are_dropped_repeated_or_interleaved(
        first, second, rng, drop, repeat):
    clock = StepClock()
    tracker = CallTracker(CallsConfig(ended_grace_s=0.0), clock=clock)
    a, b = list(STREAMS[first]), list(STREAMS[second])
    merged = []
    while a or b:   # two calls interleaved at random, each in its own order
        source = a if (a and (not b or rng.random() < 0.5)) else b
        merged.append(source.pop(0))
    for message in merged:
        if rng.random() < drop:
            continue
        copies = 2 if rng.random() < repeat else 1
        for _ in range(copies):
            for event in tracker.feed("pbx1", message):
                assert event.kind == "normalized" and event.get("CallId")
                assert event.name in ("CallRinging", "CallAnswered", "CallEnded", "CallTransferred")
        clock.now += 0.5
    for event in tracker.reconcile("pbx1", []):
        assert event.name == "CallEnded"
    assert tracker.active_calls() == []
    tracker.expire()
    assert len(tracker) == 0 and tracker.channel_count == 0


@given(st.sampled_from(sorted(STREAMS)))
def test_every_call_ends_exactly_once_when_nothing_is_lost(key):
    tracker = CallTracker(CallsConfig(), clock=StepClock())
    finals = [e for m in STREAMS[key] for e in tracker.feed("pbx1", m) if e.get("CallState") == "ended"]
    assert len(finals) == 1 and finals[0].name == "CallEnded"


def test_reconcile_spares_channels_newer_than_the_mark():
    tracker = CallTracker(CallsConfig(), clock=StepClock())
    steps = STREAMS[("asterisk20", "answered")]
    mark = tracker.mark()          # CoreShowChannels sent before this call began …
    for message in steps[:12]:
        tracker.feed("pbx1", message)
    assert tracker.reconcile("pbx1", [], since_mark=mark) == []   # … so its list cannot show it
    assert tracker.extension_call("902").state == "answered"
    ended = tracker.reconcile("pbx1", [], since_mark=tracker.mark())
    assert [e.get("Reason") for e in ended] == ["lost-during-disconnect"]
