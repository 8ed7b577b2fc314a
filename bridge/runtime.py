"""Wires every part into one process (AMI links, pipeline, outbox, dispatcher, SOAP, metrics); start/stop."""

from __future__ import annotations

import logging
import signal
import threading
import time

from bridge.config import Config
from bridge.observability import Metrics, SoapMetricsMiddleware

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 15.0          # on shutdown, how long deliveries of committed rows may still run
DRAIN_POLL_INTERVAL_S = 0.05
AMI_STOP_TIMEOUT_S = 5.0
DB_CONNECT_TIMEOUT_S = 5        # PostgreSQL (libpq connect_timeout takes whole seconds)
EXPIRE_INTERVAL_S = 10.0        # how often ended calls leave the call model (CallsConfig.ended_grace_s)
LINK_GRACE_S = 10.0             # an AMI link not up this long after start gets a LinkDown for the ERP
QUIET_AFTER_FILTERED = 200      # filtered events after which a subscriber with no row is reported


class _Housekeeper(threading.Thread):
    """Drops ended calls from the call model every EXPIRE_INTERVAL_S."""

    def __init__(self, tracker) -> None:
        super().__init__(name="housekeeper", daemon=True)
        self.tracker = tracker
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(EXPIRE_INTERVAL_S):
            try:
                self.tracker.expire()
            except Exception:  # the top of a thread: log and keep going
                log.exception("expiring ended calls failed")

    def stop(self) -> None:
        self._stop_event.set()
        self.join(1.0)


class Runtime:
    """One bridge process. start() brings the parts up in dependency order, stop() takes them down
    so that no accepted event is lost: SOAP first, then AMI, then flush, then drain deliveries."""

    def __init__(self, config: Config, *, metrics: Metrics | None = None, auto_upgrade: bool = False,
                 drain_timeout_s: float = DRAIN_TIMEOUT_S, link_grace_s: float = LINK_GRACE_S) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.auto_upgrade = auto_upgrade
        self.drain_timeout_s = drain_timeout_s
        self.link_grace_s = link_grace_s
        self._link_check: threading.Timer | None = None
        self.engine = None
        self.clients: list = []
        self._running_clients: list = []
        self.tracker = self.router = self.pipeline = None
        self.writer = self.dispatcher = None
        # High availability (bridge.ha): on whenever the outbox is PostgreSQL; SQLite gets the
        # single-process lock instead.
        self.ha = self.gate = self.ha_engine = self._solo = self._readiness = None
        self.soap_server = self.health_server = None
        self._housekeeper: _Housekeeper | None = None
        self._started = False
        self._stop_requested = threading.Event()
        self._routed: set[str] = set()   # subscribers that got at least one row since start

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> "Runtime":
        try:
            self._start_database()
            self._start_pipeline()
            self._start_dispatcher()
            self._start_soap()
            self._start_health()
            for client in self.clients:  # last: events flow into a pipeline that is ready
                client.start()
                self._running_clients.append(client)
            if self.ha is not None:
                self.ha.start()
            self._link_check = threading.Timer(self.link_grace_s, self.pipeline.check_unreachable)
            self._link_check.daemon = True
            self._link_check.start()
        except BaseException:
            self.stop()
            raise
        self._started = True
        log.info("bridge started: %d AMI server(s), %d subscriber(s)%s%s", len(self.clients),
                 len(self.config.subscribers),
                 f", SOAP on port {self.soap_server.port}" if self.soap_server else "",
                 f", metrics on port {self.health_server.port}" if self.health_server else "")
        return self

    def stop(self) -> None:
        """Idempotent; each step runs even if an earlier one failed."""
        steps = [("SOAP server", self._stop_soap), ("AMI links", self._stop_ami),
                 ("housekeeper", self._stop_housekeeper), ("outbox writer", self._stop_writer),
                 ("leadership", self._stop_ha),
                 ("deliveries", self._stop_dispatcher), ("metrics server", self._stop_health),
                 ("database", self._stop_database)]
        for what, step in steps:
            try:
                step()
            except Exception:  # keep stopping the rest; the process is going down anyway
                log.exception("stopping the %s failed", what)
        if self._started:
            log.info("bridge stopped")
        self._started = False

    def request_stop(self, *_args) -> None:
        self._stop_requested.set()

    def run_until_signal(self) -> int:
        """start(), wait for SIGTERM/SIGINT, stop(); 0 on a clean stop."""
        previous = {sig: signal.signal(sig, self.request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            while not self._stop_requested.wait(0.5):
                pass
            log.info("stop requested: finishing accepted work")
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    # --- parts --------------------------------------------------------------------------------

    def _start_database(self) -> None:
        from bridge.outbox.db import check_schema, make_engine, single_process, upgrade

        url = self.config.database.url
        self.engine = make_engine(url, connect_timeout_s=DB_CONNECT_TIMEOUT_S)
        if single_process(self.engine):
            self._lock_sqlite(self.engine.url.database)   # before anything writes to it
        if self.auto_upgrade:
            upgrade(url)
        check_schema(self.engine)
        if not single_process(self.engine):
            from bridge.ha import node_id, session_options

            # Every session of a node (the fenced writer and the lease thread on their own engine,
            # the dispatcher and the probes on this one) is named and ends a transaction its
            # process froze in after one lease: a frozen node's open insert, claim or settle of an
            # overlap row would make the new leader's insert of that row wait (bridge.ha.lease.reap).
            options = session_options(self.config.ha, node_id(self.config.ha))
            self.engine.dispose()
            self.engine = make_engine(url, connect_timeout_s=DB_CONNECT_TIMEOUT_S, connect_args=options)
            self.ha_engine = make_engine(url, connect_timeout_s=DB_CONNECT_TIMEOUT_S, pool_size=2,
                                         connect_args=options)

    def _lock_sqlite(self, path: str | None) -> None:
        from bridge.ha import SoloLock

        if path and path != ":memory:" and not path.startswith("file:"):
            self._solo = SoloLock(path).acquire()

    def _start_pipeline(self) -> None:
        from bridge.ari.transports import client_from_config
        from bridge.calls import CALL_EVENT_NAMES, CallTracker
        from bridge.erp.envelope import build_envelope
        from bridge.events import Pipeline, Router
        from bridge.outbox.ingest import OutboxWriter

        db = self.config.database
        ha_kw = self._prepare_ha()
        # The outbox stores whatever the ERP client will send: the PushEvent envelope, built once.
        self.writer = OutboxWriter.from_config(self.ha_engine or self.engine, db, envelope_builder=build_envelope,
                                               on_commit=self._on_commit, **ha_kw)
        self.writer.start()
        self.tracker = CallTracker(self.config.calls)
        self.router = Router(self.config.subscribers, needed_events=CALL_EVENT_NAMES)
        sink = self.writer
        if self.gate is not None:
            self.gate.sink = self.writer   # a standby's events wait in the gate
            sink = self.gate
        # The pipeline counts received/filtered/accepted events on self.metrics.
        self.pipeline = Pipeline(self.tracker, self.router, sink, metrics=self.metrics)
        for ami in self.config.ami:
            client = client_from_config(ami, filters=self.router.ami_filters())
            self.pipeline.attach(client)  # listener + its CoreShowChannels resync after each login
            if self.ha is not None:
                client.add_listener(self._readiness)   # after the pipeline: ready = resynced
            self.clients.append(client)
        if self.ha is not None:
            self.metrics.watch_leadership(self.ha.is_leader, [a.name for a in self.config.ami])
        self.metrics.watch_ami(self.clients)
        self._housekeeper = _Housekeeper(self.tracker)
        self._housekeeper.start()

    def _prepare_ha(self) -> dict:
        """The gate and the lease thread when the outbox is PostgreSQL; the writer's HA hooks."""
        if self.ha_engine is None:
            return {}
        from bridge.ha import Coordinator, StandbyGate, node_id
        from bridge.ha.coordinator import Readiness

        cfg = self.config.ha
        self.gate = StandbyGate(None, cfg.standby_buffer_s)   # its sink is the writer, set next
        self._readiness = Readiness()
        self.ha = Coordinator(self.ha_engine, [a.name for a in self.config.ami], node_id(cfg), self.gate,
                              lease_s=cfg.lease_s, renew_s=cfg.renew_s, ready=self._readiness.ready,
                              settled=lambda: self.writer.settled, accepted=lambda: self.writer.stats.accepted,
                              on_promoted=lambda server: self.pipeline.link_taken_over(server))
        log.info("ha: PostgreSQL outbox: this node is %s; it leads an AMI server only while it holds "
                 "its lease (%g s)", self.ha.node_id, cfg.lease_s)
        return {"commit_guard": self.ha.guard, "on_refused": self.gate.refused}

    def _start_dispatcher(self) -> None:
        from bridge.erp.transport import ErpTransport
        from bridge.outbox.dispatcher import Dispatcher

        self.dispatcher = Dispatcher(self.engine, self.config.subscribers, transport_factory=ErpTransport,
                                     on_delivered=self._on_delivered)
        self.dispatcher.start()
        self.metrics.watch_outbox(self.count_status, [s.name for s in self.config.subscribers])
        self.metrics.watch_circuits(self.circuit_states)

    def _on_commit(self, events, rows: int, subscribers: set[str]) -> None:
        self._routed.update(subscribers)
        if self.dispatcher is not None:
            # Deliver at once instead of at the next poll, waking only the subscribers that got
            # rows: with 20 subscribers, waking all on every 5 ms commit cost 8x the p99 latency.
            self.dispatcher.notify(subscribers)

    def _on_delivered(self, row, latency_s: float) -> None:
        self.metrics.delivered(row.subscriber, latency_s)

    def _start_soap(self) -> None:
        if self.config.soap is None:
            return
        from bridge.calls.extstate import ExtensionStateCache
        from bridge.calls.originate import OriginateTracker
        from bridge.soap.app import build_app
        from bridge.soap.backend import BridgeBackend
        from bridge.soap.server import SoapServer, gate_limits

        soap = self.config.soap
        # The AMI listeners the SOAP operations read (Originate outcomes, extension states) are
        # attached here, before the clients start, and handed to the service.
        originates, extension_states = OriginateTracker(), ExtensionStateCache()
        for client in self.clients:
            client.add_listener(originates)
            client.add_listener(extension_states)
        backend = BridgeBackend({c.name: c for c in self.clients}, self.tracker, soap_cfg=soap,
                                originate_tracker=originates, extension_states=extension_states,
                                pending_count=self.pending_total, attach=False)
        app = SoapMetricsMiddleware(build_app(backend, soap), self.metrics)
        self.soap_server = SoapServer(app, soap.listen, soap.tls_cert, soap.tls_key, soap.threads,
                                      limits=gate_limits(soap))
        self.soap_server.start()

    def _start_health(self) -> None:
        if self.config.metrics is None:
            return
        from bridge.health import HealthServer

        self.health_server = HealthServer(self.config.metrics.listen, self.metrics, self.health_problems,
                                          self.health_warnings, self.health_degraded,
                                          details=self.health_details)
        self.health_server.start()

    def _stop_soap(self) -> None:
        if self.soap_server is not None:
            self.soap_server.stop()
            self.soap_server = None

    def _stop_ami(self) -> None:
        if self._link_check is not None:
            self._link_check.cancel()
        if self.pipeline is not None:
            self.pipeline.stopping()   # the ERP's LinkDown says "bridge stopped", not a PBX fault
        running, self._running_clients = self._running_clients, []
        for client in running:
            client.stop(AMI_STOP_TIMEOUT_S)

    def _stop_housekeeper(self) -> None:
        if self._housekeeper is not None:
            self._housekeeper.stop()
            self._housekeeper = None

    def _stop_writer(self) -> None:
        if self.writer is not None:
            self.writer.stop(flush=True)  # every queued event is committed: accepted
            self.writer = None

    def _stop_ha(self) -> None:
        if self.ha is not None:
            self.ha.stop(release=True)   # after the writer's last commit: a standby takes over now
            self.ha = None

    def _stop_dispatcher(self) -> None:
        if self.dispatcher is None:
            return
        deadline = time.monotonic() + self.drain_timeout_s
        while time.monotonic() < deadline and self._due_pending() > 0:
            time.sleep(DRAIN_POLL_INTERVAL_S)
        left = self._due_pending()
        if left:
            log.warning("stopping with %d outbox row(s) pending; they are delivered after restart", left)
        self.dispatcher.stop(max(0.0, deadline - time.monotonic()) or 1.0)
        self.dispatcher = None

    def _stop_health(self) -> None:
        if self.health_server is not None:
            self.health_server.stop()
            self.health_server = None

    def _stop_database(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None
        if self.ha_engine is not None:
            self.ha_engine.dispose()
            self.ha_engine = None
        if self._solo is not None:
            self._solo.release()
            self._solo = None

    # --- queries the servers use ------------------------------------------------------------

    def count_status(self, status: str) -> dict[str, int]:
        from bridge.outbox import queries
        from bridge.outbox.db import reader

        # Read-only: on SQLite a metrics or health read must not take the writer's lock.
        with reader(self.engine).connect() as conn:
            return queries.count_status(conn, status)

    def pending_total(self) -> int:
        return sum(self.count_status("pending").values())

    def _due_pending(self) -> int:
        try:
            return self.pending_total()
        except Exception:  # the database went away during shutdown: nothing more to drain
            log.exception("cannot count pending rows")
            return 0

    def health_warnings(self) -> list[str]:
        """A subscriber that has matched nothing while plenty was filtered: its filters are
        probably wrong (the case `config check` cannot prove)."""
        filtered = self.metrics.filtered_total()
        if filtered < QUIET_AFTER_FILTERED or self.router is None:
            return []
        return [f"subscriber {s.name}: no event matched its filters since start, while {filtered:.0f} "
                "events were filtered (check mode, events, filter, headers)"
                for s in self.config.subscribers
                if s.name not in self._routed and self.router.is_enabled(s.name)]

    def health_details(self) -> dict:
        """Extra /healthz fields: the role of this node per AMI server (PostgreSQL outbox)."""
        ha = self.ha
        return {"ha": {"node": ha.node_id, "servers": ha.snapshot()}} if ha is not None else {}

    def circuit_states(self) -> list:
        dispatcher = self.dispatcher
        return dispatcher.circuit_states() if dispatcher is not None else []

    def health_degraded(self) -> list[str]:
        """Subscribers whose ERP is down: events are accepted and kept, deliveries wait for it."""
        return [f"subscriber {c.subscriber}: ERP unreachable, circuit open since "
                f"{c.opened_at:%Y-%m-%dT%H:%M:%SZ} ({c.probes} probe(s) since): {c.last_error}"
                for c in self.circuit_states() if c.state == "open"]

    def health_problems(self) -> list[str]:
        problems = [f"ami {c.name}: not logged in ({c.stats.last_error or 'connecting'})"
                    for c in self.clients if not c.connected]
        try:
            self.count_status("dead")
        except Exception as exc:  # any driver error means "the database does not answer"
            problems.append(f"database: not answering ({type(exc).__name__})")
        return problems
