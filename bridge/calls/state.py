"""Mutable per-call records (legs, answer/end bookkeeping) and the rules that name an end reason."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.calls import model as m
from bridge.calls.channels import Channel
from bridge.calls.intents import Intent

CALLER = "caller"
CALLEE = "callee"

# Q.850 cause codes (include/asterisk/causes.h) as Hangup `Cause` reports them.
CAUSE_BUSY = {"17"}
CAUSE_NO_ANSWER = {"18", "19"}
CAUSE_ANSWERED_ELSEWHERE = {"26"}
CAUSE_FAILED = {"1", "3", "20", "21", "22", "27", "28", "31", "34", "38", "41", "42", "44", "58",
                "66", "88", "102", "111", "127"}
DIAL_STATUS_FAILED = {"CONGESTION", "CHANUNAVAIL", "INVALIDARGS", "DONTCALL", "TORTURE"}


@dataclass(slots=True)
class Leg:
    """One party of a call: a phone, a queue member, or a Local channel pair (one leg)."""

    key: str
    role: str
    extension: str
    started_at: float
    channels: list[Channel] = field(default_factory=list)
    parent: str | None = None        # key of the leg that dialed this one
    hop: bool = False                # a Local leg that dials further (queue, ring group)
    awaits_dial_end: bool = False    # dialed by a 12+ DialBegin: answered at its DialEnd ANSWER
    shadow: bool = False             # the twin of a leg that rang (see Call.twin): it stays silent
    rang: bool = False               # CallRinging emitted
    answered_at: float | None = None
    ended_at: float | None = None
    reason: str | None = None
    dial_status: str | None = None
    busy_seen: bool = False
    transferred: bool = False
    end_reported: bool = False       # its own (non-final) CallEnded went out
    answer_reported: bool = False    # its CallAnswered went out
    answer_pending: bool = False     # an originated first leg answered: as the caller or the party?
    handles_call: bool = False       # a Local leg whose far half runs an application (not Dial) while up
    cause: str | None = None
    cause_txt: str | None = None

    @property
    def channel(self) -> Channel:
        return self.channels[0]

    @property
    def state(self) -> str:
        if self.ended_at is not None:
            return m.ENDED
        return m.ANSWERED if self.answered_at is not None else m.RINGING

    def info(self) -> m.LegInfo:
        return m.LegInfo(self.extension, self.channel.name, self.channel.uniqueid, self.role,
                         self.state, self.reason, self.started_at, self.answered_at, self.ended_at)


@dataclass(slots=True)
class Call:
    """One call: its legs in order of appearance, the first being the caller's."""

    server: str
    call_id: str
    started_at: float
    legs: dict[str, Leg] = field(default_factory=dict)
    live: set[str] = field(default_factory=set)     # uniqueids not yet hung up
    originated: bool = False         # the first channel was created Down: an Originate's
    intent: Intent | None = None     # placed by our own ClickToCall/Originate: who meant to call whom
    entered: str | None = None       # where an originated call's first channel entered the dialplan
    into_app: bool = False           # originated straight into an application: its first leg is the party
    answered_at: float | None = None
    answered_by: str | None = None   # leg key
    ended_at: float | None = None
    reason: str | None = None
    cause: str | None = None
    cause_txt: str | None = None
    hangup_by: str | None = None
    caller_cancelled: bool = False   # the caller hung up while nobody had answered
    lost: bool = False               # a channel vanished while the AMI link was down
    queue: str | None = None
    direction: str | None = None
    callee_num: str | None = None
    transfers: list[str] = field(default_factory=list)
    deferred: list[Leg] = field(default_factory=list)
    emitted: bool = False

    @property
    def origin(self) -> Leg:
        return next(iter(self.legs.values()))

    @property
    def state(self) -> str:
        if self.ended_at is not None:
            return m.ENDED
        return m.ANSWERED if self.answered_at is not None else m.RINGING

    def callee_legs(self) -> list[Leg]:
        return [leg for leg in self.legs.values() if leg.role == CALLEE]

    def descendants_answered(self, leg: Leg) -> bool:
        return any(other.answered_at is not None and self.is_descendant(other, leg)
                   for other in self.legs.values() if other is not leg)

    def is_descendant(self, leg: Leg, ancestor: Leg) -> bool:
        seen = set()
        while leg.parent and leg.parent not in seen:
            if leg.parent == ancestor.key:
                return True
            seen.add(leg.parent)
            leg = self.legs.get(leg.parent) or leg
        return False

    def twin(self, leg: Leg) -> Leg | None:
        """A Local hop and the leg it dials for the same extension (Local/218@hop → 218@phones,
        as FreePBX dials every extension) are one party; their DialBegins come in either order."""
        parent = self.legs.get(leg.parent or "")
        if parent is not None and parent.role == CALLEE and parent.extension == leg.extension:
            return parent
        return next((o for o in self.legs.values() if o.parent == leg.key and o.role == CALLEE
                     and o.extension == leg.extension), None)

    def other_live_parties(self, leg: Leg) -> bool:
        """Is anyone besides `leg` still ringing or talking on a callee leg?"""
        return any(o is not leg and o.ended_at is None and not o.hop and not o.shadow
                   for o in self.callee_legs())

    def caller_num(self) -> str:
        if self.intent is not None:
            return self.intent.caller    # the operator, whatever caller ID their phone was shown
        # Either half of a Local caller may carry the caller id (the ;2 half dials on).
        num = next((ch.cid_num for ch in self.origin.channels if ch.cid_num), None)
        return num or ("" if self.direction == m.INBOUND else self.origin.extension)

    def caller_name(self) -> str:
        if self.intent is not None and self.intent.caller not in {ch.cid_num for ch in self.origin.channels}:
            return ""                    # the caller ID set on the operator's phone names the number
        return next((ch.cid_name for ch in self.origin.channels if ch.cid_name), "")

    def info(self) -> m.CallInfo:
        answered = self.legs.get(self.answered_by) if self.answered_by else None
        return m.CallInfo(
            self.call_id, self.server, self.caller_num(), self.caller_name(),
            self.callee_num or "", self.direction or m.INTERNAL, self.state, self.started_at,
            self.answered_at, self.ended_at, answered.extension if answered else None,
            self.reason, self.cause, self.cause_txt, self.hangup_by, self.queue,
            tuple(self.transfers), tuple(leg.info() for leg in self.legs.values()))


def leg_reason(call: Call, leg: Leg) -> str:
    """Why `leg` ended, from what Asterisk told us (DialStatus on 12+, causes and states on both)."""
    if leg.transferred:
        return m.R_TRANSFERRED
    if leg.answered_at is not None and not (leg.role == CALLER and call.entered is not None):
        # An originated call's first leg picking up and going on into the dialplan is the call
        # starting, not being answered (straight into an application, it is what answered).
        return m.R_ANSWERED
    if call.lost and leg.cause is None:
        return m.R_LOST
    status, cause = leg.dial_status, leg.cause
    twin = call.twin(leg)
    if status in (None, "CANCEL") and twin is not None and twin.dial_status not in (None, "CANCEL"):
        status = twin.dial_status   # the outer Dial of a hop knows it was NOANSWER/BUSY
    if cause in CAUSE_ANSWERED_ELSEWHERE:
        return m.R_ANSWERED_ELSEWHERE
    if status == "BUSY" or cause in CAUSE_BUSY or leg.busy_seen:
        return m.R_BUSY
    if status == "NOANSWER" or cause in CAUSE_NO_ANSWER:
        return m.R_NO_ANSWER
    if status in DIAL_STATUS_FAILED or cause in CAUSE_FAILED:
        return m.R_FAILED
    if call.answered_by is not None and leg.role == CALLEE:
        # Ring groups without cause 26 (Dial(A&B) on 11): the peer was cancelled because
        # another one answered.
        return m.R_ANSWERED_ELSEWHERE
    if leg.role == CALLER:
        # An originated channel that never came up and gave no cause (cause 0: no such extension).
        return m.R_FAILED
    return m.R_CANCELLED


def final_reason(call: Call, final: Leg) -> str:
    if call.lost:
        return m.R_LOST
    if call.answered_at is not None:
        return m.R_ANSWERED
    return final.reason or leg_reason(call, final)
