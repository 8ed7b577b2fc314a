"""Normalized stories from a recorded capture (clocked by its `Timestamp` headers) and from the
simulator over real TCP, in one comparable form."""

from __future__ import annotations

import time
from pathlib import Path

from bridge.ami.message import Message
from bridge.testing.simulator import AmiSimulator
from bridge.calls import CallTracker
from bridge.config import CallsConfig
from tests.calls.invariants import as_story
from tests.calls.support import CAPTURE_22, COMPARED, StepClock, capture_messages
from tests.fidelity.live import RawSession

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


def sim_story(sim: AmiSimulator, scenario: str, outcome: str | None) -> list[dict[str, str]]:
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
        deadline = time.monotonic() + 10
        while True:
            born = {m.get("Uniqueid") for m in session.messages if m.event == "Newchannel"}
            dead = {m.get("Uniqueid") for m in session.messages if m.event == "Hangup"}
            responded = outcome is None or any(m.event == "OriginateResponse" for m in session.messages)
            if born <= dead and responded:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{scenario}: up {sorted(born - dead)}, responded {responded}")
            session.pump(0.1)
        return feed([m for m in session.messages if m.is_event])
    finally:
        session.close()
