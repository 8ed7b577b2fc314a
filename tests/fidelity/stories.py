"""Normalized stories from a recorded capture (clocked by its `Timestamp` headers) and from the
simulator over real TCP, in one comparable form."""

from __future__ import annotations

from pathlib import Path

from bridge.ami.protocol import Message
from bridge.calls import CallTracker
from bridge.config import CallsConfig
from tests.calls.invariants import as_story
from tests.calls.support import CAPTURE_22, COMPARED, StepClock, capture_messages

# What must match between the simulator and the real PBX: everything the ERP reads except
# ids, channel names and wall-clock times; Duration/Billsec are compared to within a second.
TIMED = ("Duration", "Billsec")
SAME = tuple(k for k in COMPARED if k not in TIMED)

# simulator scenario (and originate outcome) → live capture name
LIVE = {
    ("answered", None): "answered",
    ("noanswer", None): "noanswer",
    ("busy", None): "busy",
    ("caller-hangup-ringing", None): "caller-hangup-ringing",
    ("queue", None): "queue",
    ("blind-transfer", None): "blind-transfer",
    ("originate", "answered"): "originate-answered",
    ("originate", "noanswer"): "originate-noanswer",
    ("originate", "busy"): "originate-busy",
    ("originate", "failed"): "originate-failed",
}


def live_capture(name: str) -> Path:
    return CAPTURE_22 / f"live-{name}-22.10.1.ami"


def feed(messages: list[Message]) -> list[dict[str, str]]:
    """Messages through a CallTracker whose clock is each event's `Timestamp` (when present)."""
    clock = StepClock()
    tracker = CallTracker(CallsConfig(), clock=clock)
    out: list[dict[str, str]] = []
    for message in messages:
        stamp = message.get("Timestamp")
        if stamp:
            clock.now = float(stamp)
        out.extend(as_story(tracker.feed("pbx1", message)))
    return out


def replay_live(name: str) -> list[dict[str, str]]:
    return feed(capture_messages(live_capture(name)))


def key(e: dict[str, str]) -> tuple:
    return (e["Event"],) + tuple(e.get(k, "-") for k in SAME)


def timed(e: dict[str, str]) -> tuple[int, ...]:
    return tuple(int(e[k]) for k in TIMED if k in e)


def assert_same_story(sim: list[dict[str, str]], real: list[dict[str, str]]) -> None:
    """Same events in the same order with the same fields; Duration/Billsec within 1 s."""
    assert [key(e) for e in sim] == [key(e) for e in real], (
        "simulator:\n  " + "\n  ".join(map(str, map(key, sim))) +
        "\nreal Asterisk 22.10.1:\n  " + "\n  ".join(map(str, map(key, real))))
    for s, r in zip(sim, real):
        assert all(abs(a - b) <= 1 for a, b in zip(timed(s), timed(r))), (key(s), timed(s), timed(r))
