"""Asterisk Manager Interface: sans-I/O protocol and the threaded client (the simulator lives in bridge.testing)."""

from bridge.ami.client import ActionResult, AmiClient, AmiListener, ClientStats
from bridge.ami.protocol import NEED_DATA, Action, AmiParser, Banner, Message

__all__ = [
    "NEED_DATA",
    "Action",
    "ActionResult",
    "AmiClient",
    "AmiListener",
    "AmiParser",
    "Banner",
    "ClientStats",
    "Message",
]
