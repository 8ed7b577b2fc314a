"""HttpServer: a WSGI app served by cheroot's threaded HTTP server on its own thread.

The SOAP service and the /metrics + /healthz server are both this; they differ in app,
threads and TLS only.
"""

from __future__ import annotations

import threading
from typing import Callable

from cheroot import wsgi

from bridge.errors import BridgeError
from bridge.httpgate import GateLimits, RequestGate

SHUTDOWN_TIMEOUT_S = 5.0
# Idle keep-alive connections close after this; the whole request must arrive within
# GateLimits.read_timeout_s (bridge/httpgate.py), and a worker writing an answer to a client
# that does not read gives up after this.
REQUEST_TIMEOUT_S = 30.0
# cheroot's connection loop wakes this often to expire idle keep-alive connections and to notice
# stop(); its default (0.5 s) made every stop() take half a second.
POLL_INTERVAL_S = 0.05
# cheroot closes idle keep-alive connections beyond 10 by default, so a 16-thread server resets
# clients that reuse their connection; an idle connection costs only a file descriptor.
KEEP_ALIVE_CONNECTIONS_PER_THREAD = 4
LISTEN_BACKLOG = 128             # cheroot's default of 5 refuses a burst of 1C clients starting at once


class HttpServer:
    """cheroot WSGI server on its own thread; binds in start(), so `port` is known (port 0)."""

    def __init__(self, app: Callable, bind: tuple[str, int], *, name: str, threads: int,
                 ssl_adapter=None, limits: GateLimits = GateLimits()) -> None:
        self.name = name
        self.limits = limits
        self._server = wsgi.Server(bind, app, numthreads=threads, server_name="asterisk-bridge",
                                   timeout=REQUEST_TIMEOUT_S, request_queue_size=LISTEN_BACKLOG)
        self._server.expiration_interval = POLL_INTERVAL_S
        self._server.keep_alive_conn_limit = max(10, threads * KEEP_ALIVE_CONNECTIONS_PER_THREAD)
        # cheroot's own caps, behind the gate's: a chunked body is refused while it is read.
        self._server.max_request_header_size = limits.max_header_bytes
        self._server.max_request_body_size = limits.max_body_bytes
        self.gate: RequestGate | None = None
        if ssl_adapter is not None:
            self._server.ssl_adapter = ssl_adapter
        self.tls = ssl_adapter is not None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.bind_addr[1]

    @property
    def host(self) -> str:
        return self._server.bind_addr[0]

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def start(self) -> "HttpServer":
        try:
            self._server.prepare()
        except OSError as exc:
            raise BridgeError(f"{self.name} cannot listen on {self._server.bind_addr}: {exc}") from exc
        # Replace cheroot's connection manager (built by prepare()) with the gate; nothing has
        # been accepted yet.
        plain = self._server._connections
        self.gate = self._server._connections = RequestGate(self._server, self.limits)
        plain._selector.close()
        self._thread = threading.Thread(target=self._server.serve, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> None:
        if self._thread is not None:
            self._server.stop()
            self._thread.join(timeout_s)
            self._thread = None

    def __enter__(self) -> "HttpServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
