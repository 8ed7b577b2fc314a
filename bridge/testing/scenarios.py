"""Scripted call scenarios: the AMI event sequences (with delays) each profile would send.

Pure functions, no sockets: the simulator plays them, tests feed them to the call tracker.
The order of events per scenario follows the real captures in tests/fixtures/ami (Asterisk
11.25.3 and 22.10.1), re-dressed with SIP/PJSIP phones instead of the captures' Local channels.
The asterisk20 profile follows `live-<scenario>-22.10.1.ami`: each scenario played on a real
Asterisk 22.10.1 (tests/fidelity/record.py), where a phone is the Local half that faces the
dialplan (the dialed ;1, the dialing ;2); tests/fidelity proves both tell the same story.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.testing import scenario_shapes as shapes
from bridge.testing.scenario_shapes import ASTERISK11, ASTERISK20, Chan

PROFILES = (ASTERISK11, ASTERISK20)
SCENARIOS = ("answered", "noanswer", "busy", "caller-hangup-ringing", "queue", "blind-transfer",
             "originate")
ORIGINATE_OUTCOMES = ("answered", "noanswer", "busy", "failed")

# Uniqueids look like Asterisk's: `<epoch>.<counter>`. Each seq gets its own counter block.
DEFAULT_EPOCH = 1764230000
IDS_PER_SEQ = 32

# Realistic pauses (seconds) before time_scale; tests pass time_scale=0.
RING_S = 2.0
TALK_S = 3.0
STEP_S = 0.01

INBOUND_CALLER = ("79161234567", "Иван Петров")
QUEUE_MEMBERS = ("901", "902", "903")

# Originate `Reason` codes (include/asterisk/channel.h AST_CONTROL_*): 4 answered,
# 3 ringing then timeout, 5 busy, 0 failed.
ORIGINATE_REASON = {"answered": 4, "noanswer": 3, "busy": 5, "failed": 0}


@dataclass(frozen=True)
class Step:
    """One AMI message to send `delay_s` seconds after the previous one."""

    delay_s: float
    headers: tuple[tuple[str, str], ...]


class _Script:
    """Accumulates steps; channel helpers render each event in the profile's shape."""

    def __init__(self, profile: str, seq: int, start: float | None, time_scale: float) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; expected one of {PROFILES}")
        if seq < 0:
            raise ValueError("seq must be >= 0")
        self.profile = profile
        self.seq = seq
        self.epoch = int(start) if start is not None else DEFAULT_EPOCH
        self.scale = time_scale
        self.steps: list[Step] = []
        self._next = 0
        self._pending_delay = 0.0
        self._bridges = 0

    @property
    def old(self) -> bool:
        return self.profile == ASTERISK11

    def wait(self, seconds: float) -> None:
        self._pending_delay += seconds

    def emit(self, pairs: list[tuple[str, str]]) -> None:
        delay = (self._pending_delay or STEP_S) * self.scale
        self.steps.append(Step(delay, tuple(pairs)))
        self._pending_delay = 0.0

    def _counter(self) -> int:
        if self._next >= IDS_PER_SEQ:
            raise ValueError("scenario uses more channels than IDS_PER_SEQ")
        value = self.seq * IDS_PER_SEQ + self._next
        self._next += 1
        return value

    def channel(self, device: str, context: str, exten: str, *, linked: Chan | None = None,
                state: int = 0, cid: tuple[str, str] = ("", ""), conn: tuple[str, str] = ("", ""),
                uniqueid: str | None = None) -> Chan:
        """A new SIP (11) / PJSIP (20) channel on `device`; `linked` is its call's first channel."""
        counter = self._counter()
        tech = "SIP" if self.old else "PJSIP"
        uid = uniqueid or f"{self.epoch}.{counter}"
        ch = Chan(f"{tech}/{device}-{counter:08x}", uid, linked.linkedid if linked else uid,
                  context, exten, cid[0], cid[1], conn[0], conn[1], state)
        self.emit(shapes.newchannel(self.profile, ch))
        return ch

    def set_state(self, ch: Chan, state: int) -> None:
        ch.state = state
        self.emit(shapes.newstate(self.profile, ch))

    def dial(self, src: Chan | None, dst: Chan, dialstring: str, ringing: bool = True,
             by_queue: bool = False) -> None:
        """Dial begins; on a phone that rings, Newstate Ringing (and DialState on 12+).

        Asterisk 11 sends no `Dial` for an Originate's channel nor for app_queue's members
        (originate-*-11.25.3 and queue-11.25.3 captures); 12+ sends DialBegin for both.
        """
        if not self.old or (src is not None and not by_queue):
            self.emit(shapes.dial_begin(self.profile, src, dst, dialstring))
        if ringing:
            self.set_state(dst, 5)
            self.dial_state_of(src, dst)

    def dial_state_of(self, src: Chan | None, dst: Chan) -> None:
        if not self.old:
            self.emit(shapes.dial_state(self.profile, src, dst, "RINGING"))

    def dial_end(self, src: Chan | None, dst: Chan, status: str) -> None:
        """12+ only: DialEnd per peer at answer/cancel (11 sends `Dial End` when Dial returns)."""
        if not self.old:
            self.emit(shapes.dial_end(self.profile, src, dst, status))

    def dial_app_end(self, src: Chan, dst: Chan, status: str) -> None:
        """11 only: `Dial` `SubEvent: End`, sent when the Dial application returns."""
        if self.old:
            self.emit(shapes.dial_end(self.profile, src, dst, status))

    @staticmethod
    def connect(a: Chan, b: Chan) -> None:
        """On answer Asterisk sets the caller's connected line to the callee (its ConnectedLine*
        headers name the callee from then on)."""
        a.conn_num, a.conn_name = b.cid_num, b.cid_name

    def bridge(self, a: Chan, b: Chan) -> str:
        """`a` the caller, `b` the party that answered; on 22 the answering party enters first."""
        self._bridges += 1
        bridge_id = f"6b1d{self.seq:04x}-0000-4000-8000-{self._bridges:012x}"
        if self.old:
            self.emit(shapes.bridge_11("Link", a, b))
            return bridge_id
        self.emit(shapes.bridge_head("BridgeCreate", bridge_id, 0))
        for count, ch in enumerate((b, a), 1):
            self.emit(shapes.bridge_head("BridgeEnter", bridge_id, count) + shapes.snapshot(self.profile, ch))
        return bridge_id

    def unbridge(self, bridge_id: str, a: Chan, b: Chan) -> None:
        if self.old:
            self.emit(shapes.bridge_11("Unlink", a, b))
            return
        for count, ch in ((1, a), (0, b)):
            self.emit(shapes.bridge_head("BridgeLeave", bridge_id, count) + shapes.snapshot(self.profile, ch))
        self.emit(shapes.bridge_head("BridgeDestroy", bridge_id, 0))

    def hangup_bridged(self, bridge_id: str, leaver: Chan, stayer: Chan,
                       after_request: list[tuple[str, str]] | None = None) -> None:
        """22: `leaver` hangs up while bridged with `stayer`, who is hung up by the bridge's end
        (HangupRequest, BridgeLeave, Hangup, the peer's BridgeLeave, BridgeDestroy, its Hangup)."""
        self.emit(shapes.hangup_request(self.profile, leaver))
        if after_request:
            self.emit(after_request)
        self.emit(shapes.bridge_head("BridgeLeave", bridge_id, 1) + shapes.snapshot(self.profile, leaver))
        self.hangup(leaver, 16, "Normal Clearing")
        self.emit(shapes.bridge_head("BridgeLeave", bridge_id, 0) + shapes.snapshot(self.profile, stayer))
        self.emit(shapes.bridge_head("BridgeDestroy", bridge_id, 0))
        self.hangup(stayer, 16, "Normal Clearing")

    def hangup(self, ch: Chan, cause: int, cause_txt: str, request: bool = False) -> None:
        if request:
            self.emit(shapes.hangup_request(self.profile, ch))
        self.emit(shapes.hangup(self.profile, ch, cause, cause_txt))


def _phone_call(s: _Script, caller: str, caller_name: str, callee: str, context: str,
                cid: tuple[str, str] | None = None, ringing: bool = True) -> tuple[Chan, Chan]:
    """Caller picks up and dials `callee`: caller channel, callee channel (ringing)."""
    cid = cid or (caller, caller_name)
    a = s.channel(caller, context, callee, state=4, cid=cid)
    s.emit(shapes.newexten(s.profile, a, "Dial", f"{'SIP' if s.old else 'PJSIP'}/{callee},30"))
    s.wait(0.05)
    b = s.channel(callee, context, callee, linked=a, cid=(callee, ""), conn=cid)
    s.dial(a, b, callee, ringing=ringing)
    return a, b


def _answered(s: _Script, caller: str, caller_name: str, callee: str, context: str) -> None:
    a, b = _phone_call(s, caller, caller_name, callee, context)
    s.wait(RING_S)
    s.set_state(b, 6)
    s.dial_end(a, b, "ANSWER")
    s.connect(a, b)
    s.set_state(a, 6)
    bridge = s.bridge(a, b)
    s.wait(TALK_S)
    if not s.old:
        return s.hangup_bridged(bridge, b, a)     # callee hangs up first
    s.hangup(b, 16, "Normal Clearing", request=True)
    s.unbridge(bridge, a, b)
    s.dial_app_end(a, b, "ANSWER")
    s.hangup(a, 16, "Normal Clearing")


def _noanswer(s: _Script, caller: str, caller_name: str, callee: str, context: str) -> None:
    a, b = _phone_call(s, caller, caller_name, callee, context)
    s.wait(RING_S * 3)  # Dial timeout
    s.dial_end(a, b, "NOANSWER")
    # Dial hangs up the peer it gave up on without a cause on 22 (live-noanswer-22.10.1: 0).
    s.hangup(b, 19, "User alerting, no answer") if s.old else s.hangup(b, 0, "Unknown")
    s.dial_app_end(a, b, "NOANSWER")
    s.hangup(a, 16, "Normal Clearing")


def _busy(s: _Script, caller: str, caller_name: str, callee: str, context: str) -> None:
    cid = (caller, caller_name)
    if not s.old:
        # live-busy-22.10.1: the dialed channel never changes state (only the busy phone's own
        # side does); DialEnd BUSY, the peer hangs up with 17, the caller's dialplan with 16.
        a, b = _phone_call(s, caller, caller_name, callee, context, ringing=False)
        s.dial_end(a, b, "BUSY")
        s.hangup(b, 17, "User busy")
        return s.hangup(a, 16, "Normal Clearing")
    a = s.channel(caller, context, callee, state=4, cid=cid)
    s.wait(0.05)
    b = s.channel(callee, context, callee, linked=a, cid=(callee, ""), conn=cid)
    s.dial(a, b, callee, ringing=False)
    s.set_state(b, 7)
    s.dial_end(a, b, "BUSY")
    s.hangup(b, 17, "User busy")
    s.dial_app_end(a, b, "BUSY")
    s.hangup(a, 17, "User busy")


def _caller_hangup(s: _Script, caller: str, caller_name: str, callee: str, context: str) -> None:
    a, b = _phone_call(s, caller, caller_name, callee, context)
    s.wait(RING_S)
    s.emit(shapes.hangup_request(s.profile, a))
    s.dial_end(a, b, "CANCEL")
    s.hangup(b, 16, "Normal Clearing")  # Asterisk hangs up the ringing peer with cause 16
    s.dial_app_end(a, b, "CANCEL")
    s.hangup(a, 16, "Normal Clearing")


def _queue(s: _Script, caller: str, caller_name: str, queue_exten: str, *, queue: str = "support",
           members: tuple[str, ...] = QUEUE_MEMBERS, answer_index: int = 1,
           context: str = "from-trunk") -> None:
    """Inbound call into a ringall queue; member `answer_index` answers, the others get 26."""
    cid = (caller, caller_name)
    a = s.channel("trunk", context, queue_exten, state=4, cid=cid)
    s.emit(shapes.newexten(s.profile, a, "Queue", queue))
    s.emit(shapes.queue_join(s.profile, a, queue, 1))
    legs = []
    for member in members:
        m = s.channel(member, "from-internal", member, linked=a, cid=(queue_exten, ""), conn=cid)
        if not s.old:
            s.emit(shapes.agent_event("AgentCalled", a, m, queue, f"PJSIP/{member}"))
        s.dial(a, m, f"{'SIP' if s.old else 'PJSIP'}/{member}", by_queue=True)
        legs.append(m)
    s.wait(RING_S)
    answerer = legs[answer_index]
    s.set_state(answerer, 6)
    s.dial_end(a, answerer, "ANSWER")
    others = [m for m in legs if m is not answerer]
    for m in others:
        s.dial_end(a, m, "CANCEL")
    for m in others:
        # Asterisk 22 repeats DialEnd CANCEL byte-identically for each cancelled member.
        s.dial_end(a, m, "CANCEL")
        s.hangup(m, 26, "Answered elsewhere")
    s.emit(shapes.queue_leave(s.profile, a, queue, 0))
    interface = f"PJSIP/{members[answer_index]}"
    times = [("HoldTime", str(int(RING_S))), ("RingTime", str(int(RING_S)))]
    if not s.old:
        s.emit(shapes.agent_event("AgentConnect", a, answerer, queue, interface, times))
    s.connect(a, answerer)
    s.set_state(a, 6)
    bridge = s.bridge(a, answerer)
    s.wait(TALK_S)
    if not s.old:   # the outside caller hangs up
        done = shapes.agent_event("AgentComplete", a, answerer, queue, interface, [
            times[0], ("TalkTime", str(int(TALK_S))), ("Reason", "caller")])
        return s.hangup_bridged(bridge, a, answerer, after_request=done)
    s.hangup(a, 16, "Normal Clearing", request=True)
    s.unbridge(bridge, answerer, a)
    s.hangup(answerer, 16, "Normal Clearing")


def _blind_transfer(s: _Script, caller: str, caller_name: str, callee: str, context: str, *,
                    target: str = "903") -> None:
    """Answered call; the caller's leg is redirected to `target` (AMI Redirect, as captured on 22)."""
    a, b = _phone_call(s, caller, caller_name, callee, context)
    s.wait(RING_S)
    s.set_state(b, 6)
    s.dial_end(a, b, "ANSWER")
    s.connect(a, b)
    s.set_state(a, 6)
    bridge = s.bridge(a, b)
    s.wait(TALK_S)
    # The redirected channel runs the new extension while still bridged (capture: Newexten first,
    # then BridgeLeave), so `Newexten` on a bridged channel is how a redirect shows.
    a.exten = target
    s.emit(shapes.newexten(s.profile, a, "Dial", f"{'SIP' if s.old else 'PJSIP'}/{target},30"))
    if not s.old:
        return _blind_transfer_20(s, bridge, a, b, target, context, (caller, caller_name))
    s.unbridge(bridge, a, b)
    s.dial_app_end(a, b, "ANSWER")
    s.hangup(b, 16, "Normal Clearing")
    c = s.channel(target, context, target, linked=a, cid=(target, ""), conn=(caller, caller_name))
    s.dial(a, c, target)
    s.wait(RING_S)
    s.set_state(c, 6)
    s.dial_end(a, c, "ANSWER")
    s.connect(a, c)
    bridge = s.bridge(a, c)
    s.wait(TALK_S)
    s.hangup(a, 16, "Normal Clearing", request=True)
    s.unbridge(bridge, a, c)
    s.dial_app_end(a, c, "ANSWER")
    s.hangup(c, 16, "Normal Clearing")


def _blind_transfer_20(s: _Script, bridge: str, a: Chan, b: Chan, target: str, context: str,
                      cid: tuple[str, str]) -> None:
    """live-blind-transfer-22.10.1: the caller leaves the bridge, the one left behind leaves and
    hangs up, then the caller's new Dial begins. (The two threads race: another recording had
    the target's Newchannel/DialBegin/ringing before the left party's BridgeLeave and Hangup;
    tests/calls/test_story_orders.py checks the story is the same either way.)"""
    s.emit(shapes.bridge_head("BridgeLeave", bridge, 1) + shapes.snapshot(s.profile, a))
    s.emit(shapes.bridge_head("BridgeLeave", bridge, 0) + shapes.snapshot(s.profile, b))
    s.hangup(b, 16, "Normal Clearing")
    s.emit(shapes.bridge_head("BridgeDestroy", bridge, 0))
    c = s.channel(target, context, target, linked=a, cid=(target, ""), conn=cid)
    s.dial(a, c, target)
    s.wait(RING_S)
    s.set_state(c, 6)
    s.dial_end(a, c, "ANSWER")
    s.connect(a, c)
    bridge = s.bridge(a, c)
    s.wait(TALK_S)
    s.hangup_bridged(bridge, a, c)


def _originate(s: _Script, caller: str, caller_name: str, callee: str, *, channel: str | None = None,
               context: str = "from-internal", exten: str | None = None, action_id: str = "originate-1",
               channel_id: str | None = None, outcome: str = "answered") -> None:
    """Async Originate of `channel` (the operator's phone); once it answers it dials `exten`."""
    if outcome not in ORIGINATE_OUTCOMES:
        raise ValueError(f"unknown originate outcome {outcome!r}; expected one of {ORIGINATE_OUTCOMES}")
    exten = exten or callee
    device = (channel or caller).rpartition("/")[2]
    dial_string = f"{'SIP' if s.old else 'PJSIP'}/{device}"
    # ChannelId is honoured from Asterisk 13 on; 11 ignores it.
    uid = None if s.old else channel_id
    a = s.channel(device, context, exten, cid=(caller, caller_name), uniqueid=uid)

    def respond(ch: Chan | None) -> None:
        s.emit(shapes.originate_response(s.profile, action_id, ch, dial_string, context, exten,
                                         ORIGINATE_REASON[outcome], caller, caller_name))

    # On 22 (live-originate-*-22.10.1) the response comes before the failed channel's Hangup,
    # after a timed-out one's, and once the answered operator's phone has begun to dial.
    new = not s.old
    if outcome == "failed":
        if new:
            respond(None)
            return s.hangup(a, 0, "Unknown")
        s.hangup(a, 0, "Unknown")
        return respond(None)
    if outcome == "busy":
        s.dial(None, a, device, ringing=False)
        if s.old:
            s.set_state(a, 7)   # 22: only the busy phone's own side goes Busy
        s.dial_end(None, a, "BUSY")
        if new:
            respond(None)
            return s.hangup(a, 17, "User busy")
        s.hangup(a, 17, "User busy")
        return respond(None)
    s.dial(None, a, device)
    s.wait(RING_S)
    if outcome == "noanswer":
        # A timed-out Originate sends DialBegin and DialState RINGING but never DialEnd (22 capture).
        if new:
            s.hangup(a, 19, "User alerting, no answer")
            return respond(None)
        respond(None)
        return s.hangup(a, 19, "User alerting, no answer")
    s.set_state(a, 6)
    s.dial_end(None, a, "ANSWER")
    if s.old:
        respond(a)
    s.emit(shapes.newexten(s.profile, a, "Dial", f"{dial_string.partition('/')[0]}/{exten},30"))
    b = s.channel(exten, context, exten, linked=a, cid=(exten, ""), conn=(caller, caller_name))
    if new:
        s.emit(shapes.dial_begin(s.profile, a, b, exten))
        respond(a)
        s.set_state(b, 5)
        s.dial_state_of(a, b)
    else:
        s.dial(a, b, exten)
    s.wait(RING_S)
    s.set_state(b, 6)
    s.dial_end(a, b, "ANSWER")
    s.connect(a, b)
    bridge = s.bridge(a, b)
    s.wait(TALK_S)
    if new:
        return s.hangup_bridged(bridge, b, a)
    s.hangup(b, 16, "Normal Clearing", request=True)
    s.unbridge(bridge, a, b)
    s.dial_app_end(a, b, "ANSWER")
    s.hangup(a, 16, "Normal Clearing")


def call_events(profile: str, scenario: str, *, seq: int, caller: str | None = None,
                callee: str = "902", caller_name: str | None = None, start: float | None = None,
                time_scale: float = 1.0, **kw) -> list[Step]:
    """The events of one call. `seq` makes Uniqueids and channel suffixes unique; `start` sets
    the Uniqueid epoch; delays are multiplied by `time_scale` (0 for tests).

    Defaults: caller 202 "Оператор-202", except `queue` (an outside caller, 79161234567
    "Иван Петров", into queue 600 with members 901/902/903). Extra keywords: `queue`: queue,
    members, answer_index, context; `blind-transfer`: target; `originate`: channel, context,
    exten, action_id, channel_id, outcome in ORIGINATE_OUTCOMES. Other scenarios: context.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; expected one of {SCENARIOS}")
    s = _Script(profile, seq, start, time_scale)
    if scenario == "queue":
        num, name = INBOUND_CALLER
        _queue(s, caller or num, caller_name if caller_name is not None else name,
               kw.pop("queue_exten", "600"), **kw)
        return s.steps
    caller = caller or "202"
    caller_name = caller_name if caller_name is not None else f"Оператор-{caller}"
    if scenario == "originate":
        _originate(s, caller, caller_name, callee, **kw)
        return s.steps
    context = kw.pop("context", "from-internal")
    script = {"answered": _answered, "noanswer": _noanswer, "busy": _busy,
              "caller-hangup-ringing": _caller_hangup, "blind-transfer": _blind_transfer}[scenario]
    script(s, caller, caller_name, callee, context, **kw)
    return s.steps
