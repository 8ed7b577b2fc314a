"""Normalized call events (CallRinging, CallAnswered, CallEnded, CallTransferred) as BridgeEvents."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from bridge.calls import model as m
from bridge.calls.channels import Channel
from bridge.calls.state import Call, Leg
from bridge.config import CallsConfig
from bridge.events.model import NORMALIZED, BridgeEvent


def direction(call: Call, cfg: CallsConfig, trunks: list[re.Pattern]) -> str:
    """inbound: the caller came in on a trunk (context or channel); outbound: a trunk was dialed."""
    origin = call.origin.channel
    placed_by_us = call.intent is not None   # an operator's call: never inbound, whatever its channel
    if not placed_by_us and (origin.context in cfg.inbound_contexts
                             or any(p.search(origin.name) for p in trunks)):
        return m.INBOUND
    if any(p.search(leg.channel.name) for leg in call.callee_legs() for p in trunks):
        return m.OUTBOUND
    return m.INTERNAL


def _seconds(start: float | None, end: float | None) -> str:
    if start is None or end is None:
        return "0"
    return str(max(0, int(round(end - start))))


def _iso(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat() if ts is not None else ""


def build(name: str, call: Call, leg: Leg, now: float, extra: list[tuple[str, str]] | None = None,
          state: str | None = None) -> BridgeEvent:
    """One normalized event about `leg` of `call`. `State` is the leg's state; `CallState` the call's."""
    headers = [
        ("Event", name), ("CallId", call.call_id), ("Extension", leg.extension),
        ("CallerIDNum", call.caller_num()), ("CallerIDName", call.caller_name()),
        ("CalleeNum", call.callee_num or ""), ("Direction", call.direction or m.INTERNAL),
        ("State", state or leg.state), ("CallState", call.state),
        ("Channel", leg.channel.name), ("Uniqueid", leg.channel.uniqueid),
    ]
    if call.queue:
        headers.append(("Queue", call.queue))
    if call.intent is not None:
        headers.append(("OriginateId", call.intent.originate_id))
    headers.extend(extra or ())
    headers.append(("StartTime", _iso(call.started_at)))
    text = "\r\n".join(f"{k}: {v}" for k, v in headers)
    fields = dict(headers[1:])
    return BridgeEvent(server=call.server, name=name, kind=NORMALIZED, headers=tuple(headers),
                       text=text, order_key=call.call_id,
                       time=datetime.fromtimestamp(now, timezone.utc), call=fields)


def ringing(call: Call, leg: Leg, now: float) -> BridgeEvent:
    # A party that answered without ringing first still rang, for no time: State ringing.
    return build(m.CALL_RINGING, call, leg, now, state=m.RINGING)


def answered(call: Call, leg: Leg, now: float) -> BridgeEvent:
    return build(m.CALL_ANSWERED, call, leg, now, [("AnsweredBy", leg.extension),
                                                   ("AnswerTime", _iso(leg.answered_at))])


def ended(call: Call, leg: Leg, now: float, reason: str, final: bool) -> BridgeEvent:
    """A leg's end (`CallState` still ringing/answered) or the call's end (`CallState: ended`)."""
    if final:
        start, answer = call.started_at, call.answered_at
        cause, cause_txt = call.cause, call.cause_txt
    else:
        start, answer = leg.started_at, leg.answered_at
        cause, cause_txt = leg.cause, leg.cause_txt
    answered_leg = call.legs.get(call.answered_by) if call.answered_by else None
    if answered_leg is not None and answered_leg.transferred and not final:
        # A party's own end names who has the call now: nobody, while a transfer target rings.
        # The final CallEnded still names the transferer when no new party ever answered.
        answered_leg = None
    extra = [
        ("Reason", reason), ("Cause", cause or ""), ("CauseTxt", cause_txt or ""),
        ("Duration", _seconds(start, now)), ("Billsec", _seconds(answer, now) if answer else "0"),
        ("HangupBy", (call.hangup_by or "") if final else ""),
        ("AnsweredBy", answered_leg.extension if answered_leg else ""),
        ("EndTime", _iso(now)),
    ]
    return build(m.CALL_ENDED, call, leg, now, extra, state=m.ENDED)


def transferred(call: Call, leg: Leg, now: float, target: str, kind: str,
                transferee: Channel) -> BridgeEvent:
    """`leg` (Extension) handed the call over; `transferee` is the channel that moved."""
    return build(m.CALL_TRANSFERRED, call, leg, now, [
        ("TransferType", kind), ("TransferTarget", target), ("TransfereeChannel", transferee.name)])
