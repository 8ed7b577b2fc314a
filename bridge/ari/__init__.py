"""Asterisk REST Interface: events over a WebSocket, actions over REST, behind the AmiClient interface."""

from bridge.ari.client import AriClient
from bridge.ari.event import AriEvent, flatten

__all__ = ["AriClient", "AriEvent", "flatten"]
