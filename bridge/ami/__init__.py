"""Asterisk Manager Interface: sans-I/O protocol, threaded client, and a simulator for tests and demos."""

from bridge.ami.client import ActionResult, AmiClient, AmiListener, ClientStats, backoff_delay
from bridge.ami.protocol import NEED_DATA, Action, AmiParser, Banner, Message
from bridge.ami.simulator import AmiSimulator, FloodJob

__all__ = [
    "NEED_DATA",
    "Action",
    "ActionResult",
    "AmiClient",
    "AmiListener",
    "AmiParser",
    "AmiSimulator",
    "Banner",
    "ClientStats",
    "FloodJob",
    "Message",
    "backoff_delay",
]
