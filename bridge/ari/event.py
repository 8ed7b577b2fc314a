"""ARI JSON events as Messages: nested JSON flattened to `channel.caller.number`-style headers.

An ARI event is a JSON object (`{"type": "ChannelCreated", "channel": {"caller": {...}}}`).
The rest of the bridge reads events as ordered (name, value) pairs with a text form that
ROM-style regex filters search, so the JSON is flattened depth first in its own key order:
`Event: ChannelCreated`, then `channel.id`, `channel.caller.number`, … A list item is
addressed by its index (`args.0`). `type` becomes the `Event` header, so a subscriber's
`events = [...]` list and `headers = {...}` matches work as they do for AMI.
"""

from __future__ import annotations

import json
from typing import Any

from bridge.ami.message import Message
from bridge.errors import AmiProtocolError

EVENT = "Event"
MAX_DEPTH = 8              # ARI nests at most 4 deep (channel.dialplan.app_data); guard garbage

# The snapshot field ari.conf `channelvars = CHANNEL(linkedid)` adds (the variable's name is the key):
# `channel.<LINKEDID>`, `peer.<LINKEDID>`, … in a flattened event.
LINKEDID_VAR = "CHANNEL(linkedid)"
LINKEDID = f"channelvars.{LINKEDID_VAR}"

# ast_state2str() (main/channel.c) → AST_STATE_* number, as AMI reports ChannelState.
STATES = {"down": 0, "rsrvd": 1, "offhook": 2, "dialing": 3, "ring": 4, "ringing": 5, "up": 6,
          "busy": 7, "dialing offhook": 8, "pre-ring": 9, "mute": 10}


class AriEvent(Message):
    """A Message from ARI: `headers` are the flattened JSON paths; `data` keeps the parsed JSON."""

    __slots__ = ("data",)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "AriEvent":
        pairs = [(EVENT, str(data.get("type") or ""))]
        pairs.extend(flatten(data, skip=("type",)))
        event = cls(tuple(pairs), "\r\n".join(f"{k}: {v}" for k, v in pairs))
        object.__setattr__(event, "data", data)
        return event


def parse(text: str | bytes) -> AriEvent:
    """One WebSocket text frame → AriEvent; AmiProtocolError for anything but a JSON object."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AmiProtocolError(f"ARI sent a frame that is not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise AmiProtocolError("ARI sent a JSON frame without an event `type`")
    return AriEvent.from_json(data)


def flatten(value: Any, prefix: str = "", skip: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """Depth-first (path, text) pairs; booleans as true/false, null as empty, like the JSON reads."""
    out: list[tuple[str, str]] = []
    if isinstance(value, (dict, list)):
        _walk(value, prefix, skip, 0, out)
    else:
        out.append((prefix, _text(value)))
    return out


def _walk(value: dict | list, prefix: str, skip: tuple[str, ...], depth: int, out: list[tuple[str, str]]) -> None:
    # One call per container, leaves appended in place: a generator per level (`yield from` down
    # every path) cost a third of the reader's time in a dialplan flood, where ARI is the slower link.
    if depth > MAX_DEPTH:
        raise AmiProtocolError(f"ARI event nested deeper than {MAX_DEPTH} levels at {prefix!r}")
    base = f"{prefix}." if prefix else ""
    pairs = ((k, v) for k, v in value.items() if k not in skip) if isinstance(value, dict) else enumerate(value)
    for key, item in pairs:
        path = f"{base}{key}"
        if type(item) is str:
            out.append((path, item))
        elif isinstance(item, (dict, list)):
            _walk(item, path, (), depth + 1, out)
        else:
            out.append((path, _text(item)))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def state_number(state: str | None) -> int:
    """ARI's channel state text (`Ringing`) → the AST_STATE_* number the call model uses."""
    return STATES.get((state or "").lower(), 0)


def channel_as_ami(channel: dict[str, Any], event: str = "CoreShowChannel") -> Message:
    """An ARI Channel object (GET /channels) in the shape of AMI's CoreShowChannel, for the resync."""
    caller, connected = channel.get("caller") or {}, channel.get("connected") or {}
    dialplan = channel.get("dialplan") or {}
    uid = str(channel.get("id") or "")
    linkedid = (channel.get("channelvars") or {}).get(LINKEDID_VAR)   # ari.conf channelvars
    pairs = [(EVENT, event), ("Channel", str(channel.get("name") or "")), ("Uniqueid", uid),
             ("Linkedid", str(linkedid or "")),
             ("ChannelState", str(state_number(channel.get("state")))),
             ("CallerIDNum", str(caller.get("number") or "")), ("CallerIDName", str(caller.get("name") or "")),
             ("ConnectedLineNum", str(connected.get("number") or "")),
             ("Context", str(dialplan.get("context") or "")), ("Exten", str(dialplan.get("exten") or ""))]
    return Message.from_pairs(pairs)
