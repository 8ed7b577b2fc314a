"""Helpers for the call-model tests: replay scenarios and captures through a CallTracker."""

from __future__ import annotations

from pathlib import Path

from bridge.ami.message import Message
from bridge.ami.protocol import AmiParser
from bridge.testing.scenarios import call_events
from bridge.calls import CallTracker
from bridge.config import CallsConfig

AMI = Path(__file__).resolve().parents[1] / "fixtures" / "ami"
CAPTURE_11 = AMI / "asterisk-11.25.3"
CAPTURE_22 = AMI / "asterisk-22.10.1"

# Everything but ids, channel names and wall-clock times: what must match across versions.
COMPARED = ("Extension", "CallerIDNum", "CallerIDName", "CalleeNum", "Direction", "State",
            "CallState", "Queue", "Reason", "Cause", "CauseTxt", "Duration", "Billsec",
            "HangupBy", "AnsweredBy", "TransferType", "TransferTarget")


class StepClock:
    """A clock the test moves forward by each scenario step's delay."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def comparable(event) -> tuple:
    d = dict(event.headers)
    return (event.name,) + tuple(d.get(k, "-") for k in COMPARED)


def untimed(event) -> tuple:
    """comparable() without Duration/Billsec: for calls timed by the wall clock, where a loaded
    machine stalling half a second mid-call rounds a duration up."""
    d = dict(event.headers)
    return (event.name,) + tuple(d.get(k, "-") for k in COMPARED if k not in ("Duration", "Billsec"))


def short(event) -> str:
    """`CallEnded 902 answered` style summary: name, Extension, then Reason when present."""
    d = dict(event.headers)
    return " ".join(x for x in (event.name, d["Extension"], d.get("Reason")) if x)


def play(profile: str, scenario: str, tracker: CallTracker | None = None, clock: StepClock | None = None,
         server: str = "pbx1", seq: int = 1, **kw):
    """Feed one scenario through a tracker, advancing the clock by the steps' delays."""
    clock = clock if clock is not None else StepClock()
    tracker = tracker if tracker is not None else CallTracker(CallsConfig(), clock=clock)
    events = []
    for step in call_events(profile, scenario, seq=seq, **kw):
        clock.now += step.delay_s
        events.extend(tracker.feed(server, Message.from_pairs(step.headers)))
    return tracker, events


def capture_messages(path: Path) -> list[Message]:
    parser = AmiParser()
    parser.feed(path.read_bytes())
    return [m for m in parser if isinstance(m, Message) and m.is_event]


def replay(path: Path, tracker: CallTracker | None = None, server: str = "pbx1"):
    tracker = tracker if tracker is not None else CallTracker(CallsConfig(), clock=StepClock())
    events = []
    for message in capture_messages(path):
        events.extend(tracker.feed(server, message))
    return tracker, events
