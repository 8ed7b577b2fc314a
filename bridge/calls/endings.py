"""How calls end: hangups, who hung up, per-party and final CallEnded (a CallEngine mixin)."""

from __future__ import annotations

from bridge.calls import model as m
from bridge.calls import normalize
from bridge.calls.channels import Channel, is_local
from bridge.calls.state import CALLEE, CALLER, Call, Leg, final_reason, leg_reason

UP = 6   # AST_STATE_UP


def _faces_the_call(ch: Channel) -> bool:
    """A plain channel, or the ;1 half of a Local pair."""
    return not is_local(ch.name) or ch.name.endswith(";1")


# When Asterisk gives no cause (0) but the reason is known from states, name the usual one.
REASON_CAUSE = {m.R_BUSY: ("17", "User busy"), m.R_NO_ANSWER: ("19", "User alerting, no answer")}


class Endings:
    """Hangup handling for CallEngine; uses its channel(), call_of(), clock, queued, _emit(),
    _prepare(), _party_answered(), _operator_answered(). See engine.py for the theory of operation."""

    def hangup_request(self, server: str, uniqueid: str | None) -> None:
        ch = self.channel(server, uniqueid)
        if ch is not None and not ch.hung_up:
            self._note_hangup_by(*self.call_of(ch))

    def _note_hangup_by(self, call: Call, leg: Leg) -> None:
        if call.hangup_by is not None or leg.ended_at is not None or leg.transferred:
            return   # a transferer leaving ends its part, not the conversation it handed over
        if leg.role == CALLER:
            if call.answered_at is not None:
                call.hangup_by = "caller"
            elif call.other_live_parties(leg):
                call.hangup_by = "caller"
                call.caller_cancelled = True
        elif leg.key == call.answered_by or (call.answered_at is None and leg.rang):
            call.hangup_by = "callee"

    def hangup(self, server: str, uniqueid: str | None, cause: str | None, cause_txt: str | None,
               lost: bool = False) -> None:
        ch = self.channel(server, uniqueid)
        if ch is None or ch.hung_up:
            return
        ch.hung_up, ch.cause, ch.cause_txt = True, cause, cause_txt
        self.queued.pop((server, ch.uniqueid), None)
        call, leg = self.call_of(ch)
        if lost:
            call.lost = True
        else:
            self._note_hangup_by(call, leg)
        talking = leg.role == CALLER or leg.key == call.answered_by
        if talking and call.cause is None and cause not in (None, "0"):
            call.cause, call.cause_txt = cause, cause_txt   # who ended the conversation, and why
        if leg.ended_at is None and (_faces_the_call(ch) or all(c.hung_up for c in leg.channels)):
            # A Local pair leaves with its ;1 half (the one in the caller's bridge): after ;2's
            # hangup Asterisk may still say why it left (AttendedTransfer, 22.10.1 live suite).
            best = next((c for c in leg.channels if c.cause not in (None, "0")), ch)
            self._end_leg(call, leg, best.cause, best.cause_txt)
        elif leg.ended_at is not None and leg.cause in (None, "0") and cause not in (None, "0"):
            # The other half of a Local pair often knows the real cause (11.25.3 captures).
            leg.cause, leg.cause_txt = cause, cause_txt
        call.live.discard(ch.uniqueid)
        if not call.live and call.ended_at is None:
            self._end_call(call)

    def _end_leg(self, call: Call, leg: Leg, cause: str | None, cause_txt: str | None) -> None:
        if (leg is call.origin and call.originated and not call.lost and call.intent is None
                and call.entered is None and not call.callee_legs()):
            # Up, yet it never ran dialplan nor dialed anyone: it was originated into an
            # application (its OriginateResponse missed, or its Local far half never ran one).
            self._party_answered(call, leg)
        if leg.role == CALLEE and call.answered_by is None and not call.lost:
            self._answer_waiting_sibling(call, leg)   # (a reconnect's reconcile only ends calls)
        leg.ended_at = self.clock()
        leg.cause, leg.cause_txt = cause, cause_txt
        leg.reason = leg_reason(call, leg)
        if leg.role == CALLER and call.answered_at is None and call.other_live_parties(leg):
            call.caller_cancelled = True
        if leg.role != CALLEE or not leg.rang:
            return
        twin = call.twin(leg)
        if twin is not None and call.answered_by == twin.key:
            return   # one party with its twin, which answered and tells the end
        talking = call.answered_by == leg.key and not leg.transferred
        if talking or not call.other_live_parties(leg):
            call.deferred.append(leg)   # perhaps the last party: its end is the call's end
        else:
            leg.end_reported = True
            self._emit(normalize.ended(call, leg, leg.ended_at, leg.reason, final=False))

    def _answer_waiting_sibling(self, call: Call, leg: Leg) -> None:
        """Dial hangs the losers up before it publishes the winner's DialEnd ANSWER: a fellow
        member already Up is who answered, so say so before the loser's end."""
        for other in call.callee_legs():
            if (other is not leg and other.parent == leg.parent and other.awaits_dial_end
                    and other.ended_at is None and any(c.state == UP for c in other.channels)):
                self._answer(call, other)
                return

    def _end_call(self, call: Call) -> None:
        now = self.clock()
        if not call.emitted and not call.originated:
            call.ended_at = now
            return   # nobody was dialed (voicemail, IVR, a feature code): not a call to report
        if not call.lost:   # a reconnect's reconcile only ends calls
            self._operator_answered(call)
        answered = call.legs.get(call.answered_by) if call.answered_by else None
        if answered is not None and answered.end_reported:
            answered = None   # it left earlier (a transfer) and has had its CallEnded
        final = answered or (call.deferred[-1] if call.deferred else call.origin)
        self._flush_deferred(call, keep=final)
        call.ended_at = now
        self._prepare(call)
        call.reason = final_reason(call, final)
        if final.cause is not None and call.answered_at is None:
            call.cause, call.cause_txt = final.cause, final.cause_txt
        if call.cause in (None, "0") and call.reason in REASON_CAUSE:
            # Asterisk 11 hangs a busy Local channel up with cause 0 (originate-400-busy-11.25.3)
            # where 22 says 17; the reason was read from the Busy state, so name its cause.
            call.cause, call.cause_txt = REASON_CAUSE[call.reason]
        self._emit(normalize.ended(call, final, now, call.reason, final=True))

    def _flush_deferred(self, call: Call, keep: Leg | None = None) -> None:
        for leg in call.deferred:
            if leg is not keep:
                # `answered_by` stays: whoever answered still did, even if a new party now rings.
                leg.end_reported = True
                self._emit(normalize.ended(call, leg, leg.ended_at or self.clock(), leg.reason
                                           or leg_reason(call, leg), final=False))
        call.deferred.clear()
