"""The admin HTTP server: /metrics (Prometheus text) and /healthz (200, or 503 with the reasons)."""

from __future__ import annotations

import json
import logging
import threading
from typing import Callable, Sequence

from cheroot import wsgi

from bridge.config_checks import parse_listen
from bridge.errors import BridgeError

log = logging.getLogger(__name__)

SERVER_THREADS = 4
START_TIMEOUT_S = 5.0

HealthCheck = Callable[[], Sequence[str]]  # returns the problems; empty means healthy


class HealthApp:
    """WSGI app; `check` runs on every /healthz, so it must answer within a second or two."""

    def __init__(self, metrics, check: HealthCheck) -> None:
        self.metrics = metrics
        self.check = check

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
        body = json.dumps({"status": "fail" if problems else "ok", "problems": problems},
                          ensure_ascii=False).encode() + b"\n"
        status = "503 Service Unavailable" if problems else "200 OK"
        return self._reply(start_response, status, body, "application/json")

    @staticmethod
    def _reply(start_response, status: str, body: bytes, content_type: str):
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                                ("Cache-Control", "no-store")])
        return [body]


class HealthServer:
    """cheroot serving HealthApp on [metrics] listen (loopback by default); start()/stop(), .port."""

    def __init__(self, listen: str, metrics, check: HealthCheck) -> None:
        host, port = parse_listen(listen)
        self._server = wsgi.Server((host, port), HealthApp(metrics, check), numthreads=SERVER_THREADS,
                                   server_name="asterisk-bridge")
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.bind_addr[1]

    @property
    def host(self) -> str:
        return self._server.bind_addr[0]

    def start(self) -> "HealthServer":
        try:
            self._server.prepare()
        except OSError as exc:
            raise BridgeError(f"metrics server cannot listen on {self._server.bind_addr}: {exc}") from exc
        self._thread = threading.Thread(target=self._server.serve, name="health-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.stop()
            self._thread.join(START_TIMEOUT_S)
            self._thread = None
