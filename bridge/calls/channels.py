"""Channels by Uniqueid, and the names Asterisk gives them (device, Local halves, dial strings)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# `SIP/202-0000019c`, `PJSIP/trunk-00000003`, `Local/200@test-00000000;1`: the part after the
# technology, without the -<hex> sequence suffix and the ;1/;2 half marker.
_SUFFIX = re.compile(r"-[0-9a-f]{8}(;[12])?$")
_LOCAL_HALF = re.compile(r";[12]$")
UNKNOWN_VALUES = ("", "<unknown>", "<null>", "unknown")


def known(value: str | None) -> str | None:
    """A caller-id value, or None for Asterisk's spellings of "not set" (empty on 11, <unknown> on 12+)."""
    return None if value is None or value in UNKNOWN_VALUES else value


def leg_key(name: str) -> str:
    """The two halves of a Local channel (`…;1`, `…;2`) form one leg, so they share a key."""
    return _LOCAL_HALF.sub("", name)


def is_local(name: str) -> bool:
    return name.startswith("Local/")


def device_of(name: str) -> str:
    """`SIP/202-0000019c` → `202`; `Local/100@test-00000001;1` → `100`."""
    resource = name.partition("/")[2] or name
    resource = _SUFFIX.sub("", resource)
    return resource.partition("@")[0]


def dial_target(dialstring: str | None) -> str | None:
    """The number a Dial aimed at: `902` → 902, `PJSIP/902` → 902, `100@test` → 100,
    `Local/2@queue-members` → 2, `SIP/trunk/79161234567` → 79161234567."""
    if not dialstring:
        return None
    target = dialstring.split("&")[0].split(",")[0].rstrip("/").rsplit("/", 1)[-1]
    return target.partition("@")[0] or None


@dataclass(slots=True)
class Channel:
    """What we know of one channel; mutated as its events arrive (tracker lock held)."""

    server: str
    uniqueid: str
    name: str
    call_id: str
    created_at: float
    state: int = 0
    created_state: int = 0
    context: str = ""
    exten: str = ""
    cid_num: str | None = None
    cid_name: str | None = None
    conn_num: str | None = None
    bridge: str | None = None
    hung_up: bool = False
    cause: str | None = None
    cause_txt: str | None = None
    seq: int = 0                     # creation order; reconcile() ignores channels newer than its mark

    @property
    def key(self) -> str:
        return leg_key(self.name)

    def update_caller(self, num: str | None, name: str | None, conn: str | None = None) -> None:
        if known(num):
            self.cid_num = num
        if known(name):
            self.cid_name = name
        if known(conn):
            self.conn_num = conn
