"""The simulator's live-channel table, fed by the events it sends, read by CoreShowChannels/Status/ExtensionState."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

Value = str | bytes
Pairs = Sequence[tuple[str, Value]]

# The device part of a channel name: PJSIP/202-00000001, SIP/202-0000019c, Local/200@test-0000;1.
_DEVICE = re.compile(r"^(?:PJSIP|SIP|IAX2|DAHDI|Local)/([^-@/;]+)")

# ExtensionState codes (include/asterisk/pbx.h AST_EXTENSION_*): 0 idle, 1 in use, 8 ringing.
EXTENSION_IDLE, EXTENSION_INUSE, EXTENSION_RINGING, EXTENSION_NOT_FOUND = 0, 1, 8, -1
_STATUS_TEXT = {0: "Idle", 1: "InUse", 8: "Ringing", -1: "Unknown"}
# The simulated dialplan has a hint for every 2-4 digit extension (like a `_XXX` hint pattern).
# Anything else has none, and Asterisk 22.10.1 then answers `Hint:` empty, `Status: -1`,
# `StatusText: Unknown` (seen live for Exten 9999 in a context without hints).
_HINTED = re.compile(r"\d{2,4}")
_STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}


@dataclass(frozen=True)
class Channel:
    channel: str
    uniqueid: str
    linkedid: str
    state: int = 0
    caller_num: Value = ""
    caller_name: Value = ""
    connected_num: Value = ""
    connected_name: Value = ""
    context: str = ""
    exten: str = ""
    priority: str = "1"
    application: str = ""
    application_data: str = ""
    bridge_id: str = ""
    created: float = 0.0

    @property
    def state_desc(self) -> str:
        return _STATE_DESC.get(self.state, "Unknown")

    @property
    def device(self) -> str | None:
        match = _DEVICE.match(self.channel)
        return match.group(1) if match else None


def _get(pairs: Pairs, *keys: str) -> Value | None:
    lowered = {k.lower() for k in keys}
    return next((v for k, v in pairs if k.lower() in lowered), None)


def _text(value: Value | None) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else value.decode("cp1251", errors="replace")


class ChannelRegistry:
    """Thread-safe: scenario players write, session threads read."""

    def __init__(self, clock=time.monotonic) -> None:
        self._lock = threading.Lock()
        self._channels: dict[str, Channel] = {}  # by channel name
        self._clock = clock

    def __len__(self) -> int:
        with self._lock:
            return len(self._channels)

    def snapshot(self) -> list[Channel]:
        with self._lock:
            return list(self._channels.values())

    def find(self, channel: str) -> Channel | None:
        with self._lock:
            return self._channels.get(channel)

    def observe(self, pairs: Pairs) -> None:
        """Apply one event (as sent to clients) to the table."""
        event = _text(_get(pairs, "Event"))
        name = _text(_get(pairs, "Channel"))
        if not name:
            return
        with self._lock:
            current = self._channels.get(name)
            if event == "Newchannel":
                uniqueid = _text(_get(pairs, "Uniqueid"))
                self._channels[name] = _updated(Channel(
                    name, uniqueid, _text(_get(pairs, "Linkedid")) or uniqueid, created=self._clock()), pairs)
            elif current is None:
                return
            elif event == "Hangup":
                del self._channels[name]
            elif event in ("BridgeEnter", "Bridge"):
                self._channels[name] = replace(current, bridge_id=_text(_get(pairs, "BridgeUniqueid")) or "bridge")
            elif event == "BridgeLeave":
                self._channels[name] = replace(current, bridge_id="")
            else:
                self._channels[name] = _updated(current, pairs)

    def remove(self, channel: str) -> Channel | None:
        with self._lock:
            return self._channels.pop(channel, None)

    def update(self, channel: str, **changes: object) -> None:
        with self._lock:
            current = self._channels.get(channel)
            if current is not None:
                self._channels[channel] = replace(current, **changes)  # type: ignore[arg-type]

    def extension_state(self, exten: str) -> int:
        if not has_hint(exten):
            return EXTENSION_NOT_FOUND
        states = [c.state for c in self.snapshot() if c.device == exten]
        if not states:
            return EXTENSION_IDLE
        if any(s == 6 for s in states):
            return EXTENSION_INUSE
        return EXTENSION_RINGING if any(s in (4, 5) for s in states) else EXTENSION_INUSE


def has_hint(exten: str) -> bool:
    return _HINTED.fullmatch(exten) is not None


def status_text(code: int) -> str:
    return _STATUS_TEXT.get(code, "Unknown")


def _updated(channel: Channel, pairs: Pairs) -> Channel:
    changes: dict[str, object] = {}
    for key, attr in (("CallerIDNum", "caller_num"), ("CallerIDName", "caller_name"),
                      ("ConnectedLineNum", "connected_num"), ("ConnectedLineName", "connected_name")):
        value = _get(pairs, key)
        if value is not None:
            changes[attr] = value
    for key, attr in (("Context", "context"), ("Exten", "exten"), ("Priority", "priority"),
                      ("Application", "application"), ("AppData", "application_data")):
        value = _get(pairs, key)
        if value is not None:
            changes[attr] = _text(value)
    state = _get(pairs, "ChannelState")
    if state is not None and _text(state).isdigit():
        changes["state"] = int(_text(state))
    return replace(channel, **changes)  # type: ignore[arg-type]


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def core_show_channel(profile: str, c: Channel, action_id: str | None, now: float) -> list[tuple[str, Value]]:
    """One `CoreShowChannel` event, shaped after coreshowchannels-22.10.1.ami / Asterisk 11's manager.c."""
    aid = [("ActionID", action_id)] if action_id is not None else []
    if profile == "asterisk11":
        return [("Event", "CoreShowChannel"), *aid, ("Channel", c.channel), ("UniqueID", c.uniqueid),
                ("Context", c.context), ("Extension", c.exten), ("Priority", c.priority),
                ("ChannelState", str(c.state)), ("ChannelStateDesc", c.state_desc),
                ("Application", c.application), ("ApplicationData", c.application_data),
                ("CallerIDnum", c.caller_num), ("Duration", _duration(now - c.created)),
                ("AccountCode", ""), ("BridgedChannel", ""), ("BridgedUniqueID", "")]
    return [("Event", "CoreShowChannel"), *aid, ("Channel", c.channel), ("ChannelState", str(c.state)),
            ("ChannelStateDesc", c.state_desc), ("CallerIDNum", c.caller_num), ("CallerIDName", c.caller_name),
            ("ConnectedLineNum", c.connected_num), ("ConnectedLineName", c.connected_name),
            ("Language", "en"), ("AccountCode", ""), ("Context", c.context), ("Exten", c.exten),
            ("Priority", c.priority), ("Uniqueid", c.uniqueid), ("Linkedid", c.linkedid),
            ("Application", c.application), ("ApplicationData", c.application_data),
            ("Duration", _duration(now - c.created)), ("BridgeId", c.bridge_id)]


def status_event(profile: str, c: Channel, action_id: str | None, now: float) -> list[tuple[str, Value]]:
    """One `Status` event (status-22.10.1.ami: `Privilege: Call`, ActionID last)."""
    pairs: list[tuple[str, Value]] = [
        ("Event", "Status"), ("Privilege", "Call"), ("Channel", c.channel), ("ChannelState", str(c.state)),
        ("ChannelStateDesc", c.state_desc), ("CallerIDNum", c.caller_num), ("CallerIDName", c.caller_name),
        ("ConnectedLineNum", c.connected_num), ("ConnectedLineName", c.connected_name),
        ("AccountCode", ""), ("Context", c.context), ("Exten", c.exten), ("Priority", c.priority),
        ("Uniqueid", c.uniqueid)]
    if profile != "asterisk11":
        pairs += [("Linkedid", c.linkedid), ("BridgeID", c.bridge_id)]
    pairs += [("Application", c.application), ("Data", c.application_data),
              ("Seconds", str(int(now - c.created)))]
    if action_id is not None:
        pairs.append(("ActionID", action_id))
    return pairs


def channels_text(channels: Iterable[Channel]) -> list[str]:
    """`core show channels` output lines."""
    chans = list(channels)
    lines = [f"{'Channel':<20} {'Location':<25} {'State':<7} Application(Data)"]
    for c in chans:
        location = f"{c.exten}@{c.context}:{c.priority}"
        lines.append(f"{c.channel[:20]:<20} {location[:25]:<25} {c.state_desc:<7} "
                     f"{c.application}({c.application_data})")
    calls = len({c.linkedid for c in chans})
    lines += [f"{len(chans)} active channel{'s' if len(chans) != 1 else ''}",
              f"{calls} active call{'s' if calls != 1 else ''}"]
    return lines
