"""Asterisk Manager Interface: sans-I/O protocol and the threaded client (the simulator lives in bridge.testing)."""

from bridge.ami.client import ActionResult, AmiClient, AmiListener, ClientStats
from bridge.ami.actions import Action
from bridge.ami.message import NEED_DATA, Banner, Message
from bridge.ami.protocol import AmiParser

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
