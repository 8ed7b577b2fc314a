"""A steady AMI event stream for fault injection: calls of several matching events, noise between.

Every event carries `ChaosSeq` (its emission number) and `ChaosCall`; matching ones carry
`ChaosMatch: 1` (what the chaos subscriber's filter looks for), noise `ChaosMatch: 0`. The events
of one call share a Linkedid, so the bridge's per-call order (outbox order_key) is exercised with
real multi-event calls, and the audit can read the emission order back out of the PushEvent body.
The stream survives simulator restarts: it emits to whatever `SimHolder.current` is.
"""

from __future__ import annotations

import random
import threading
import time

CALL_STEPS = ("Newchannel", "DialBegin", "Newstate", "BridgeEnter", "Hangup")
OPEN_CALLS = 8                 # calls in progress at once: their events interleave on the wire
EMIT_SLICE_S = 0.01            # emit in slices this long, so high rates need no per-event sleep


class SimHolder:
    """The simulator currently listening (None while it is "killed")."""

    def __init__(self, sim=None) -> None:
        self.current = sim
        self.lock = threading.Lock()

    def swap(self, sim) -> None:
        with self.lock:
            self.current = sim


class EventStream(threading.Thread):
    """Emits `rate_per_s` events until stopped; `match_ratio` of them match the chaos filter."""

    def __init__(self, holder: SimHolder, rate_per_s: float, match_ratio: float = 0.2, seed: int = 0,
                 server: str = "pbx1", timestamps: bool = False) -> None:
        super().__init__(name="chaos-stream", daemon=True)
        self.holder, self.rate_per_s, self.match_ratio = holder, rate_per_s, match_ratio
        # manager.conf `timestampevents = yes`: Asterisk's microsecond Timestamp after Privilege,
        # what the HA setup asks for (docs/ha.md: it makes an event's id the same on every node).
        self.timestamps = timestamps
        self.rng = random.Random(seed)
        self.sent = 0                       # events emitted (whether or not anybody listened)
        self.matched_sent = 0
        self.matched_offered: list[int] = []  # ChaosSeq of matching events emitted to a logged-in session
        self._calls: list[list] = []        # [call number, next step]
        self._next_call = 0
        self._seq = 0
        self._stop_event = threading.Event()
        self._pause = threading.Event()
        self._pause.set()

    def stop(self) -> None:
        self._stop_event.set()
        self._pause.set()
        self.join(5)

    def emit_now(self, count: int) -> list[int]:
        """Emit `count` matching events synchronously (the stream should be stopped); their seqs."""
        seqs = []
        for _ in range(count):
            seqs.append(self._emit_one(force_match=True))
        return seqs

    def run(self) -> None:
        started, done = time.monotonic(), 0
        while not self._stop_event.is_set():
            self._emit_one()
            done += 1
            ahead_s = done / self.rate_per_s - (time.monotonic() - started)
            if ahead_s > EMIT_SLICE_S:
                self._stop_event.wait(ahead_s)

    def _emit_one(self, force_match: bool = False) -> int:
        seq = self._seq
        self._seq += 1
        matched = force_match or self.rng.random() < self.match_ratio
        pairs = self._matching(seq) if matched else self._noise(seq)
        if self.timestamps:
            pairs.insert(2, ("Timestamp", f"{time.time():.6f}"))
        sim = self.holder.current
        offered = False
        if sim is not None:
            offered = sim.logged_in_count() > 0
            sim.emit(pairs)
        self.sent += 1
        if matched:
            self.matched_sent += 1
            if offered:
                self.matched_offered.append(seq)
        return seq

    def _matching(self, seq: int) -> list[tuple[str, str]]:
        while len(self._calls) < OPEN_CALLS:
            self._calls.append([self._next_call, 0])
            self._next_call += 1
        call = self._calls[self.rng.randrange(len(self._calls))]
        number, step = call
        call[1] += 1
        if call[1] == len(CALL_STEPS):
            self._calls.remove(call)
        uid = f"1800000000.{number}"
        return [("Event", CALL_STEPS[step]), ("Privilege", "call,all"),
                ("Channel", f"PJSIP/202-{number:08x}"), ("CallerIDNum", "202"), ("CallerIDName", "Оператор-202"),
                ("Exten", "902"), ("Uniqueid", uid), ("Linkedid", uid),
                ("ChaosCall", str(number)), ("ChaosSeq", str(seq)), ("ChaosMatch", "1")]

    def _noise(self, seq: int) -> list[tuple[str, str]]:
        uid = f"1900000000.{seq}"
        return [("Event", "VarSet"), ("Privilege", "dialplan,all"), ("Channel", f"PJSIP/301-{seq:08x}"),
                ("Uniqueid", uid), ("Linkedid", uid), ("Variable", "DIALSTATUS"), ("Value", "ANSWER"),
                ("ChaosSeq", str(seq)), ("ChaosMatch", "0")]
