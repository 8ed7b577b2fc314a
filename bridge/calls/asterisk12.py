"""Adapter for the Asterisk 12+ event set: DialBegin/DialEnd, BridgeEnter/BridgeLeave,
QueueCallerJoin/Leave, BlindTransfer, AttendedTransfer; every channel event carries Linkedid."""

from __future__ import annotations

from bridge.ami.message import Message
from bridge.calls.common import Handler, attended_transfer, ensure_channel
from bridge.calls.engine import CallEngine


def on_dial_begin(engine: CallEngine, server: str, msg: Message) -> None:
    src = ensure_channel(engine, server, msg)
    dst = ensure_channel(engine, server, msg, "Dest")
    if dst is None:
        return
    if src is not None:
        engine.caller_id(server, src.uniqueid, msg.get("CallerIDNum"), msg.get("CallerIDName"))
    engine.dial_begin(server, src.uniqueid if src else None, dst, msg.get("DialString"),
                      dial_end_follows=src is not None)


def on_dial_end(engine: CallEngine, server: str, msg: Message) -> None:
    # Asterisk 22 repeats `DialEnd` CANCEL byte-identically per cancelled queue member
    # (queue-22.10.1 capture); dial_end is idempotent.
    engine.dial_end(server, msg.get("Uniqueid"), msg.get("DestUniqueid"), msg.get("DialStatus") or "")


def on_bridge_enter(engine: CallEngine, server: str, msg: Message) -> None:
    ensure_channel(engine, server, msg)
    engine.bridge_enter(server, msg.get("Uniqueid"), msg.get("BridgeUniqueid") or "")


def on_bridge_leave(engine: CallEngine, server: str, msg: Message) -> None:
    engine.bridge_leave(server, msg.get("Uniqueid"))


def on_queue_join(engine: CallEngine, server: str, msg: Message) -> None:
    ensure_channel(engine, server, msg)
    engine.queue_join(server, msg.get("Uniqueid"), msg.get("Queue"))


def on_queue_leave(engine: CallEngine, server: str, msg: Message) -> None:
    engine.queue_leave(server, msg.get("Uniqueid"))


def on_blind_transfer(engine: CallEngine, server: str, msg: Message) -> None:
    transferee = engine.channel(server, msg.get("TransfereeUniqueid"))
    transferer = engine.channel(server, msg.get("TransfererUniqueid"))
    if transferee is not None:
        engine.transfer(transferee, transferer, msg.get("Extension") or "", "blind")


def on_attended_transfer(engine: CallEngine, server: str, msg: Message) -> None:
    attended_transfer(engine, server, msg.get("Result"), msg.get("TransfereeUniqueid"),
                      msg.get("OrigTransfererUniqueid"), msg.get("TransferTargetChannel"),
                      msg.get("DestBridgeUniqueid"))


def on_connected_line(engine: CallEngine, server: str, msg: Message) -> None:
    engine.caller_id(server, msg.get("Uniqueid"), None, None, msg.get("ConnectedLineNum"))


HANDLERS: dict[str, Handler] = {
    "dialbegin": on_dial_begin,
    "dialend": on_dial_end,
    "bridgeenter": on_bridge_enter,
    "bridgeleave": on_bridge_leave,
    # Asterisk 12 named them Join/Leave with a snapshot; 13+ QueueCallerJoin/Leave.
    "queuecallerjoin": on_queue_join,
    "queuecallerleave": on_queue_leave,
    "blindtransfer": on_blind_transfer,
    "attendedtransfer": on_attended_transfer,
    "newconnectedline": on_connected_line,
}
