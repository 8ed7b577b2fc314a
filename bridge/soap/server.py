"""SoapServer: the SOAP WSGI app served by cheroot's threaded HTTP server, optionally over TLS."""

from __future__ import annotations

import logging
from typing import Callable

from cheroot.ssl.builtin import BuiltinSSLAdapter

from bridge.errors import ConfigError
from bridge.httpgate import GateLimits
from bridge.httpserver import HttpServer

log = logging.getLogger(__name__)


def gate_limits(cfg) -> GateLimits:
    """The request limits [soap] sets; the allow-list is applied at accept, before any byte."""
    from bridge.soap.auth import NetworkAllowList

    allow = NetworkAllowList(cfg.allow)
    return GateLimits(max_header_bytes=cfg.max_header_bytes, max_body_bytes=cfg.max_body_bytes,
                      read_timeout_s=cfg.request_timeout_s, allows=allow.allows if allow.networks else None)


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` → (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"soap.listen: expected host:port, got {listen!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class SoapServer(HttpServer):
    """The SOAP service's HTTP server, optionally over TLS; `url` is where it answers."""

    def __init__(self, app: Callable, listen: str = "127.0.0.1:0", tls_cert: str | None = None,
                 tls_key: str | None = None, threads: int = 16, limits: GateLimits = GateLimits()) -> None:
        if bool(tls_cert) != bool(tls_key):
            raise ConfigError("soap: tls_cert and tls_key must be given together")
        adapter = None
        if tls_cert:
            try:
                adapter = BuiltinSSLAdapter(tls_cert, tls_key)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"soap: cannot load TLS certificate/key: {exc}") from exc
        super().__init__(app, parse_listen(listen), name="soap-server", threads=threads, ssl_adapter=adapter,
                         limits=limits)

    def start(self) -> "SoapServer":
        super().start()
        log.info("SOAP service listening on %s", self.url)
        return self
