"""The call model across Asterisk versions: CallTracker and its normalized call events."""

from bridge.calls.model import (
    CALL_ANSWERED, CALL_ENDED, CALL_EVENT_NAMES, CALL_RINGING, CALL_TRANSFERRED, NORMALIZED_EVENTS, REASONS,
    CallInfo, LegInfo,
)
from bridge.calls.tracker import CALL_EVENTS, CallTracker

__all__ = [
    "CALL_ANSWERED", "CALL_ENDED", "CALL_EVENT_NAMES", "CALL_EVENTS", "CALL_RINGING", "CALL_TRANSFERRED",
    "NORMALIZED_EVENTS", "REASONS", "CallInfo", "CallTracker", "LegInfo",
]
