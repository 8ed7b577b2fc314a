"""The admin HTTP server: /metrics (Prometheus text) and /healthz (200 ok or degraded, or 503 with the reasons)."""

from __future__ import annotations

import json
import logging
from typing import Callable, Mapping, Sequence

from bridge.config_checks import parse_listen
from bridge.httpgate import GateLimits
from bridge.httpserver import HttpServer

log = logging.getLogger(__name__)

SERVER_THREADS = 4
# GET /metrics and /healthz carry no body; a monitoring agent sends a few hundred bytes of head.
LIMITS = GateLimits(max_header_bytes=16 * 1024, max_body_bytes=16 * 1024, read_timeout_s=5.0)

HealthCheck = Callable[[], Sequence[str]]  # returns the problems; empty means healthy


class HealthApp:
    """WSGI app; `check` runs on every /healthz, so it must answer within a second or two.
    `warnings` (optional) names what works but looks wrong; they never turn the status to 503.
    `degraded` (optional) names what is failing outside the bridge while it keeps accepting and
    storing events (an ERP that is down): status "degraded", still HTTP 200, so an orchestrator
    does not restart a bridge that is doing its job of holding the backlog."""

    def __init__(self, metrics, check: HealthCheck, warnings: HealthCheck | None = None,
                 degraded: HealthCheck | None = None, details: Callable[[], Mapping] | None = None) -> None:
        self.metrics = metrics
        self.check = check
        self.warnings = warnings
        self.degraded = degraded
        self.details = details   # more fields for the answer (the HA role per AMI server)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return self._reply(start_response, "405 Method Not Allowed", b"GET only\n", "text/plain")
        if path == "/metrics":
            from prometheus_client import CONTENT_TYPE_LATEST

            return self._reply(start_response, "200 OK", self.metrics.render(), CONTENT_TYPE_LATEST)
        if path == "/healthz":
            return self._health(start_response)
        return self._reply(start_response, "404 Not Found", b"try /metrics or /healthz\n", "text/plain")

    def _health(self, start_response):
        try:
            problems = list(self.check())
        except Exception as exc:  # the health check itself failed: that is unhealthy, not a crash
            log.warning("health check failed", exc_info=True)
            problems = [f"health check failed: {type(exc).__name__}"]
        degraded = list(self.degraded()) if self.degraded is not None else []
        answer = {"status": "fail" if problems else "degraded" if degraded else "ok", "problems": problems}
        if degraded:
            answer["degraded"] = degraded
        warnings = list(self.warnings()) if self.warnings is not None else []
        if warnings:
            answer["warnings"] = warnings
        if self.details is not None:
            answer.update(self.details())
        body = json.dumps(answer, ensure_ascii=False).encode() + b"\n"
        status = "503 Service Unavailable" if problems else "200 OK"
        return self._reply(start_response, status, body, "application/json")

    @staticmethod
    def _reply(start_response, status: str, body: bytes, content_type: str):
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                                ("Cache-Control", "no-store")])
        return [body]


class HealthServer(HttpServer):
    """HealthApp on [metrics] listen (loopback by default); start()/stop(), .port."""

    def __init__(self, listen: str, metrics, check: HealthCheck, warnings: HealthCheck | None = None,
                 degraded: HealthCheck | None = None, details: Callable[[], Mapping] | None = None) -> None:
        super().__init__(HealthApp(metrics, check, warnings, degraded, details), parse_listen(listen),
                         name="metrics server",
                         threads=SERVER_THREADS, limits=LIMITS)
