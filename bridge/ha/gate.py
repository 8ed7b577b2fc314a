"""StandbyGate: the EventSink in front of the outbox writer that only lets a leader's events through.

Per AMI server, events go to the writer while this node leads it; otherwise they wait in an
in-memory buffer of the last `buffer_s` seconds (the hot standby). promote() writes the buffer
first, in arrival order, then lets live events through; whatever the old leader already
committed is dropped at insert (same deterministic id, bridge.events.ids). Events a node makes
itself (`local`: LinkDown/LinkUp, a resync's conclusions) are never buffered: they describe
this node's link, and only the leader's reach the ERP.

A commit the fencing guard refused (this node lost the lease meanwhile) comes back through
refused(): those events are older than anything buffered since the demotion, so they are kept
apart and written first at the next promotion.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from bridge.events.model import BridgeEvent, EventSink, queued_cost

log = logging.getLogger(__name__)

BUFFER_MAX_BYTES = 256 * 1024 * 1024   # a standby's memory bound; past it the oldest events go first


@dataclass
class GateStats:
    buffered: int = 0          # events put in a standby buffer
    expired: int = 0           # buffered events that aged out (older than buffer_s) or overflowed
    local_dropped: int = 0     # this node's own link/resync events while standby
    replayed: int = 0          # buffered events written at a takeover
    refused: int = 0           # events a refused commit handed back


class _Server:
    __slots__ = ("lock", "leader", "buffer", "refused", "bytes")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.leader = False
        self.buffer: deque[tuple[float, BridgeEvent, tuple[str, ...]]] = deque()
        self.refused: deque[tuple[float, BridgeEvent, tuple[str, ...]]] = deque()
        self.bytes = 0


class StandbyGate:
    """EventSink: leader → `sink`; standby → buffer. Thread-safe (AMI readers, the coordinator,
    the writer's committer)."""

    def __init__(self, sink: EventSink, buffer_s: float, *, max_bytes: int = BUFFER_MAX_BYTES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sink = sink
        self.buffer_s = buffer_s
        self.max_bytes = max_bytes
        self.stats = GateStats()
        self._clock = clock
        self._servers: dict[str, _Server] = {}
        self._servers_lock = threading.Lock()

    def _server(self, name: str) -> _Server:
        state = self._servers.get(name)
        if state is None:
            with self._servers_lock:
                state = self._servers.setdefault(name, _Server())
        return state

    def is_leader(self, server: str) -> bool:
        return self._server(server).leader

    def accept(self, event: BridgeEvent, subscribers: Sequence[str]) -> None:
        state = self._server(event.server)
        with state.lock:
            if state.leader:
                # Under the lock: promote() cannot interleave its replay with live events.
                self.sink.accept(event, subscribers)
                return
            if event.local:
                self.stats.local_dropped += 1
                return
            now = self._clock()
            state.buffer.append((now, event, tuple(subscribers)))
            state.bytes += queued_cost(event)
            self.stats.buffered += 1
            self._prune(state, now)

    def promote(self, server: str) -> int:
        """This node now leads `server`: write what it buffered, then pass live events. Returns
        how many buffered events were handed to the writer."""
        state = self._server(server)
        with state.lock:
            self._prune(state, self._clock())
            replay = [*state.refused, *state.buffer]
            state.refused, state.buffer, state.bytes = deque(), deque(), 0
            for _, event, subscribers in replay:
                self.sink.accept(event, subscribers)
            state.leader = True
            self.stats.replayed += len(replay)
        return len(replay)

    def demote(self, server: str) -> None:
        """This node no longer leads `server` (or is handing it over): buffer from now on."""
        state = self._server(server)
        with state.lock:
            state.leader = False

    def refused(self, events: Iterable[tuple[BridgeEvent, Sequence[str]]]) -> None:
        """A commit of these events was refused (NotLeader): keep them for the next takeover."""
        now = self._clock()
        for event, subscribers in events:
            state = self._server(event.server)
            with state.lock:
                self.stats.refused += 1
                if event.local:
                    continue
                state.refused.append((now, event, tuple(subscribers)))
                state.bytes += queued_cost(event)

    def buffered(self, server: str) -> int:
        state = self._server(server)
        with state.lock:
            return len(state.buffer) + len(state.refused)

    def _prune(self, state: _Server, now: float) -> None:
        horizon = now - self.buffer_s
        dropped = 0
        for queue in (state.refused, state.buffer):
            while queue and (queue[0][0] < horizon or state.bytes > self.max_bytes):
                _, event, _ = queue.popleft()
                state.bytes -= queued_cost(event)
                dropped += 1
        self.stats.expired += dropped
