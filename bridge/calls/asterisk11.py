"""Adapter for the Asterisk <= 11 event set: `Dial` SubEvent Begin/End, `Bridge` Link/Unlink,
queue `Join`/`Leave`, `Transfer`; no Linkedid, so calls are linked from these events."""

from __future__ import annotations

from bridge.ami.message import Message
from bridge.calls.common import Handler
from bridge.calls.engine import CallEngine


def on_dial(engine: CallEngine, server: str, msg: Message) -> None:
    # Header case varies within one 11.25.3 stream (`UniqueID` here, `Uniqueid` elsewhere);
    # Message.get is case-insensitive.
    src = msg.get("UniqueID")
    if (msg.get("SubEvent") or "").lower() == "begin":
        engine.caller_id(server, src, msg.get("CallerIDNum"), msg.get("CallerIDName"))
        dst_uid, dst_name = msg.get("DestUniqueID"), msg.get("Destination")
        if not dst_uid or not dst_name:
            return
        dst = engine.channel(server, dst_uid) or engine.channel_new(
            server, dst_uid, dst_name, 0, "", "", None, None)
        engine.dial_begin(server, src, dst, msg.get("Dialstring"))
    else:
        engine.dial_end(server, src, None, msg.get("DialStatus") or "")


def on_bridge(engine: CallEngine, server: str, msg: Message) -> None:
    uid1, uid2 = msg.get("Uniqueid1"), msg.get("Uniqueid2")
    if (msg.get("Bridgestate") or "").lower() == "link":
        engine.bridge_link(server, uid1, uid2)
    else:
        engine.bridge_leave(server, uid1)
        engine.bridge_leave(server, uid2)


def on_join(engine: CallEngine, server: str, msg: Message) -> None:
    engine.caller_id(server, msg.get("Uniqueid"), msg.get("CallerIDNum"), msg.get("CallerIDName"))
    engine.queue_join(server, msg.get("Uniqueid"), msg.get("Queue"))


def on_leave(engine: CallEngine, server: str, msg: Message) -> None:
    engine.queue_leave(server, msg.get("Uniqueid"))


def on_transfer(engine: CallEngine, server: str, msg: Message) -> None:
    """`Transfer` (features.c, 1.8–11): Channel is the transferer, TargetChannel the transferee."""
    transferee = engine.channel(server, msg.get("TargetUniqueid"))
    transferer = engine.channel(server, msg.get("Uniqueid"))
    if transferee is not None:
        kind = "attended" if (msg.get("TransferType") or "").lower() == "attended" else "blind"
        engine.transfer(transferee, transferer, msg.get("TransferExten") or "", kind)


HANDLERS: dict[str, Handler] = {
    "dial": on_dial,
    "bridge": on_bridge,
    "join": on_join,
    "leave": on_leave,
    "transfer": on_transfer,
}
