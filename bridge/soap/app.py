"""The SOAP WSGI application: access guard, paths, WSDL, body limit and envelope checks around spyne."""

from __future__ import annotations

import logging
import threading
from typing import Callable

from spyne import Application
from spyne.protocol.soap import Soap11, Soap12
from spyne.error import ValidationError
from spyne.model.fault import Fault
from spyne.server.wsgi import WsgiApplication

from bridge.config import SoapConfig
from bridge.soap import envelope as env
from bridge.soap.auth import AccessGuard, BasicAuthenticator, NetworkAllowList
from bridge.soap.faults import INVALID_ARGUMENT, fault_envelope
from bridge import ns
from bridge.soap.service import SERVICE_NAME, BridgeService
from bridge.soap.wsdl import build_wsdl

log = logging.getLogger(__name__)
# spyne logs every Fault with a traceback; `faults.translated` already logs each failure once
# (expected ones without a traceback), so spyne's copies are noise in the service log.
logging.getLogger("spyne.application.client").setLevel(logging.CRITICAL)
logging.getLogger("spyne.application").setLevel(logging.CRITICAL)
logging.getLogger("spyne.server._base").setLevel(logging.CRITICAL)   # request decoding faults


class _DropClientFaults(logging.Filter):
    """spyne.server.wsgi logs every request fault at ERROR; a caller's mistake is not our error."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg
        return not (isinstance(msg, Fault) and str(msg.faultcode).startswith("Client"))


logging.getLogger("spyne.server.wsgi").addFilter(_DropClientFaults())

ENVELOPE_KEY = "bridge.soap.envelope"
WSDL_CACHE_MAX = 16              # distinct Host headers we remember a rendered WSDL for
CONTENT_TYPE_11 = "text/xml; charset=utf-8"
CONTENT_TYPE_12 = "application/soap+xml; charset=utf-8"


class _Preparsed:
    """Use the envelope the HTTP layer already parsed and checked, instead of parsing it again."""

    def create_in_document(self, ctx, charset=None):
        envelope = ctx.transport.req_env.get(ENVELOPE_KEY)
        if envelope is None:
            return super().create_in_document(ctx, charset)  # type: ignore[misc]
        ctx.in_document = (envelope.root, {})

    def deserialize(self, ctx, message):
        # spyne reports a wrong type as Client.ValidationError; 1C code branches on one code.
        try:
            return super().deserialize(ctx, message)  # type: ignore[misc]
        except ValidationError as exc:
            log.info("SOAP request refused: %s", exc.faultstring)
            raise Fault(faultcode=INVALID_ARGUMENT,
                        faultstring=f"a value has the wrong type: {exc.faultstring}") from exc


class PreparsedSoap11(_Preparsed, Soap11):
    pass


class PreparsedSoap12(_Preparsed, Soap12):
    pass


def spyne_app(backend: object, soap12: bool) -> WsgiApplication:
    protocol = PreparsedSoap12 if soap12 else PreparsedSoap11
    application = Application([BridgeService], tns=ns.BRIDGE, name=SERVICE_NAME,
                              in_protocol=protocol(), out_protocol=protocol())
    application.bridge_backend = backend       # read by the operations through ctx.app
    return WsgiApplication(application)


def _respond(start_response: Callable, status: str, body: bytes, content_type: str,
             extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))] + (extra or []))
    return [body]


class SoapRouter:
    """SOAP 1.1 at `path`, SOAP 1.2 at `path`12, WSDL at `?wsdl`; anything else is 404/405."""

    def __init__(self, backend: object, soap_cfg: SoapConfig) -> None:
        self.cfg = soap_cfg
        self.paths = {soap_cfg.path: False, soap_cfg.path + "12": True}
        self.apps = {False: spyne_app(backend, False), True: spyne_app(backend, True)}
        self._wsdl: dict[tuple[str, bool], bytes] = {}
        self._lock = threading.Lock()

    def __call__(self, environ: dict, start_response: Callable):
        path = environ.get("PATH_INFO") or "/"
        soap12 = self.paths.get(path.rstrip("/") or "/")
        if soap12 is None:
            return _respond(start_response, "404 Not Found", b"Not Found\n", "text/plain; charset=utf-8")
        method = environ.get("REQUEST_METHOD", "GET")
        if method in ("GET", "HEAD"):
            if (environ.get("QUERY_STRING") or "").split("=")[0].lower() == "wsdl":
                return _respond(start_response, "200 OK", self.wsdl(environ, soap12), "text/xml; charset=utf-8")
            return _respond(start_response, "405 Method Not Allowed",
                            b"POST a SOAP envelope, or GET ?wsdl for the WSDL\n",
                            "text/plain; charset=utf-8", [("Allow", "GET, POST")])
        if method != "POST":
            return _respond(start_response, "405 Method Not Allowed", b"Method Not Allowed\n",
                            "text/plain; charset=utf-8", [("Allow", "GET, POST")])
        return self._post(environ, start_response, soap12)

    def _post(self, environ: dict, start_response: Callable, path_soap12: bool):
        try:
            body = env.read_body(environ, self.cfg.max_body_bytes)
            envelope = env.parse(body, environ.get("CONTENT_TYPE"))
        except env.RequestTooLarge:
            return _respond(start_response, "413 Payload Too Large",
                            f"the request body is larger than {self.cfg.max_body_bytes} bytes\n".encode(),
                            "text/plain; charset=utf-8", [("Connection", "close")])
        except env.BadEnvelope as exc:
            log.info("SOAP request refused: %s", exc.message)
            return _respond(start_response, "400 Bad Request", fault_envelope(path_soap12, exc.code, exc.message),
                            CONTENT_TYPE_12 if path_soap12 else CONTENT_TYPE_11)
        environ[ENVELOPE_KEY] = envelope
        # spyne wants a SOAP content type for its version; the envelope namespace decided it.
        environ["CONTENT_TYPE"] = CONTENT_TYPE_12 if envelope.soap12 else CONTENT_TYPE_11
        environ["CONTENT_LENGTH"] = "0"
        return self.apps[envelope.soap12](environ, start_response)

    def wsdl(self, environ: dict, soap12: bool) -> bytes:
        base = _base_url(environ)
        key = (base, soap12)
        with self._lock:
            cached = self._wsdl.get(key)
        if cached is None:
            cached = build_wsdl(base + self.cfg.path, base + self.cfg.path + "12", "1.2" if soap12 else "1.1")
            with self._lock:
                if len(self._wsdl) >= WSDL_CACHE_MAX:
                    self._wsdl.clear()
                self._wsdl[key] = cached
        return cached


def _base_url(environ: dict) -> str:
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST")
    if not host:
        host = f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT', '80')}"
    return f"{scheme}://{host}"


def build_app(backend: object, soap_cfg: SoapConfig) -> Callable:
    """The WSGI app: CIDR allow-list (403) → Basic auth (401) → SOAP router (413, 400, spyne)."""
    return AccessGuard(SoapRouter(backend, soap_cfg), NetworkAllowList(soap_cfg.allow),
                       BasicAuthenticator(soap_cfg.users))
