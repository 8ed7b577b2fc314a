"""Redirect over ARI: a channel that runs dialplan is moved by ChannelRedirect(), run by a helper.

ARI moves only the channels inside a Stasis application: for any other channel every
`/channels/{id}/continue`, `/redirect` and `/move` answers 409 *Channel not in Stasis
application* (res/ari/resource_channels.c, find_control()), and the bridge routes no call into
Stasis (it would have to drive the whole call). So Redirect does what the dialplan itself does
to move another channel: ChannelRedirect(). The bridge originates a helper Local channel into a
one-extension context the PBX admin adds once (docs/ami.md, "ARI"):

    [asterisk-bridge-redirect]
    exten => s,1,ChannelRedirect(${BRIDGE_REDIRECT_CHANNEL},${BRIDGE_REDIRECT_CONTEXT},...)
     same => n,Hangup()

The helper's `;1` half is parked in our Stasis application (never answered, it ends with its
`;2` half); the `;2` half runs the context with the target in channel variables (a Local pair
copies them to `;2`). ChannelRedirect answers in CHANNELREDIRECT_STATUS on the helper (SUCCESS
or NOCHANNEL): that ChannelVarset, read from our own WebSocket, is the Redirect's answer. A
helper destroyed without it means the context is missing (Asterisk logs *No such
extension/context* and ARI's POST /channels has already answered 200).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Callable

from bridge.ami.message import Message
from bridge.errors import AmiActionError, AmiConnectionError

STATUS = "CHANNELREDIRECT_STATUS"
VARIABLES = ("BRIDGE_REDIRECT_CHANNEL", "BRIDGE_REDIRECT_CONTEXT", "BRIDGE_REDIRECT_EXTEN",
             "BRIDGE_REDIRECT_PRIORITY")

Predicate = Callable[[Message], "str | None"]


class Watch:
    """One-shot waiters on the event stream: the reader offers every event, a waiter whose
    predicate returns a verdict (not None) gets it once and is dropped."""

    def __init__(self) -> None:
        self._waiters: list[tuple[Predicate, Future]] = []
        self._lock = threading.Lock()

    def expect(self, predicate: Predicate) -> "Future[str]":
        future: Future = Future()
        with self._lock:
            self._waiters.append((predicate, future))
        return future

    def forget(self, future: Future) -> None:
        with self._lock:
            self._waiters = [(p, f) for p, f in self._waiters if f is not future]

    def offer(self, event: Message) -> None:
        if not self._waiters:        # the common case: nothing awaited, no lock on the read path
            return
        with self._lock:
            kept = []
            for predicate, future in self._waiters:
                verdict = predicate(event)
                if verdict is None:
                    kept.append((predicate, future))
                else:
                    future.set_result(verdict)
            self._waiters = kept

    def fail_all(self, reason: str) -> None:
        """The link went down: nobody will see the awaited event."""
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for _, future in waiters:
            future.set_exception(AmiConnectionError(reason))


def verdict_of(helper_id: str) -> Predicate:
    """SUCCESS/NOCHANNEL from the helper's CHANNELREDIRECT_STATUS; `missing` if it ends without one."""
    ids = (helper_id, f"{helper_id};2")

    def check(event: Message) -> str | None:
        if event.get("channel.id") not in ids:
            return None
        if event.get("Event") == "ChannelVarset" and event.get("variable") == STATUS:
            return event.get("value") or "missing"
        if event.get("Event") == "ChannelDestroyed":
            return "missing"
        return None
    return check


def helper_body(helper_id: str, app: str, context: str, channel: str, target: tuple[str, str, int]) -> dict:
    """POST /channels for the helper: Local/s@<context>, ;1 into our Stasis app, the target in variables."""
    values = (channel, *map(str, target))
    return {"endpoint": f"Local/s@{context}", "app": app, "channelId": helper_id,
            "otherChannelId": f"{helper_id};2", "variables": dict(zip(VARIABLES, values))}


def answer(verdict: str, channel: str, context: str, action_id: str | None) -> None:
    """Raise the typed error a failed verdict means; return for SUCCESS."""
    if verdict == "SUCCESS":
        return
    if verdict == "NOCHANNEL":
        raise AmiActionError(f"ARI Redirect: no such channel {channel!r}", action_id)
    raise AmiActionError(
        f"ARI Redirect: the helper context [{context}] did not run ChannelRedirect (missing from the "
        f"dialplan? see docs/ami.md, \"ARI\": Redirect needs that one-extension context)", action_id)
