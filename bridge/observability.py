"""Prometheus metrics: counters the runtime feeds, collectors read at scrape time, SOAP middleware."""

from __future__ import annotations

import logging
import time
from typing import Callable, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

log = logging.getLogger(__name__)

# Delivery latency = AMI arrival → subscriber acknowledged; sub-second is normal, minutes mean retries.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
OUTBOX_SCRAPE_CACHE_S = 2.0  # a scrape storm must not become a COUNT(*) storm on the outbox

# `*_created` series double every counter's output and no dashboard of ours reads them.
disable_created_metrics()


class Metrics:
    """Every metric the bridge exports, on its own CollectorRegistry (tests build as many as they like)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_received = Counter("bridge_ami_events_received", "AMI events read, per server",
                                       ["server"], registry=r)
        self.events_filtered = Counter("bridge_events_filtered",
                                       "Events no subscriber wanted (raw and normalized), per server",
                                       ["server"], registry=r)
        self.events_accepted = Counter("bridge_events_accepted",
                                       "Events handed to the outbox for at least one subscriber",
                                       ["server", "kind"], registry=r)
        self.deliveries = Counter("bridge_deliveries", "Outbox rows delivered to a subscriber",
                                  ["subscriber"], registry=r)
        self.delivery_latency = Histogram("bridge_delivery_latency_seconds",
                                          "AMI arrival (or outbox insert) to the subscriber's acknowledgement",
                                          ["subscriber"], buckets=LATENCY_BUCKETS_S, registry=r)
        self.soap_requests = Counter("bridge_soap_requests", "SOAP requests served",
                                     ["operation", "result"], registry=r)

    # Hooks the parts call (all cheap and thread-safe).
    def event_received(self, server: str) -> None:
        self.events_received.labels(server).inc()

    def event_filtered(self, server: str) -> None:
        self.events_filtered.labels(server).inc()

    def event_accepted(self, server: str, kind: str) -> None:
        self.events_accepted.labels(server, kind).inc()

    def delivered(self, subscriber: str, latency_s: float | None) -> None:
        self.deliveries.labels(subscriber).inc()
        if latency_s is not None and latency_s >= 0:
            self.delivery_latency.labels(subscriber).observe(latency_s)

    def filtered_total(self) -> float:
        """Events no subscriber wanted since start, all servers."""
        return sum(sample.value for metric in self.events_filtered.collect() for sample in metric.samples
                   if sample.name.endswith("_total"))

    def soap_request(self, operation: str, result: str) -> None:
        self.soap_requests.labels(operation, result).inc()

    def watch_ami(self, clients: Sequence) -> None:
        self.registry.register(AmiLinkCollector(clients))

    def watch_outbox(self, count_status: Callable[[str], Mapping[str, int]],
                     subscribers: Sequence[str]) -> None:
        self.registry.register(OutboxCollector(count_status, subscribers))

    def watch_leadership(self, is_leader: Callable[[str], bool], servers: Sequence[str]) -> None:
        self.registry.register(LeaderCollector(is_leader, servers))

    def watch_circuits(self, states: Callable[[], Sequence]) -> None:
        """`states()` returns the dispatcher's CircuitState of every subscriber (read at scrape time)."""
        self.registry.register(CircuitCollector(states))

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class AmiLinkCollector:
    """bridge_ami_link_up and bridge_ami_reconnects_total, read from the clients at scrape time."""

    def __init__(self, clients: Sequence) -> None:
        self._clients = list(clients)

    def collect(self):
        up = GaugeMetricFamily("bridge_ami_link_up", "1 while logged in to the AMI server", labels=["server"])
        reconnects = CounterMetricFamily("bridge_ami_reconnects", "Logins after the first, per server",
                                         labels=["server"])
        failures = CounterMetricFamily("bridge_ami_connect_failures", "Failed connect/login attempts",
                                       labels=["server"])
        for client in self._clients:
            up.add_metric([client.name], 1.0 if client.connected else 0.0)
            reconnects.add_metric([client.name], client.stats.reconnects)
            failures.add_metric([client.name], client.stats.connect_failures)
        return [up, reconnects, failures]


class LeaderCollector:
    """bridge_ami_leader: 1 while this node leads the AMI server (writes its events), else 0."""

    def __init__(self, is_leader: Callable[[str], bool], servers: Sequence[str]) -> None:
        self._is_leader = is_leader
        self._servers = list(servers)

    def collect(self):
        gauge = GaugeMetricFamily("bridge_ami_leader", "1 while this node leads the AMI server (PostgreSQL HA)",
                                  labels=["server"])
        for server in self._servers:
            gauge.add_metric([server], 1.0 if self._is_leader(server) else 0.0)
        return [gauge]


class OutboxCollector:
    """bridge_outbox_pending / bridge_outbox_dead per subscriber, from the database (cached briefly)."""

    def __init__(self, count_status: Callable[[str], Mapping[str, int]], subscribers: Sequence[str],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._count_status = count_status
        self._subscribers = list(subscribers)
        self._clock = clock
        self._cached: tuple[float, dict[str, Mapping[str, int]]] | None = None

    def _counts(self) -> dict[str, Mapping[str, int]] | None:
        now = self._clock()
        if self._cached and now - self._cached[0] < OUTBOX_SCRAPE_CACHE_S:
            return self._cached[1]
        try:
            counts = {status: self._count_status(status) for status in ("pending", "dead")}
        except Exception:  # a scrape must answer even when the database does not; /healthz says why
            log.warning("outbox metrics: database query failed", exc_info=True)
            return None
        self._cached = (now, counts)
        return counts

    def collect(self):
        counts = self._counts()
        if counts is None:
            return []
        families = []
        for status in ("pending", "dead"):
            family = GaugeMetricFamily(f"bridge_outbox_{status}", f"Outbox rows {status}, per subscriber",
                                       labels=["subscriber"])
            names = sorted(set(self._subscribers) | set(counts[status]))
            for name in names:
                family.add_metric([name], counts[status].get(name, 0))
            families.append(family)
        return families


class CircuitCollector:
    """bridge_subscriber_circuit_open: 1 while the subscriber's ERP is judged down (dispatcher circuit)."""

    def __init__(self, states: Callable[[], Sequence]) -> None:
        self._states = states

    def collect(self):
        family = GaugeMetricFamily("bridge_subscriber_circuit_open",
                                   "1 while deliveries to the subscriber wait behind an open circuit "
                                   "(its ERP failed at transport level; one probe at a time)",
                                   labels=["subscriber"])
        for state in self._states():
            family.add_metric([state.subscriber], 1.0 if state.state == "open" else 0.0)
        return [family]


# The operations bridge.soap.service publishes (tests/test_observability.py checks the list). A
# label value is one of these, "wsdl", "unknown" (no SOAPAction) or "other": the client chooses
# SOAPAction, and 40,000 refused requests must not make 40,000 series.
SOAP_OPERATIONS = frozenset({"Originate", "ClickToCall", "GetOriginateStatus", "GetExtensionState",
                             "GetActiveCalls", "Hangup", "Redirect", "Ping"})


def soap_operation(environ: Mapping) -> str:
    """The operation name from SOAPAction (1.1: "tns#Svc:Op") or the action= of the 1.2 Content-Type."""
    if environ.get("REQUEST_METHOD") == "GET":
        return "wsdl"
    action = environ.get("HTTP_SOAPACTION", "")
    if not action:
        for part in environ.get("CONTENT_TYPE", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key.lower() == "action":
                action = value
    action = action.strip().strip('"')
    name = action.rsplit(":", 1)[-1].rsplit("#", 1)[-1].rsplit("/", 1)[-1]
    if not name:
        return "unknown"
    return name if name in SOAP_OPERATIONS else "other"


class SoapMetricsMiddleware:
    """Counts every SOAP request by operation and result (ok, fault, rejected) around any WSGI app."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    def __call__(self, environ, start_response):
        operation = soap_operation(environ)
        status_holder: list[int] = []

        def recording_start_response(status, headers, exc_info=None):
            status_holder.append(int(status.split(" ", 1)[0]))
            return start_response(status, headers, exc_info)

        result = self.app(environ, recording_start_response)
        code = status_holder[0] if status_holder else 500
        outcome = "ok" if code < 400 else ("fault" if code == 500 else "rejected")
        self.metrics.soap_request(operation, outcome)
        return result
