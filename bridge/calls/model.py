"""Read-only views of tracked calls (CallInfo, LegInfo) and the normalized vocabulary."""

from __future__ import annotations

from dataclasses import dataclass

# Call and leg states
RINGING = "ringing"
ANSWERED = "answered"
ENDED = "ended"

# Directions
INBOUND = "inbound"
OUTBOUND = "outbound"
INTERNAL = "internal"

# End reasons (CallEnded `Reason`)
R_ANSWERED = "answered"
R_NO_ANSWER = "no-answer"
R_BUSY = "busy"
R_CANCELLED = "cancelled"
R_FAILED = "failed"
R_ANSWERED_ELSEWHERE = "answered-elsewhere"
R_TRANSFERRED = "transferred"
R_LOST = "lost-during-disconnect"
REASONS = (R_ANSWERED, R_NO_ANSWER, R_BUSY, R_CANCELLED, R_FAILED, R_ANSWERED_ELSEWHERE,
           R_TRANSFERRED, R_LOST)

# Normalized event names
CALL_RINGING = "CallRinging"
CALL_ANSWERED = "CallAnswered"
CALL_ENDED = "CallEnded"
CALL_TRANSFERRED = "CallTransferred"
NORMALIZED_EVENTS = (CALL_RINGING, CALL_ANSWERED, CALL_ENDED, CALL_TRANSFERRED)

# The headers each normalized event can carry (normalize.py builds them; a test holds the two
# together). Config checks use it to refuse a subscriber `headers` key no event can match.
_COMMON_HEADERS = ("Event", "CallId", "Extension", "CallerIDNum", "CallerIDName", "CalleeNum",
                   "Direction", "State", "CallState", "Channel", "Uniqueid", "Queue", "OriginateId",
                   "StartTime")
NORMALIZED_HEADERS = {
    CALL_RINGING: _COMMON_HEADERS,
    CALL_ANSWERED: _COMMON_HEADERS + ("AnsweredBy", "AnswerTime"),
    CALL_ENDED: _COMMON_HEADERS + ("Reason", "Cause", "CauseTxt", "Duration", "Billsec", "HangupBy",
                                   "AnsweredBy", "EndTime"),
    CALL_TRANSFERRED: _COMMON_HEADERS + ("TransferType", "TransferTarget", "TransfereeChannel"),
}
# Values a normalized header can only take (an exact `headers` match on anything else never matches).
# Not `Reason`: LinkDown, which normalized subscribers get too, has a free-text one.
NORMALIZED_VALUES = {
    "Direction": (INBOUND, OUTBOUND, INTERNAL),
    "State": (RINGING, ANSWERED, ENDED),
    "CallState": (RINGING, ANSWERED, ENDED),
    "HangupBy": ("caller", "callee", ""),
}

# Raw AMI events the call model reads, spelled as Asterisk spells them (both event sets).
CALL_EVENT_NAMES = ("Newchannel", "Newstate", "NewCallerid", "Newexten", "HangupRequest", "Hangup",
                    "Dial", "Bridge", "Join", "Leave", "Transfer", "DialBegin", "DialEnd",
                    "BridgeEnter", "BridgeLeave", "QueueCallerJoin", "QueueCallerLeave",
                    "BlindTransfer", "AttendedTransfer", "NewConnectedLine", "OriginateResponse")


@dataclass(frozen=True)
class LegInfo:
    """One party the call reached (a phone, a queue member; Local ;1/;2 halves are one leg)."""

    extension: str
    channel: str
    uniqueid: str
    role: str                      # "caller" or "callee"
    state: str                     # ringing | answered | ended
    reason: str | None
    started_at: float
    answered_at: float | None
    ended_at: float | None


@dataclass(frozen=True)
class CallInfo:
    """A call as the tracker sees it; `call_id` is the Linkedid (Asterisk 12+) or, on 11, the
    Uniqueid of the call's first channel (what Linkedid would have been)."""

    call_id: str
    server: str
    caller_num: str
    caller_name: str
    callee_num: str
    direction: str
    state: str
    started_at: float
    answered_at: float | None
    ended_at: float | None
    answered_by: str | None
    reason: str | None = None
    cause: str | None = None
    cause_txt: str | None = None
    hangup_by: str | None = None       # "caller" | "callee"
    queue: str | None = None
    transfers: tuple[str, ...] = ()    # extensions the call was transferred to, in order
    legs: tuple[LegInfo, ...] = ()

    @property
    def duration_s(self) -> float:
        return max(0.0, (self.ended_at or self.started_at) - self.started_at) if self.ended_at else 0.0

    def extensions(self) -> tuple[str, ...]:
        """Every extension taking part (caller leg first)."""
        return tuple(leg.extension for leg in self.legs)
