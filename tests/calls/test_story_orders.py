"""Shuffled-but-causal event orders: several simulator calls at once, their AMI events delivered in
any order causality allows, must each still tell a story that keeps the invariants — and the
same story it tells alone.

Causality (what a real Asterisk cannot reorder), for the events of one call:
- events naming the same channel (Uniqueid, DestUniqueid, Uniqueid1/2, Transferee/Transferer
  Uniqueid) or the same bridge keep their order;
- a pause in the script (a delay longer than one step: ringing, talking) orders everything
  before it before everything after it — real time passed;
- a `Newchannel` comes after every earlier event of its call (the dialplan that creates the
  channel ran first); an answer (`Newstate` Up), `HangupRequest`, `Hangup` and a queue join
  (`QueueCallerJoin`/`Join`) come before every later event of their call (the other channels
  react to them: DialEnd, cancels of queue members, bridges, the far end's hangup).
Everything else may swap: e.g. one member's ringing and another's DialState, a BridgeEnter
and the peer's DialEnd, a failed OriginateResponse and the Hangup burst. Events of different
calls interleave freely.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings, strategies as st

from bridge.ami.message import Message
from bridge.testing.scenarios import ORIGINATE_OUTCOMES, PROFILES, STEP_S, Step, call_events
from bridge.calls import CallTracker
from bridge.config import CallsConfig
from tests.calls.invariants import as_story, check_story
from tests.calls.support import COMPARED, StepClock

RESOURCES = ("uniqueid", "destuniqueid", "uniqueid1", "uniqueid2", "transfereeuniqueid",
             "transfereruniqueid", "bridgeuniqueid")
NO_ID = ("", "<unknown>", "<null>")
CASES = ([("answered", {}), ("noanswer", {}), ("busy", {}), ("caller-hangup-ringing", {}),
          ("queue", {}), ("queue", {"answer_index": 2}), ("blind-transfer", {})]
         + [("originate", {"outcome": o}) for o in ORIGINATE_OUTCOMES])


def _resources(step: Step) -> set[str]:
    return {v for k, v in step.headers if k.lower() in RESOURCES and v not in NO_ID}


def _is_barrier_after(step: Step) -> bool:
    h = dict(step.headers)
    name = h["Event"]
    return (name in ("HangupRequest", "Hangup", "QueueCallerJoin", "Join")
            or (name == "Newstate" and h.get("ChannelState") == "6"))


def predecessors(steps: list[Step]) -> list[set[int]]:
    """For each step, the earlier steps of the same call that must be delivered before it."""
    res = [_resources(s) for s in steps]
    burst, bursts = 0, []
    for s in steps:
        if s.delay_s > STEP_S * 1.5:
            burst += 1
        bursts.append(burst)
    preds: list[set[int]] = []
    for j, s in enumerate(steps):
        newchannel = dict(s.headers)["Event"] == "Newchannel"
        preds.append({i for i in range(j) if newchannel or bursts[i] != bursts[j]
                      or res[i] & res[j] or _is_barrier_after(steps[i])})
    return preds


def _call(profile: str, seq: int, case: tuple[str, dict]) -> list[Step]:
    scenario, kw = case
    # Distinct callers: on Asterisk 11 a queue member is tied to its waiting caller by number.
    caller = f"7916{seq:07d}" if scenario == "queue" else f"2{seq:02d}"
    return call_events(profile, scenario, seq=seq, caller=caller, **kw)


def _stories(messages: list[Message]) -> dict[str, list[dict[str, str]]]:
    tracker = CallTracker(CallsConfig(), clock=StepClock())
    calls: dict[str, list[dict[str, str]]] = {}
    for message in messages:
        for e in as_story(tracker.feed("pbx1", message)):
            calls.setdefault(e["CallId"], []).append(e)
    assert tracker.active_calls() == []
    return calls


def _per_party(story: list[dict[str, str]]) -> Counter:
    return Counter((e["Event"],) + tuple(e.get(k, "-") for k in COMPARED) for e in story)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PROFILES), st.lists(st.sampled_from(CASES), min_size=1, max_size=3), st.data())
def test_invariants_hold_when_concurrent_calls_arrive_in_any_causal_order(profile, cases, data):
    calls = [_call(profile, seq, case) for seq, case in enumerate(cases, 1)]
    preds = [predecessors(steps) for steps in calls]
    done = [set() for _ in calls]
    order: list[Message] = []
    while any(len(d) < len(c) for d, c in zip(done, calls)):
        ready = [(c, j) for c, steps in enumerate(calls) for j in range(len(steps))
                 if j not in done[c] and preds[c][j] <= done[c]]
        c, j = ready[data.draw(st.integers(0, len(ready) - 1), label="next")]
        done[c].add(j)
        order.append(Message.from_pairs(calls[c][j].headers))

    stories = _stories(order)
    assert len(stories) == len(calls), f"{len(calls)} calls told as {len(stories)}"
    alone = {}
    for steps in calls:
        alone.update(_stories([Message.from_pairs(s.headers) for s in steps]))
    for call_id, story in stories.items():
        check_story(story)
        # Who rang, answered, left and why does not depend on the delivery order.
        assert _per_party(story) == _per_party(alone[call_id]), call_id


def test_blind_transfer_story_is_the_same_whichever_side_of_the_race_comes_first():
    """On 22.10.1 the redirected caller dials the target on its own thread while the party it
    left is hung up on another: two recordings of the same scenario had the target's
    Newchannel/DialBegin/ringing before and after the left party's BridgeLeave/Hangup."""
    steps = call_events("asterisk20", "blind-transfer", seq=1)
    names = [dict(s.headers)["Event"] for s in steps]
    left = names.index("BridgeLeave", names.index("Newexten", 2))   # the caller leaves the bridge
    block_left = slice(left + 1, left + 4)                           # peer's BridgeLeave, Hangup, BridgeDestroy
    assert names[block_left] == ["BridgeLeave", "Hangup", "BridgeDestroy"]
    block_dial = slice(left + 4, left + 8)
    assert names[block_dial] == ["Newchannel", "DialBegin", "Newstate", "DialState"]
    swapped = steps[:left + 1] + steps[block_dial] + steps[block_left] + steps[left + 8:]
    recorded_order = _stories([Message.from_pairs(s.headers) for s in steps])
    other_order = _stories([Message.from_pairs(s.headers) for s in swapped])
    (call_id, story), = other_order.items()
    check_story(story)
    assert _per_party(story) == _per_party(recorded_order[call_id])
    assert [e["Event"] + " " + e["Extension"] for e in story] == [
        "CallRinging 902", "CallAnswered 902", "CallTransferred 902", "CallRinging 903",
        "CallEnded 902", "CallAnswered 903", "CallEnded 903"]
