"""Coordinator: the thread that takes, renews, hands over and releases this node's AMI leases.

Per `[[ami]] name` a node is a standby, the leader, or handing over. Every POLL_S it looks:
- standby: if its AMI link is up and its call model resynced (Readiness) and the lease is free
  (expired or released), take it (token + 1), then promote: write the standby buffer, pass live
  events, and say LinkUp (the ERP's last word may be the old leader's LinkDown).
- leader: renew every renew_s. A lost lease (paused, cut off, or renewing failed for lease_s)
  demotes at once; the fencing guard has refused any commit since. A `ha step-down` request
  or a lost AMI link starts a handover.
- handing over: events are buffered again; once the writer has settled everything accepted
  before (committed, so nothing is left only in this process), the lease is released and the
  node waits HOLD_OFF_S before it may lead that server again, so a standby takes it.
stop() releases every lease after the caller flushed the writer: a SIGTERM hands over in < 1 s.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Sequence

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from bridge.ha import lease
from bridge.ha.gate import StandbyGate
from bridge.ha.node import APPLICATION_PREFIX, application_name

log = logging.getLogger(__name__)

POLL_S = 0.2              # how often a standby looks at a lease (its takeover delay after expiry)
HOLD_OFF_S = 2.0          # after handing a server over, let a standby take it first

STANDBY, LEADER, HANDOVER = "standby", "leader", "handover"


@dataclass
class ServerRole:
    """One AMI server as this node sees it (read by /healthz and /metrics)."""

    role: str = STANDBY
    token: int | None = None
    since: float | None = None          # time.time() of the last role change
    renewed: float = 0.0                # monotonic time of the last successful renew/acquire
    barrier: int = 0                    # handover: writer.settled must reach this
    handover_deadline: float = 0.0
    hold_off_until: float = 0.0
    takeovers: int = 0


class Readiness:
    """AmiListener added after the pipeline: on_connected runs once the pipeline's resync is done
    (the client notifies listeners in order, on one thread), so `ready` means "may lead"."""

    def __init__(self) -> None:
        self._ready: dict[str, bool] = {}

    def on_event(self, server: str, message) -> None:
        return None   # the AmiListener protocol asks for it; readiness changes only on (dis)connect

    def on_connected(self, server: str, banner) -> None:
        self._ready[server] = True

    def on_disconnected(self, server: str, reason: str) -> None:
        self._ready[server] = False

    def ready(self, server: str) -> bool:
        return self._ready.get(server, False)


class Coordinator(threading.Thread):
    def __init__(self, engine: Engine, servers: Sequence[str], node_id: str, gate: StandbyGate, *,
                 lease_s: float, renew_s: float, ready: Callable[[str], bool],
                 settled: Callable[[], int], accepted: Callable[[], int],
                 on_promoted: Callable[[str], None] | None = None, poll_s: float = POLL_S) -> None:
        super().__init__(name="ha-coordinator", daemon=True)
        self.engine = engine
        self.node_id = node_id
        self.gate = gate
        self.lease_s, self.renew_s, self.poll_s = lease_s, renew_s, poll_s
        self.roles = {name: ServerRole() for name in servers}
        self._ready = ready
        self._settled, self._accepted = settled, accepted
        self._on_promoted = on_promoted
        self._stop_event = threading.Event()
        self._lock = threading.Lock()   # roles vs the writer thread's guard
        self._next_reap = 0.0

    # --- what other parts call ----------------------------------------------------------------

    def guard(self, conn: Connection, servers: set[str]) -> None:
        """OutboxWriter.commit_guard: NotLeader unless this node holds every server's lease."""
        with self._lock:
            held = {s: r.token for s, r in self.roles.items() if r.role != STANDBY}
        lease.guard(conn, self.node_id, held, servers)

    def is_leader(self, server: str) -> bool:
        role = self.roles.get(server)
        return role is not None and role.role == LEADER

    def snapshot(self) -> dict[str, dict]:
        """Role per server for /healthz: role, token, since (ISO time)."""
        out = {}
        for name, r in self.roles.items():
            since = datetime.fromtimestamp(r.since).astimezone().isoformat(timespec="seconds") if r.since else None
            out[name] = {"role": r.role, "token": r.token, "since": since, "node": self.node_id}
        return out

    # --- the thread ---------------------------------------------------------------------------

    def run(self) -> None:
        while not self._stop_event.is_set():
            for server in self.roles:
                try:
                    self._step(server)
                except Exception:  # the top of a thread: log and keep going
                    log.exception("ha: %s: lease step failed", server)
            if time.monotonic() >= self._next_reap:
                self._next_reap = time.monotonic() + self.lease_s / 2
                self._reap()
            self._stop_event.wait(self.poll_s)

    def _reap(self) -> None:
        """End the sessions of frozen nodes stuck in a transaction (see lease.reap)."""
        try:
            with self.engine.begin() as conn:
                ended = lease.reap(conn, APPLICATION_PREFIX, application_name(self.node_id), self.lease_s)
        except SQLAlchemyError as exc:   # e.g. a role that may not signal the others' sessions
            log.debug("ha: reaping stuck sessions failed (%s)", type(exc).__name__)
            return
        for name in ended:
            log.warning("ha: ended a database session of %s stuck in a transaction for over %g s "
                        "(a frozen or cut-off node)", name, self.lease_s)

    def stop(self, release: bool = True) -> None:
        """Stop the thread; with release, give up every lease held (call after the writer flushed)."""
        self._stop_event.set()
        if self.is_alive():
            self.join(max(2.0, self.lease_s))
        if not release:
            return
        for server, r in self.roles.items():
            if r.role != STANDBY and r.token is not None:
                self.gate.demote(server)
                self._release(server, r, "stopping")

    def _step(self, server: str) -> None:
        r = self.roles[server]
        now = time.monotonic()
        if r.role == STANDBY:
            if now >= r.hold_off_until and self._ready(server):
                self._try_acquire(server, r)
        elif r.role == LEADER:
            if not self._ready(server):
                self._start_handover(server, r, "its AMI link is down")
            elif now - r.renewed >= self.renew_s:
                self._renew(server, r, now)
        else:   # HANDOVER
            if self._settled() >= r.barrier or now >= r.handover_deadline:
                self._release(server, r, "handover")
            elif now - r.renewed >= self.renew_s:
                self._renew(server, r, now)

    def _try_acquire(self, server: str, r: ServerRole) -> None:
        try:
            with self.engine.begin() as conn:
                token = lease.acquire(conn, server, self.node_id, self.lease_s)
        except SQLAlchemyError as exc:
            log.debug("ha: %s: lease not taken (%s)", server, type(exc).__name__)
            return
        if token is None:
            return
        with self._lock:
            r.role, r.token, r.renewed, r.since = LEADER, token, time.monotonic(), time.time()
            r.takeovers += 1
        replayed = self.gate.promote(server)
        log.info("ha: %s: this node (%s) leads now, token %d; %d buffered event(s) written",
                 server, self.node_id, token, replayed)
        if self._on_promoted is not None:
            self._on_promoted(server)

    def _renew(self, server: str, r: ServerRole, now: float) -> None:
        try:
            with self.engine.begin() as conn:
                handover = lease.renew(conn, server, self.node_id, r.token, self.lease_s)
        except SQLAlchemyError as exc:
            if now - r.renewed >= self.lease_s:
                self._lost(server, r, f"no renewal for {self.lease_s:g} s ({type(exc).__name__})")
            return
        if handover is None:
            self._lost(server, r, "the lease expired or was taken over")
            return
        r.renewed = now
        if handover and r.role == LEADER:
            self._start_handover(server, r, "a step-down was requested")

    def _start_handover(self, server: str, r: ServerRole, why: str) -> None:
        self.gate.demote(server)
        r.barrier = self._accepted()
        r.handover_deadline = time.monotonic() + self.lease_s / 2
        with self._lock:
            r.role, r.since = HANDOVER, time.time()
        log.info("ha: %s: handing over (%s); releasing once %d accepted event(s) are committed",
                 server, why, r.barrier)

    def _release(self, server: str, r: ServerRole, why: str) -> None:
        try:
            with self.engine.begin() as conn:
                lease.release(conn, server, self.node_id, r.token)
        except SQLAlchemyError as exc:   # it expires by itself within lease_s
            log.warning("ha: %s: could not release the lease (%s); it expires in %g s", server,
                        type(exc).__name__, self.lease_s)
        with self._lock:
            r.role, r.token, r.since = STANDBY, None, time.time()
        r.hold_off_until = time.monotonic() + HOLD_OFF_S
        log.info("ha: %s: lease released (%s); this node (%s) is a standby", server, why, self.node_id)

    def _lost(self, server: str, r: ServerRole, why: str) -> None:
        self.gate.demote(server)
        with self._lock:
            r.role, r.token, r.since = STANDBY, None, time.time()
        log.warning("ha: %s: leadership lost (%s); this node (%s) is a standby now", server, why, self.node_id)
