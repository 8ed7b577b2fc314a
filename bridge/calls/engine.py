"""The version-independent call state machine: channel facts in, normalized events out.

Theory of operation
-------------------
Version adapters (asterisk11.py, asterisk12.py) turn raw AMI events into a handful of facts:
a channel appeared, changed state, was dialed, answered, bridged, redirected, hung up. This
engine keeps channels by Uniqueid and calls by call id (Linkedid on 12+; on 11 the Uniqueid
of the first channel, which is what Linkedid would have been), grouped into legs: the two
halves of a Local channel are one leg, so a Local hop looks like one party.

Events per call: a dialed leg rings (CallRinging), the first leg to answer is who answered
(CallAnswered); a hop's own answer (a Local channel into a queue) is not reported when one of
its members answered first. A leg that ends while another party is still ringing or talking
gets its own CallEnded (`answered-elsewhere` for the queue members who lost the race); the last
party's CallEnded is held back and becomes the call's final CallEnded (`CallState: ended`),
so a queue call answered by member 2 is never reported as missed.

Originated calls (originated.py): the first channel of an Originate is its caller (an operator,
then the dialplan runs) or, sent straight into an application, the party called.

The caller must hold the tracker's lock; the engine has no threads and no I/O.
"""

from __future__ import annotations

import re
from typing import Callable

from bridge.calls import model as m
from bridge.calls import normalize
from bridge.calls.channels import Channel, device_of, dial_target, known, leg_key
from bridge.calls.endings import Endings
from bridge.calls.originated import Originated
from bridge.calls.intents import Intents
from bridge.calls.state import CALLEE, CALLER, Call, Leg
from bridge.config import CallsConfig
from bridge.events.model import BridgeEvent

OTHER = "other"          # a channel of the call that nobody dialed (yet): spy, originate helper …
RINGING_STATE = 5        # AST_STATE_RINGING
UP_STATE = 6             # AST_STATE_UP
BUSY_STATE = 7           # AST_STATE_BUSY
DOWN_STATE = 0           # an outgoing channel starts Down; an incoming one starts in Ring (4)


class CallEngine(Endings, Originated):
    """Channels and calls of every server; feed it facts, collect `out`."""

    def __init__(self, cfg: CallsConfig, clock: Callable[[], float]) -> None:
        self.cfg = cfg
        self.clock = clock
        self.trunks = [re.compile(p) for p in cfg.trunk_channel_patterns]
        self.channels: dict[tuple[str, str], Channel] = {}
        self.calls: dict[tuple[str, str], Call] = {}
        self.legs: dict[tuple[str, str], str] = {}        # (server, leg key) → call id
        self.queued: dict[tuple[str, str], Channel] = {}  # callers waiting in a queue
        self.out: list[BridgeEvent] = []
        self.seq = 0                                       # channels created so far
        self.intents = Intents()                           # our own Originates, by first Uniqueid

    # -- lookups -------------------------------------------------------------------------------

    def channel(self, server: str, uniqueid: str | None) -> Channel | None:
        return self.channels.get((server, uniqueid)) if uniqueid else None

    def call_of(self, ch: Channel) -> tuple[Call, Leg]:
        call = self.calls[(ch.server, ch.call_id)]
        return call, call.legs[ch.key]

    # -- channels ------------------------------------------------------------------------------

    def channel_new(self, server: str, uniqueid: str, name: str, state: int, context: str,
                    exten: str, cid_num: str | None, cid_name: str | None,
                    linkedid: str | None = None, conn_num: str | None = None) -> Channel:
        existing = self.channels.get((server, uniqueid))
        if existing is not None:
            existing.update_caller(cid_num, cid_name, conn_num)
            return existing
        now = self.clock()
        key = leg_key(name)
        self.seq += 1
        ch = Channel(server, uniqueid, name, "", now, state, state, context, exten, seq=self.seq)
        ch.update_caller(cid_num, cid_name, conn_num)
        half_of = self.legs.get((server, key))
        other = self.calls.get((server, half_of)) if half_of is not None else None
        # The other half of a Local pair is live when this one appears; a leg whose channels are all
        # gone is an older channel of the same name (Asterisk restarted its counters): a new call.
        if other is not None and any(not c.hung_up for c in other.legs[key].channels):
            call = other                           # the other half of a Local pair: same leg
            leg = call.legs[key]
        else:
            call_id = linkedid or uniqueid
            call = self.calls.get((server, call_id))
            if call is None:
                call = Call(server, call_id, now, originated=state == DOWN_STATE)
                call.intent = self.intents.take(server, uniqueid)
                call.originated = call.originated or call.intent is not None
                self.calls[(server, call_id)] = call
            leg = Leg(key, CALLER if not call.legs else OTHER, device_of(name), now)
            if call.legs and uniqueid == call_id:
                self._make_origin(call, leg)   # its Newchannel came late (or was lost)
            else:
                call.legs[key] = leg
            self.legs[(server, key)] = call.call_id
        ch.call_id = call.call_id
        leg.channels.append(ch)
        call.live.add(uniqueid)
        self.channels[(server, uniqueid)] = ch
        return ch

    @staticmethod
    def _make_origin(call: Call, leg: Leg) -> None:
        """The channel whose Uniqueid is the Linkedid started the call: it leads the legs."""
        previous = call.origin
        if previous.role == CALLER:
            previous.role = OTHER
        leg.role = CALLER
        call.legs = {leg.key: leg, **call.legs}

    def _move_leg(self, leg: Leg, src: Call, dst: Call) -> None:
        """On 11 a dialed channel starts a call of its own until Dial/Bridge tells whose it is."""
        del src.legs[leg.key]
        dst.legs[leg.key] = leg
        self.legs[(dst.server, leg.key)] = dst.call_id
        for ch in leg.channels:
            ch.call_id = dst.call_id
            if ch.uniqueid in src.live:
                src.live.discard(ch.uniqueid)
                dst.live.add(ch.uniqueid)
        if not src.legs:
            del self.calls[(src.server, src.call_id)]

    def _adopt(self, parent: Channel, ch: Channel) -> tuple[Call, Leg]:
        """Make `ch`'s leg a callee of `parent`'s leg, moving it between calls if needed."""
        call, parent_leg = self.call_of(parent)
        other, leg = self.call_of(ch)
        if other is not call:
            if other.emitted or leg is not other.origin:
                return other, leg     # two calls that both already reported: keep them apart
            self._move_leg(leg, other, call)
            leg.role = OTHER
        if leg.role != CALLER:
            leg.role = CALLEE
            leg.parent = parent_leg.key
            if parent_leg.role == CALLEE:
                parent_leg.hop = True
        return call, leg

    def caller_id(self, server: str, uniqueid: str | None, num: str | None, name: str | None,
                  conn: str | None = None) -> None:
        ch = self.channel(server, uniqueid)
        if ch is not None:
            ch.update_caller(num, name, conn)

    # -- dialing -------------------------------------------------------------------------------

    def dial_begin(self, server: str, src_uid: str | None, dst: Channel, dialstring: str | None,
                   dial_end_follows: bool = False) -> None:
        src = self.channel(server, src_uid)
        if src is None:
            # An Originate's DialBegin has only Dest* fields (22.10.1 capture): nobody dials.
            call, leg = self.call_of(dst)
            if leg.role == CALLER:
                call.originated = True
            return
        call, leg = self._adopt(src, dst)
        if leg.role != CALLEE:
            return
        target = dial_target(dialstring)
        if target:
            leg.extension = target
        # Dial and Queue publish every member's DialBegin before they act on an answer; a member
        # that picks up at once (auto-answer) is Up before its fellow members' DialBegin, so its
        # answer is taken from its DialEnd ANSWER: nobody then rings after the call was answered.
        leg.awaits_dial_end = dial_end_follows
        self._ring(call, leg)
        if leg.answered_at is not None and call.answered_by is None:
            # It came Up while still a call of its own: a Local callee that answers at once can
            # be Up before the DialBegin (AMI) or Dial (ARI) that links it arrives (22.10.1, calls
            # placed concurrently). Its answer is this call's answer: now, or at its DialEnd.
            leg.answered_at = None
            if not dial_end_follows:
                self._answer(call, leg)

    def dial_end(self, server: str, src_uid: str | None, dst_uid: str | None, status: str) -> None:
        dst = self.channel(server, dst_uid)
        if dst is None:
            # Asterisk 11's `Dial` End names only the dialing channel, after the call.
            src = self.channel(server, src_uid)
            if src is not None:
                call, src_leg = self.call_of(src)
                for leg in call.callee_legs():
                    if leg.parent == src_leg.key and leg.dial_status is None:
                        leg.dial_status = status
            return
        call, leg = self.call_of(dst)
        if leg.dial_status is None or status != "CANCEL":
            leg.dial_status = status
        if status == "CANCEL" and call.answered_at is None and call.hangup_by is None:
            # Dial cancels a ringing peer when its caller went away (a phone's CANCEL, an AMI
            # Hangup: live-caller-hangup-ringing-22.10.1 shows DialEnd CANCEL before any
            # HangupRequest of the caller, and a HangupRequest on the callee's Local half).
            call.hangup_by = "caller"
        if status == "ANSWER":
            self._answer(call, leg)

    def state(self, server: str, uniqueid: str | None, state: int, num: str | None = None,
              name: str | None = None, conn: str | None = None) -> None:
        ch = self.channel(server, uniqueid)
        if ch is None or ch.hung_up:
            return
        ch.update_caller(num, name, conn)
        ch.state = state
        call, leg = self.call_of(ch)
        if state == RINGING_STATE:
            queued = self._queue_caller_for(ch, call, leg)
            if queued is not None:
                call, leg = self._adopt(queued, ch)
            if leg.role == CALLEE or (leg.role == CALLER and call.originated):
                self._ring(call, leg)
        elif state == UP_STATE and not (leg.awaits_dial_end and leg.role == CALLEE):
            self._answer(call, leg)
        elif state == BUSY_STATE:
            leg.busy_seen = True

    def _queue_caller_for(self, ch: Channel, call: Call, leg: Leg) -> Channel | None:
        """Asterisk 11 links a queue member to nothing (no Dial, no Linkedid, queue-11.25.3
        capture): the ringing member's connected line is the waiting caller's number."""
        if leg is not call.origin or len(call.legs) > 1 or call.emitted or not ch.conn_num:
            return None
        for waiting in self.queued.values():
            if waiting.server == ch.server and waiting.cid_num == ch.conn_num and not waiting.hung_up:
                return waiting
        return None

    # -- answer, bridges, transfers -----------------------------------------------------------

    def _answer(self, call: Call, leg: Leg) -> None:
        if leg.answered_at is not None or leg.ended_at is not None or leg.role == OTHER:
            # OTHER: a queue member's channel may come up (auto-answer) before the DialBegin
            # that makes it a callee; the DialEnd/BridgeEnter that follows answers it then.
            return
        now = self.clock()
        leg.answered_at = now
        if leg.role == CALLER:
            # Our own ClickToCall's operator answers (also without ringing first: auto-answer).
            if call.intent is not None or (call.originated and leg.rang):
                if not leg.rang:
                    self._ring(call, leg)
                if call.intent is None and call.entered is None:
                    # Someone else's Originate: an operator picking up (dialplan follows) or,
                    # sent into an application, the party called answering (CallState
                    # answered). What comes next tells: OriginateResponse, Newexten, a Dial.
                    leg.answer_pending = True
                    return
                self._report_answer(call, leg, now)
            return
        if leg.role != CALLEE:
            return
        if call.descendants_answered(leg):
            call.answered_at = call.answered_at or now
            return   # a Local hop (e.g. into a queue) comes up because its member answered
        if not leg.rang:
            self._ring(call, leg)   # answered without ringing first: it rang for no time
        call.answered_at = call.answered_at or now
        call.answered_by = leg.key
        self._report_answer(call, leg, now)

    def bridge_enter(self, server: str, uniqueid: str | None, bridge_id: str) -> None:
        ch = self.channel(server, uniqueid)
        if ch is None or ch.hung_up:
            return
        ch.bridge = bridge_id
        call, leg = self.call_of(ch)
        if leg.role == CALLEE:
            self._answer(call, leg)

    def bridge_link(self, server: str, uid1: str | None, uid2: str | None) -> None:
        """Asterisk 11 `Bridge` Link: both channels at once; links calls Dial did not."""
        a, b = self.channel(server, uid1), self.channel(server, uid2)
        if a is None or b is None:
            return
        if a.call_id != b.call_id:
            self._adopt(a, b)
        bridge_id = f"{a.uniqueid}|{b.uniqueid}"
        self.bridge_enter(server, a.uniqueid, bridge_id)
        self.bridge_enter(server, b.uniqueid, bridge_id)

    def bridge_leave(self, server: str, uniqueid: str | None) -> None:
        ch = self.channel(server, uniqueid)
        if ch is not None:
            ch.bridge = None

    def newexten(self, server: str, uniqueid: str | None, context: str, exten: str,
                 app: str | None = None) -> None:
        """A bridged channel running dialplan was redirected (AMI Redirect, blind transfer):
        the 22.10.1 capture shows its Newexten with the new Exten before its BridgeLeave."""
        ch = self.channel(server, uniqueid)
        if ch is None or ch.hung_up:
            return
        if app and ch.state == UP_STATE and not app.startswith("AppDial"):
            self._originated_dialplan(ch, exten, app)
            self._far_half_app(ch, app)
        moved = bool(exten) and (exten != ch.exten or (context and context != ch.context))
        if ch.bridge and moved:
            peer = next((o for o in self.channels_of(ch) if o is not ch and o.bridge == ch.bridge
                         and not o.hung_up), None)
            self.transfer(ch, peer, exten, "blind")
        if exten:
            ch.exten, ch.context = exten, context or ch.context

    def _report_answer(self, call: Call, leg: Leg, now: float) -> None:
        leg.answer_reported, leg.answer_pending = True, False
        self._emit(normalize.answered(call, leg, now))

    def transfer(self, transferee: Channel, transferer: Channel | None, target: str, kind: str) -> None:
        call, moved = self.call_of(transferee)
        loser = moved
        if moved.role != CALLEE and transferer is not None and transferer.call_id == call.call_id:
            loser = call.legs[transferer.key]
        if loser.role != CALLEE or loser.transferred:
            return
        # `answered_by` stays: the transferer did answer. A target that answers takes over
        # (_answer); a Redirect into dialplan (no new party) leaves the call answered by it.
        loser.transferred = True
        call.transfers.append(target)
        self._emit(normalize.transferred(call, loser, self.clock(), target, kind, transferee))

    def bridge_peer_extension(self, ch: Channel, bridge_id: str | None,
                              besides: Channel | None) -> str | None:
        """The extension of another live channel of `ch`'s call in bridge `bridge_id`."""
        call, _ = self.call_of(ch)
        for other in self.channels_of(ch):
            if (bridge_id and other.bridge == bridge_id and other is not ch and other is not besides
                    and not other.hung_up):
                return call.legs[other.key].extension
        return None

    def channels_of(self, ch: Channel) -> list[Channel]:
        call, _ = self.call_of(ch)
        return [c for leg in call.legs.values() for c in leg.channels]

    # -- queues --------------------------------------------------------------------------------

    def queue_join(self, server: str, uniqueid: str | None, queue: str | None) -> None:
        ch = self.channel(server, uniqueid)
        if ch is not None:
            self.calls[(server, ch.call_id)].queue = queue
            self.queued[(server, ch.uniqueid)] = ch

    def queue_leave(self, server: str, uniqueid: str | None) -> None:
        self.queued.pop((server, uniqueid or ""), None)

    # -- emitting ------------------------------------------------------------------------------

    def _ring(self, call: Call, leg: Leg) -> None:
        if leg.rang or leg.ended_at is not None or leg.shadow or self._lost_race(call, leg):
            return
        twin = call.twin(leg)
        if twin is not None and twin.rang:
            leg.shadow = True    # Local/218@hop dialing 218: one party, and it already rang
            return
        if leg is not call.origin:
            self._operator_answered(call)   # its far half dialed on: the origin is the caller
        leg.rang = True
        leg.started_at = self.clock()
        self._flush_deferred(call)
        self._prepare(call)
        self._emit(normalize.ringing(call, leg, leg.started_at))

    @staticmethod
    def _lost_race(call: Call, leg: Leg) -> bool:
        """A queue/ring-group member whose ringing is reported after a fellow member (same
        dialer) already answered was cancelled by that answer: it never rang for anyone."""
        winner = call.legs.get(call.answered_by) if call.answered_by else None
        # A winner that transferred the call keeps `answered_by` (it did answer), but the
        # target its caller dials next is a new party, not a fellow member.
        return (winner is not None and winner is not leg and leg.role == CALLEE
                and winner.parent == leg.parent and winner.answered_at is not None
                and not winner.transferred)

    def _prepare(self, call: Call) -> None:
        """Fix direction and the dialed number at the call's first normalized event. An
        originated call rings its first party before the number is dialed: it turns outbound
        when the number leaves through a trunk."""
        if call.direction is None or (call.originated and call.direction == m.INTERNAL):
            call.direction = normalize.direction(call, self.cfg, self.trunks)
        if call.callee_num is None and call.intent is not None:
            call.callee_num = call.intent.callee
        if call.callee_num is None:
            origin = call.origin.channel
            dialed = known(origin.exten) if not call.originated and origin.exten != "s" else call.entered
            first = next(iter(call.callee_legs()), None)
            call.callee_num = dialed or (first.extension if first else call.origin.extension)

    def _emit(self, event: BridgeEvent) -> None:
        call = self.calls.get((event.server, event.order_key))
        if call is not None:
            call.emitted = True
        self.out.append(event)
