"""Adapter for ARI events (Asterisk 12+ REST interface): the same channel facts from JSON snapshots.

ARI events carry a channel snapshot (`channel.*`, flattened by bridge.ari.event) whose only
link to the call is what ari.conf's `channelvars` adds: with `channelvars = CHANNEL(linkedid)`
(docs/ami.md) every snapshot carries `channelvars.CHANNEL(linkedid)` and calls are grouped by
Linkedid exactly as over AMI, which also links the parties no `Dial` names (an attended
transfer's target, dialed by the transfer feature: 22.10.1 sends its Dial RINGING/ANSWER with no
caller). Without it the engine links the dialed channels to their caller through the `Dial`
event (`caller.*` → `peer.*`), as it does for Asterisk 11, and an attended transfer's target
starts a call of its own. `Dial` with an empty `dialstatus` is the start of a dial;
RINGING/PROGRESS/PROCEEDING are progress; anything else is its end (AMI DialEnd).
ARI has no queue events: a channel whose dialplan runs `Queue(name,…)` has joined `name`.
"""

from __future__ import annotations

from bridge.ami.message import Message
from bridge.ari.event import LINKEDID, state_number
from bridge.calls.channels import Channel
from bridge.calls.common import Handler, attended_transfer
from bridge.calls.engine import CallEngine
from bridge.calls.state import CALLEE

DIAL_PROGRESS = {"RINGING", "PROGRESS", "PROCEEDING"}
# Apps that run on the outgoing channel of a Dial or a queue member while it is being called.
DIALED_APPS = {"appdial", "appqueue"}


def ensure_channel(engine: CallEngine, server: str, msg: Message, prefix: str = "channel") -> Channel | None:
    """The channel an event's snapshot (`channel.*`, `peer.*`, `caller.*`) describes, created if new."""
    uid, name = msg.get(f"{prefix}.id"), msg.get(f"{prefix}.name")
    if not uid or not name:
        return None
    return engine.channel_new(
        server, uid, name, state_number(msg.get(f"{prefix}.state")), msg.get(f"{prefix}.dialplan.context") or "",
        msg.get(f"{prefix}.dialplan.exten") or "", msg.get(f"{prefix}.caller.number"),
        msg.get(f"{prefix}.caller.name"), msg.get(f"{prefix}.{LINKEDID}") or None,
        msg.get(f"{prefix}.connected.number"))


def on_created(engine: CallEngine, server: str, msg: Message) -> None:
    ensure_channel(engine, server, msg)


def on_state_change(engine: CallEngine, server: str, msg: Message) -> None:
    ch = ensure_channel(engine, server, msg)
    if ch is None:
        return
    if (msg.get("channel.dialplan.app_name") or "").lower() in DIALED_APPS and engine.call_of(ch)[1].role != CALLEE:
        # ARI may deliver a dialed channel's Ringing before the Dial event naming its caller
        # (22.10.1, four calls at once); without Linkedid the channel would ring as a call of
        # its own. Keep the state; the Dial event rings it inside the caller's call.
        ch.state = state_number(msg.get("channel.state"))
        return
    engine.state(server, ch.uniqueid, state_number(msg.get("channel.state")), msg.get("channel.caller.number"),
                 msg.get("channel.caller.name"), msg.get("channel.connected.number"))


def on_caller_id(engine: CallEngine, server: str, msg: Message) -> None:
    engine.caller_id(server, msg.get("channel.id"), msg.get("channel.caller.number"),
                     msg.get("channel.caller.name"), msg.get("channel.connected.number"))


def on_dialplan(engine: CallEngine, server: str, msg: Message) -> None:
    uid = msg.get("channel.id")
    engine.newexten(server, uid, msg.get("channel.dialplan.context") or "", msg.get("channel.dialplan.exten") or "",
                    msg.get("dialplan_app"))
    if (msg.get("dialplan_app") or "").lower() == "queue":
        queue = (msg.get("dialplan_app_data") or "").split(",")[0]
        engine.queue_join(server, uid, queue or None)


def on_dial(engine: CallEngine, server: str, msg: Message) -> None:
    status = msg.get("dialstatus") or ""
    if status in DIAL_PROGRESS:
        return
    if status:
        engine.dial_end(server, msg.get("caller.id"), msg.get("peer.id"), status)
        return
    src = ensure_channel(engine, server, msg, "caller")
    dst = ensure_channel(engine, server, msg, "peer")
    if dst is not None:
        engine.dial_begin(server, src.uniqueid if src else None, dst, msg.get("dialstring"),
                          dial_end_follows=src is not None)


def on_entered_bridge(engine: CallEngine, server: str, msg: Message) -> None:
    ch = ensure_channel(engine, server, msg)
    if ch is not None:
        engine.queue_leave(server, ch.uniqueid)
        engine.bridge_enter(server, ch.uniqueid, msg.get("bridge.id") or "")


def on_left_bridge(engine: CallEngine, server: str, msg: Message) -> None:
    engine.bridge_leave(server, msg.get("channel.id"))


def on_blind_transfer(engine: CallEngine, server: str, msg: Message) -> None:
    # `channel` is the transferer; `transferee` the party sent to `exten` (res/ari/ari_model_events).
    transferee = engine.channel(server, msg.get("transferee.id"))
    transferer = engine.channel(server, msg.get("channel.id"))
    if transferee is not None:
        engine.transfer(transferee, transferer, msg.get("exten") or "", "blind")


def on_attended_transfer(engine: CallEngine, server: str, msg: Message) -> None:
    # The transferer's first leg is the one the transferee was talking to (res/ari/ari_model_events).
    attended_transfer(engine, server, msg.get("result"), msg.get("transferee.id"), msg.get("transferer_first_leg.id"),
                      msg.get("transfer_target.name"), msg.get("destination_bridge"))


def on_hangup_request(engine: CallEngine, server: str, msg: Message) -> None:
    engine.hangup_request(server, msg.get("channel.id"))


def on_destroyed(engine: CallEngine, server: str, msg: Message) -> None:
    engine.hangup(server, msg.get("channel.id"), msg.get("cause"), msg.get("cause_txt"))


HANDLERS: dict[str, Handler] = {
    "channelcreated": on_created,
    "channelstatechange": on_state_change,
    "channelcallerid": on_caller_id,
    "channelconnectedline": on_caller_id,
    "channeldialplan": on_dialplan,
    "dial": on_dial,
    "channelenteredbridge": on_entered_bridge,
    "channelleftbridge": on_left_bridge,
    "bridgeblindtransfer": on_blind_transfer,
    "bridgeattendedtransfer": on_attended_transfer,
    "channelhanguprequest": on_hangup_request,
    "channeldestroyed": on_destroyed,
}

# As ARI spells them (the WebSocket sends every event of subscribeAll; no server-side filter).
ARI_CALL_EVENT_NAMES = ("ChannelCreated", "ChannelStateChange", "ChannelCallerId", "ChannelConnectedLine",
                        "ChannelDialplan", "Dial", "ChannelEnteredBridge", "ChannelLeftBridge",
                        "BridgeBlindTransfer", "BridgeAttendedTransfer", "ChannelHangupRequest", "ChannelDestroyed")
assert {n.lower() for n in ARI_CALL_EVENT_NAMES} == set(HANDLERS)
