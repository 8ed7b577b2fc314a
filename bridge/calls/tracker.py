"""CallTracker: the thread-safe front of the call model (feed, reconcile, status queries)."""

from __future__ import annotations

import threading
import time
from typing import Callable, Sequence

from bridge.ami.message import Message
from bridge.ari.event import AriEvent
from bridge.calls import ari, asterisk11, asterisk12, common
from bridge.calls.common import to_int
from bridge.calls.engine import CallEngine
from bridge.calls.intents import Intent
from bridge.calls.model import CALL_EVENT_NAMES, ENDED, CallInfo
from bridge.config import CallsConfig
from bridge.events.model import BridgeEvent

# A call whose Hangup we never saw and that no reconcile ended (a link that never came back)
# must not stay in memory forever.
MAX_CALL_AGE_S = 24 * 3600.0

# One table for both event sets: their names do not collide, and a server can be upgraded
# under a running bridge.
_HANDLERS: dict[str, common.Handler] = {**common.HANDLERS, **asterisk11.HANDLERS, **asterisk12.HANDLERS}

# Events the call model needs (lower case, as looked up); everything else is skipped
# without taking the lock. CALL_EVENT_NAMES spells them the way Asterisk does.
CALL_EVENTS = frozenset(_HANDLERS)
assert {n.lower() for n in CALL_EVENT_NAMES} == CALL_EVENTS
# ARI's names are a table of their own: its `Dial` is not Asterisk 11's AMI `Dial`.
_ARI_HANDLERS = ari.HANDLERS


class CallTracker:
    """Keeps channels and calls of every server from raw AMI events; emits normalized events.

    Fed by the AMI reader threads, read by SOAP threads: every public method takes one lock.
    """

    def __init__(self, calls_config: CallsConfig = CallsConfig(),
                 clock: Callable[[], float] = time.time) -> None:
        self._cfg = calls_config
        self._clock = clock
        self._lock = threading.Lock()
        self._engine = CallEngine(calls_config, clock)

    def feed(self, server: str, message: Message) -> list[BridgeEvent]:
        """Apply one raw AMI (or ARI) event; returns the normalized events it caused (often none)."""
        name = message.event
        table = _ARI_HANDLERS if isinstance(message, AriEvent) else _HANDLERS
        handler = table.get(name.lower()) if name else None
        if handler is None:
            return []
        with self._lock:
            engine = self._engine
            engine.out = []
            handler(engine, server, message)
            return engine.out

    def expect_originate(self, server: str, uniqueid: str, originate_id: str, caller: str,
                         callee: str) -> None:
        """Our own Originate/ClickToCall is about to start a call whose first channel has
        `uniqueid`: tell its story as `caller` (the extension) calling `callee` (the number)."""
        self._engine.intents.expect(server, uniqueid, Intent(originate_id, caller, callee))

    def mark(self) -> int:
        """Take before sending CoreShowChannels; pass to reconcile() as `since_mark`."""
        with self._lock:
            return self._engine.seq

    def reconcile(self, server: str, live: Sequence[Message],
                  since_mark: int | None = None) -> list[BridgeEvent]:
        """After a reconnect: `CoreShowChannel` events are what is live now. Calls whose
        channels all vanished end with `lost-during-disconnect`; new channels are adopted.

        Events keep flowing while CoreShowChannels runs: a channel created after `since_mark`
        (see mark()) may be missing from `live` only because it is newer than the list.
        """
        live_ids = {m.get("Uniqueid") for m in live if m.get("Uniqueid")}
        with self._lock:
            engine = self._engine
            engine.out = []
            newest = engine.seq if since_mark is None else since_mark
            for ch in [c for c in engine.channels.values() if c.server == server and not c.hung_up]:
                if ch.uniqueid not in live_ids and ch.seq <= newest:
                    engine.hangup(server, ch.uniqueid, None, None, lost=True)
            for msg in live:
                self._adopt_live(server, msg)
            return engine.out

    def _adopt_live(self, server: str, msg: Message) -> None:
        uid, name = msg.get("Uniqueid"), msg.get("Channel")
        if not uid or not name or self._engine.channel(server, uid) is not None:
            return
        # Asterisk 11 spells these `Extension` and `CallerIDnum`; Message.get ignores case.
        self._engine.channel_new(
            server, uid, name, to_int(msg.get("ChannelState")), msg.get("Context") or "",
            msg.get("Exten") or msg.get("Extension") or "", msg.get("CallerIDNum"),
            msg.get("CallerIDName"), msg.get("Linkedid"), msg.get("ConnectedLineNum"))

    def call_id_of(self, server: str, uniqueid: str | None) -> str | None:
        """The call a channel belongs to: lets raw events of one call share an order key on
        Asterisk 11, where the events themselves carry no Linkedid."""
        if not uniqueid:
            return None
        with self._lock:
            ch = self._engine.channels.get((server, uniqueid))
            return ch.call_id if ch is not None else None

    def active_calls(self, extension: str | None = None) -> list[CallInfo]:
        with self._lock:
            infos = [c.info() for c in self._engine.calls.values()
                     if c.ended_at is None and (c.emitted or c.originated)]
        if extension is not None:
            infos = [i for i in infos if extension in i.extensions() or i.caller_num == extension]
        return sorted(infos, key=lambda i: i.started_at)

    def extension_call(self, extension: str) -> CallInfo | None:
        """The extension's current call: the newest active call it takes part in."""
        with self._lock:
            candidates = [c for c in self._engine.calls.values() if c.ended_at is None and any(
                leg.extension == extension and leg.ended_at is None for leg in c.legs.values())]
            newest = max(candidates, key=lambda c: c.started_at, default=None)
            return newest.info() if newest else None

    def call(self, call_id: str) -> CallInfo | None:
        with self._lock:
            found = next((c for (_, cid), c in self._engine.calls.items() if cid == call_id), None)
            return found.info() if found else None

    def expire(self) -> None:
        """Drop ended calls older than the grace period (and calls older than MAX_CALL_AGE_S)."""
        now = self._clock()
        grace = self._cfg.ended_grace_s
        with self._lock:
            engine = self._engine
            for key, call in list(engine.calls.items()):
                ended_long_ago = call.ended_at is not None and now - call.ended_at >= grace
                if ended_long_ago or now - call.started_at >= MAX_CALL_AGE_S:
                    del engine.calls[key]
                    for leg in call.legs.values():
                        engine.legs.pop((call.server, leg.key), None)
                        for ch in leg.channels:
                            engine.channels.pop((ch.server, ch.uniqueid), None)
                            engine.queued.pop((ch.server, ch.uniqueid), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._engine.calls)

    @property
    def channel_count(self) -> int:
        with self._lock:
            return len(self._engine.channels)

    def state_of(self, call_id: str) -> str:
        info = self.call(call_id)
        return info.state if info else ENDED
