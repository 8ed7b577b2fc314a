"""The AMI listener that turns events into routed BridgeEvents: raw, call model, filters, sink."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Protocol, Sequence

from bridge.ami.actions import Action
from bridge.ami.message import Banner, Message
from bridge.errors import BridgeError
from bridge.events.ids import EventIds, derived_id
from bridge.events.link import NEVER_UP_REASON, STOPPING_REASON, LinkWatch, lost_calls
from bridge.events.model import RAW, BridgeEvent, EventSink
from bridge.events.router import Router


log = logging.getLogger(__name__)

RESYNC_TIMEOUT_S = 15.0   # CoreShowChannels on a busy PBX lists thousands of channels


class CallModel(Protocol):
    """What the pipeline needs from the call model (bridge.calls.CallTracker, handed in by the wiring)."""

    def feed(self, server: str, message: Message) -> list[BridgeEvent]: ...
    def call_id_of(self, server: str, uniqueid: str | None) -> str | None: ...
    def mark(self) -> int: ...
    def reconcile(self, server: str, live: Sequence[Message], since_mark: int | None = None) -> list[BridgeEvent]: ...


class PipelineMetrics(Protocol):
    """What the pipeline counts, per AMI server (bridge.observability.Metrics implements it)."""

    def event_received(self, server: str) -> None: ...
    def event_filtered(self, server: str) -> None: ...
    def event_accepted(self, server: str, kind: str) -> None: ...


class _RawView:
    """A Message seen as a filterable event, without building a BridgeEvent (uuid, clock) for
    the many events that no subscriber wants."""

    __slots__ = ("server", "kind", "name", "text", "_message")

    def __init__(self, message: Message, server: str = "") -> None:
        self.server = server
        self.kind = RAW
        self.name = message.event or ""
        self.text = message.text
        self._message = message

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._message.get(name, default)


def raw_event(server: str, message: Message, received_monotonic: float = 0.0,
              call_id: str | None = None, event_uuid: str | None = None) -> BridgeEvent:
    """The raw BridgeEvent of an AMI event; its order key keeps one call's events together:
    the call id when the tracker knows it, else Linkedid, Uniqueid or Channel."""
    order_key = (call_id or message.get("Linkedid") or message.get("Uniqueid")
                 or message.get("Channel") or _ari_channel(message) or message.event or "")
    event = BridgeEvent(server=server, name=message.event or "", kind=RAW, headers=message.headers,
                        text=message.text, order_key=order_key, received_monotonic=received_monotonic)
    return event if event_uuid is None else replace(event, event_uuid=event_uuid)


def _with_derived_ids(source_id: str, events: list[BridgeEvent]) -> list[BridgeEvent]:
    """Normalized events caused by one raw event: ids from its id, their name and their rank."""
    seen: dict[str, int] = {}
    out = []
    for event in events:
        index = seen[event.name] = seen.get(event.name, -1) + 1
        out.append(replace(event, event_uuid=derived_id(source_id, event.name, index)))
    return out


def _ari_channel(message: Message) -> str | None:
    """An ARI event's channel (bridge.ari.event flattens `channel.id`; a Dial names its `peer`)."""
    return message.get("channel.id") or message.get("peer.id")


class Pipeline:
    """AmiListener: each event goes to the call tracker, then raw and normalized events go
    through the Router to `sink.accept`. Runs on the AMI reader thread: never blocks on I/O
    (the sink's own queue applies backpressure). Link changes become LinkDown/LinkUp events
    (bridge.events.link), routed the same way."""

    def __init__(self, server_tracker: CallModel, router: Router, sink: EventSink,
                 metrics: PipelineMetrics | None = None, clients: Sequence = (),
                 link_watch: LinkWatch | None = None, ids: EventIds | None = None) -> None:
        self.tracker = server_tracker
        self.ids = ids or EventIds()
        self.router = router
        self.sink = sink
        self.metrics = metrics
        self.link_watch = link_watch or LinkWatch()
        self._stopping = False
        # LinkDown/LinkUp come from the notifier thread and the start-up check: one at a time,
        # so the last one the ERP gets is the link's real state.
        self._link_lock = threading.Lock()
        self._clients: dict[str, object] = {}
        for client in clients:
            self.attach(client)

    def attach(self, client) -> None:
        """Listen to `client` and use it for the CoreShowChannels resync after each login."""
        self._clients[client.name] = client
        client.add_listener(self)

    # -- AmiListener ---------------------------------------------------------------------------

    def on_event(self, server: str, message: Message) -> None:
        arrived = time.monotonic()
        metrics = self.metrics
        if metrics is not None:
            metrics.event_received(server)
        normalized = self.tracker.feed(server, message)
        # Every event gets its id, routed or not: a repeat's occurrence index must count the
        # same events on every node (bridge.events.ids).
        key = self.ids.raw_key(server, message.text)
        names = self.router.route(_RawView(message, server))
        # Spelled once, and only for an event something keeps (the raw one or what it caused).
        event_uuid = self.ids.spell(key) if names or normalized else None
        if normalized:
            normalized = _with_derived_ids(event_uuid, normalized)
        if names:
            uid = message.get("Uniqueid") or message.get("Uniqueid1") or _ari_channel(message)
            self._accept(raw_event(server, message, arrived, self.tracker.call_id_of(server, uid),
                                   event_uuid), names)
        elif metrics is not None:
            metrics.event_filtered(server)
        for event in normalized:   # after the raw event that caused them
            self._deliver(event, arrived)

    def on_connected(self, server: str, banner: Banner) -> None:
        """After login and filters: ask what is live, end the calls that vanished meanwhile,
        then say LinkUp (after those CallEnded, so its LostCalls counts them)."""
        client = self._clients.get(server)
        lost = self._resync(server, client) if client is not None else None
        version = getattr(client, "asterisk_version", None)
        with self._link_lock:
            self._deliver(self.link_watch.up(server, version, banner.version_text if banner else None,
                                             lost), time.monotonic())

    def on_disconnected(self, server: str, reason: str) -> None:
        """LinkDown. Calls stay open until the resync after the next login decides."""
        reason = STOPPING_REASON if self._stopping else reason
        with self._link_lock:
            self._deliver(self.link_watch.down(server, reason), time.monotonic())

    def check_unreachable(self) -> None:
        """Run once, a while after start: a link that never logged in gets a LinkDown, since the
        ERP may still believe it up (the bridge crashed, and Asterisk is down now)."""
        for server, client in self._clients.items():
            with self._link_lock:
                if self._stopping or client.connected or client.stats.connects:
                    continue
                reason = f"{NEVER_UP_REASON}: {client.stats.last_error or 'no login yet'}"
                self._deliver(self.link_watch.down(server, reason), time.monotonic())

    def link_taken_over(self, server: str) -> None:
        """This node just became the leader of `server` (bridge.ha): its LinkUp, so the ERP's last
        word on the link is "up" even when the old leader's was a LinkDown."""
        client = self._clients.get(server)
        if client is None or not client.connected:
            return
        banner = getattr(client, "banner", None)
        with self._link_lock:
            self._deliver(self.link_watch.up(server, getattr(client, "asterisk_version", None),
                                             banner.version_text if banner else None, None), time.monotonic())

    def stopping(self) -> None:
        """The bridge is shutting its links: the LinkDowns that follow say so."""
        self._stopping = True

    def _resync(self, server: str, client) -> int | None:
        """CoreShowChannels → reconcile; the number of calls closed as lost, None if it failed."""
        mark = self.tracker.mark()
        try:
            result = client.send_action(Action.build("CoreShowChannels")).result(RESYNC_TIMEOUT_S)
        except BridgeError as exc:
            log.warning("ami %s: resync after reconnect failed: %s", server, exc)
            return None
        except TimeoutError:
            log.warning("ami %s: resync after reconnect timed out after %.0f s", server, RESYNC_TIMEOUT_S)
            return None
        live = [m for m in result.events if (m.event or "").lower() == "coreshowchannel"]
        ended = self.tracker.reconcile(server, live, since_mark=mark)
        for event in ended:   # this node's own conclusion: written only by the leader (bridge.ha)
            self._deliver(replace(event, local=True), time.monotonic())
        return lost_calls(ended)

    # -- helpers -------------------------------------------------------------------------------

    def _deliver(self, event: BridgeEvent, arrived: float) -> None:
        names = self.router.route(event)
        if names:
            if not event.received_monotonic:
                event = replace(event, received_monotonic=arrived)
            self._accept(event, names)
        elif self.metrics is not None:
            self.metrics.event_filtered(event.server)

    def _accept(self, event: BridgeEvent, names: list[str]) -> None:
        self.sink.accept(event, names)
        if self.metrics is not None:
            self.metrics.event_accepted(event.server, event.kind)
