"""Calls someone originated (a CallEngine mixin): who picked up first, the operator placing a call
or the party called.

An Originate with Context/Exten rings its channel first (an operator, ClickToCall style), then runs
the dialplan there: the channel is the caller. An Originate straight into an application
(`Application: Wait`, no Context/Exten) is a call *to* its channel's destination
(Local/100@test: extension 100): the application is the originator's own side. Asterisk says
which in `OriginateResponse` (it names the `Application`; same on 11.25.3 and 22.10.1), right
after the channel answered; for a Local channel, its far (;2) half's dialplan then shows whether
the extension handles the call (Answer, Wait, Playback: the party) or dials on (Dial, Queue: a
caller, as the live-*-22.10.1 captures place callers). Until one of these tells, a ringing first
leg's answer is held back, so the party's CallAnswered says `CallState: answered`.
"""

from __future__ import annotations

from bridge.calls.channels import Channel, is_local
from bridge.calls.state import CALLEE, CALLER, Call, Leg

# Applications that only route, ring or bookkeep. Any other application run by an originated
# call's first channel once it is up, with nobody dialed, means the dialplan handles the call
# itself (an IVR, Playback, Wait, voicemail): the number it was sent to answered.
ROUTING_APPS = frozenset({
    "dial", "queue", "goto", "gotoif", "gotoiftime", "gosub", "gosubif", "return", "stackpop",
    "macro", "macroexit", "set", "setvar", "msets", "noop", "execif", "exec", "tryexec", "hangup",
    "softhangup", "ringing", "progress", "busy", "congestion", "log", "verbose", "dumpchan",
    "mixmonitor", "stopmixmonitor", "monitor", "system", "trysystem", "importvar", "followme",
    "originate", "pickup", "pickupchan", "stasis", "agi", "userevent", "cdr_setvar", "resetcdr",
})


class Originated:
    """Originate handling for CallEngine; uses its channel(), call_of(), clock, _answer(),
    _ring(), _report_answer(). See engine.py for the theory of operation."""

    def _originated_dialplan(self, ch: Channel, exten: str, app: str) -> None:
        """An originated call's first channel, once up, runs the dialplan at the number it was
        sent to: that is the number called; an IVR-like application there answers it."""
        call, leg = self.call_of(ch)
        if leg.role != CALLER or not call.originated or ch is not leg.channels[0]:
            return
        if call.entered is None and exten:
            call.entered = exten
            self._operator_answered(call)
        if app.lower() not in ROUTING_APPS and call.answered_by is None and not call.callee_legs():
            number = call.intent.callee if call.intent else call.entered or exten
            answered_by = Leg(f"{leg.key}>{number}", CALLEE, number, self.clock(), [ch], parent=leg.key)
            call.legs[answered_by.key] = answered_by
            self._answer(call, answered_by)


    def originate_response(self, server: str, uniqueid: str | None, application: str | None,
                           success: bool) -> None:
        """An Originate straight into an application (`Application: Wait`, no Context/Exten):
        the channel it created is the party called (Local/100@test: extension 100) and the
        application is the originator's own side. Its OriginateResponse, which names the
        application, comes right after the answer (calls-11.25.3 and calls-22.10.1 captures)."""
        ch = self.channel(server, uniqueid)
        if not success or ch is None:
            return
        call, leg = self.call_of(ch)
        if not application:
            self._operator_answered(call)   # sent to a Context/Exten: it is the caller
            return
        if leg is not call.origin or call.entered is not None:
            return
        call.into_app = True
        # A phone's channel is the party as soon as it is up. A Local channel is whatever its
        # far half's dialplan makes it: the party when it handles the call itself (Answer, Wait:
        # the captures), a caller when it dials on (the live-*-22.10.1 captures place callers
        # that way): decided when that half runs an application (_far_half_app).
        if not is_local(ch.name) or leg.handles_call:
            self._party_answered(call, leg)


    def _far_half_app(self, ch: Channel, app: str) -> None:
        """The ;2 half of an originated Local leg runs an application while up."""
        call, leg = self.call_of(ch)
        if leg is not call.origin or ch is leg.channels[0] or app.lower() in ROUTING_APPS:
            return
        leg.handles_call = True
        if call.into_app:
            self._party_answered(call, leg)


    def _party_answered(self, call: Call, leg: Leg) -> None:
        """An originated-into-application call's first leg answered: it is who answered."""
        if leg.answered_at is None or call.answered_by is not None or call.callee_legs():
            return
        if not leg.rang:
            self._ring(call, leg)   # answered without ringing first: it rang for no time
        call.answered_at = leg.answered_at
        call.answered_by = leg.key
        if not leg.answer_reported:   # else it rang as the call's first party and said so then
            self._report_answer(call, leg, self.clock())


    def _operator_answered(self, call: Call) -> None:
        """The originated call's first leg that picked up is its caller (an operator): say so."""
        origin = call.origin if call.legs else None
        if origin is not None and origin.answer_pending and call.answered_by != origin.key:
            self._report_answer(call, origin, origin.answered_at or self.clock())

