"""Handlers for the channel events both event sets share (Newchannel, Newstate, Hangup, …)."""

from __future__ import annotations

from typing import Callable

from bridge.ami.message import Message
from bridge.calls.channels import Channel, device_of
from bridge.calls.engine import CallEngine

Handler = Callable[[CallEngine, str, Message], None]


def to_int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


def ensure_channel(engine: CallEngine, server: str, msg: Message, prefix: str = "") -> Channel | None:
    """The channel an event names, created from the event's own fields if we missed its
    Newchannel (connected mid-call, or a `Dest*` snapshot seen first)."""
    uid = msg.get(prefix + "Uniqueid")
    name = msg.get(prefix + "Channel")
    if not uid or not name:
        return None
    return engine.channel_new(
        server, uid, name, to_int(msg.get(prefix + "ChannelState")), msg.get(prefix + "Context") or "",
        msg.get(prefix + "Exten") or "", msg.get(prefix + "CallerIDNum"),
        msg.get(prefix + "CallerIDName"), msg.get(prefix + "Linkedid"),
        msg.get(prefix + "ConnectedLineNum"))


def attended_transfer(engine: CallEngine, server: str, result: str | None, transferee_uid: str | None,
                      transferer_uid: str | None, target_channel: str | None, dest_bridge: str | None) -> None:
    """An attended transfer as AMI's AttendedTransfer and ARI's BridgeAttendedTransfer tell it."""
    # 22.10.1 (AMI Atxfer, live suite): the transferer's hangup completes the transfer; its
    # Local ;2 half hangs up before this event, its ;1 half (in the bridge) after it.
    if (result or "").lower() != "success":
        return
    transferee = engine.channel(server, transferee_uid)
    transferer = engine.channel(server, transferer_uid)
    if transferee is None:
        return
    # The target's snapshot is sometimes already gone (no TransferTarget* headers, 2 of 4 runs):
    # then it is whoever joined the transferee's bridge besides the transferer.
    extension = device_of(target_channel) if target_channel else engine.bridge_peer_extension(
        transferee, dest_bridge, transferer)
    engine.transfer(transferee, transferer, extension or "", "attended")


def on_newchannel(engine: CallEngine, server: str, msg: Message) -> None:
    ensure_channel(engine, server, msg)


def on_newstate(engine: CallEngine, server: str, msg: Message) -> None:
    if msg.get("Linkedid"):
        ensure_channel(engine, server, msg)
    engine.state(server, msg.get("Uniqueid"), to_int(msg.get("ChannelState")),
                 msg.get("CallerIDNum"), msg.get("CallerIDName"), msg.get("ConnectedLineNum"))


def on_caller_id(engine: CallEngine, server: str, msg: Message) -> None:
    engine.caller_id(server, msg.get("Uniqueid"), msg.get("CallerIDNum"), msg.get("CallerIDName"),
                     msg.get("ConnectedLineNum"))


def on_newexten(engine: CallEngine, server: str, msg: Message) -> None:
    # Asterisk 22 sends both `Exten` and `Extension`; 11 only `Extension` (fixtures README).
    engine.newexten(server, msg.get("Uniqueid"), msg.get("Context") or "",
                    msg.get("Extension") or msg.get("Exten") or "", msg.get("Application"))


def on_hangup_request(engine: CallEngine, server: str, msg: Message) -> None:
    engine.hangup_request(server, msg.get("Uniqueid"))


def on_hangup(engine: CallEngine, server: str, msg: Message) -> None:
    engine.hangup(server, msg.get("Uniqueid"), msg.get("Cause"), msg.get("Cause-txt"))


def on_originate_response(engine: CallEngine, server: str, msg: Message) -> None:
    # Same fields on 11.25.3 and 22.10.1: `Application` is set only for an Originate into an
    # application (a Context/Exten one carries Context/Exten instead).
    engine.originate_response(server, msg.get("Uniqueid"), msg.get("Application"),
                              (msg.get("Response") or "").lower() == "success")


HANDLERS: dict[str, Handler] = {
    "newchannel": on_newchannel,
    "newstate": on_newstate,
    "newcallerid": on_caller_id,
    "newexten": on_newexten,
    "hanguprequest": on_hangup_request,
    "hangup": on_hangup,
    "originateresponse": on_originate_response,
}
