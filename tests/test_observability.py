"""bridge/observability.py and bridge/health.py: metric families, SOAP middleware, /metrics and /healthz."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from bridge.health import HealthServer
from bridge.observability import Metrics, SoapMetricsMiddleware, soap_operation


@dataclass
class FakeStats:
    reconnects: int = 0
    connect_failures: int = 0


@dataclass
class LinkView:
    """Stands in for an AmiClient's read-only state (name/connected/stats), not its sockets."""

    name: str
    connected: bool
    stats: FakeStats = field(default_factory=FakeStats)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_metrics_expose_counters_links_and_outbox_gauges_when_scraped():
    metrics = Metrics()
    metrics.event_received("pbx1")
    metrics.event_received("pbx1")
    metrics.event_filtered("pbx1")
    metrics.event_accepted("pbx1", "raw")
    metrics.delivered("erp", 0.03)
    metrics.soap_request("ClickToCall", "ok")
    metrics.watch_ami([LinkView("pbx1", True, FakeStats(reconnects=3)), LinkView("pbx2", False)])
    metrics.watch_outbox(lambda status: {"pending": {"erp": 7}, "dead": {"crm": 1}}[status], ["erp", "crm"])
    text = metrics.render().decode()
    for line in ['bridge_ami_events_received_total{server="pbx1"} 2.0',
                 'bridge_events_filtered_total{server="pbx1"} 1.0',
                 'bridge_events_accepted_total{kind="raw",server="pbx1"} 1.0',
                 'bridge_deliveries_total{subscriber="erp"} 1.0',
                 'bridge_delivery_latency_seconds_bucket{le="0.05",subscriber="erp"} 1.0',
                 'bridge_soap_requests_total{operation="ClickToCall",result="ok"} 1.0',
                 'bridge_ami_link_up{server="pbx1"} 1.0', 'bridge_ami_link_up{server="pbx2"} 0.0',
                 'bridge_ami_reconnects_total{server="pbx1"} 3.0',
                 'bridge_outbox_pending{subscriber="erp"} 7.0', 'bridge_outbox_pending{subscriber="crm"} 0.0',
                 'bridge_outbox_dead{subscriber="crm"} 1.0']:
        assert line in text, line


def test_outbox_gauges_are_skipped_not_fatal_when_database_fails():
    metrics = Metrics()

    def broken(status):
        raise OSError("database is down")

    metrics.watch_outbox(broken, ["erp"])
    assert "bridge_outbox_pending" not in metrics.render().decode()


def test_soap_operation_is_read_from_soapaction_or_content_type():
    action = '"urn:asterisk-bridge#Bridge:Originate"'
    assert soap_operation({"REQUEST_METHOD": "POST", "HTTP_SOAPACTION": action}) == "Originate"
    assert soap_operation({"REQUEST_METHOD": "POST", "CONTENT_TYPE":
                           'application/soap+xml; charset=utf-8; action="urn:asterisk-bridge#Bridge:Ping"'}) == "Ping"
    assert soap_operation({"REQUEST_METHOD": "POST", "HTTP_SOAPACTION": '"<script>"'}) == "other"
    assert soap_operation({"REQUEST_METHOD": "POST", "HTTP_SOAPACTION": '"urn:x#Bridge:Nope123"'}) == "other"
    assert soap_operation({"REQUEST_METHOD": "POST"}) == "unknown"


def test_soap_operation_labels_are_exactly_the_published_operations():
    from bridge.observability import SOAP_OPERATIONS
    from bridge.soap.service import BridgeService

    assert SOAP_OPERATIONS == set(BridgeService.public_methods)
    assert soap_operation({"REQUEST_METHOD": "GET"}) == "wsdl"


def test_soap_middleware_counts_results_by_status():
    metrics = Metrics()

    def app(environ, start_response):
        start_response(environ["status"], [])
        return [b""]

    wrapped = SoapMetricsMiddleware(app, metrics)
    for status in ("200 OK", "500 Internal Server Error", "401 Unauthorized"):
        wrapped({"REQUEST_METHOD": "POST", "HTTP_SOAPACTION": "tns#Bridge:Ping", "status": status},
                lambda *a: None)
    text = metrics.render().decode()
    for result in ("ok", "fault", "rejected"):
        assert f'bridge_soap_requests_total{{operation="Ping",result="{result}"}} 1.0' in text


def test_health_server_serves_metrics_and_health_when_started():
    metrics = Metrics()
    metrics.event_received("pbx1")
    problems: list[str] = []
    server = HealthServer("127.0.0.1:0", metrics, lambda: problems).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        status, body = get(base + "/healthz")
        assert status == 200 and json.loads(body) == {"status": "ok", "problems": []}
        problems.append("ami pbx1: not logged in (connection refused)")
        status, body = get(base + "/healthz")
        assert status == 503 and json.loads(body)["problems"] == ["ami pbx1: not logged in (connection refused)"]
        status, body = get(base + "/metrics")
        assert status == 200 and b'bridge_ami_events_received_total{server="pbx1"} 1.0' in body
        assert get(base + "/nope")[0] == 404
    finally:
        server.stop()


def test_health_is_503_when_the_check_itself_raises():
    def broken():
        raise RuntimeError("boom")

    server = HealthServer("127.0.0.1:0", Metrics(), broken).start()
    try:
        status, body = get(f"http://127.0.0.1:{server.port}/healthz")
        assert status == 503 and json.loads(body)["problems"] == ["health check failed: RuntimeError"]
    finally:
        server.stop()
