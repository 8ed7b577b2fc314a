"""SoapServer: the SOAP WSGI app served by cheroot's threaded HTTP server, optionally over TLS."""

from __future__ import annotations

import logging
import threading
from typing import Callable

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from bridge.errors import ConfigError

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 30.0         # a client that stops sending mid-request is dropped after this
# cheroot's connection loop wakes this often to expire idle keep-alive connections and to notice
# stop(); its default (0.5 s) made every stop() take half a second.
POLL_INTERVAL_S = 0.05
# cheroot closes idle keep-alive connections beyond 10 by default, so a 16-thread server resets
# clients that reuse their connection; an idle connection costs only a file descriptor.
KEEP_ALIVE_CONNECTIONS_PER_THREAD = 4
LISTEN_BACKLOG = 128             # cheroot's default of 5 refuses a burst of 1C clients starting at once


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` → (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"soap.listen: expected host:port, got {listen!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class SoapServer:
    """cheroot WSGI server on its own thread; `port` is the bound port (useful with port 0)."""

    def __init__(self, app: Callable, listen: str = "127.0.0.1:0", tls_cert: str | None = None,
                 tls_key: str | None = None, threads: int = 16) -> None:
        if bool(tls_cert) != bool(tls_key):
            raise ConfigError("soap: tls_cert and tls_key must be given together")
        self._server = wsgi.Server(parse_listen(listen), app, numthreads=threads,
                                   server_name="asterisk-bridge", timeout=REQUEST_TIMEOUT_S,
                                   request_queue_size=LISTEN_BACKLOG)
        self._server.expiration_interval = POLL_INTERVAL_S
        self._server.keep_alive_conn_limit = max(10, threads * KEEP_ALIVE_CONNECTIONS_PER_THREAD)
        if tls_cert:
            try:
                self._server.ssl_adapter = BuiltinSSLAdapter(tls_cert, tls_key)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"soap: cannot load TLS certificate/key: {exc}") from exc
        self.tls = bool(tls_cert)
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

    def start(self) -> "SoapServer":
        self._server.prepare()        # binds now, so .port is known when start() returns
        self._thread = threading.Thread(target=self._server.serve, name="soap-server", daemon=True)
        self._thread.start()
        log.info("SOAP service listening on %s", self.url)
        return self

    def stop(self, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> None:
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def __enter__(self) -> "SoapServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
