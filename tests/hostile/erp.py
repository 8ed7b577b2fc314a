"""HostileErp: a raw-socket HTTP server playing an ERP that misbehaves in the ways of issue #12."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

from bridge.erp.envelope import parse_envelope_id

OK_ENVELOPE = (b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
               b'<m:PushEventResponse xmlns:m="urn:asterisk-bridge:events"><m:return>true</m:return>'
               b"</m:PushEventResponse></soap:Body></soap:Envelope>")
LOGIN_PAGE = b"<!DOCTYPE html><html><body><form action=/login>Password: <input type=password></form></body></html>"
HUGE_SEND_CAP_BYTES = 256 * 1024 * 1024    # even an unfixed client stops being fed after this


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class HostileErp:
    """`mode` picks the answer; `requests` records what arrived; `acked` the event ids answered OK."""

    mode: str = "ok"
    location: str = ""                  # for redirect modes
    retry_after: str = "1"
    fault_text: str = "boom"
    tls: ssl.SSLContext | None = None
    requests: list[Request] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/erp"

    def start(self) -> "HostileErp":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()

    def __enter__(self) -> "HostileErp":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            conn.settimeout(10)
            reader = conn.makefile("rb")
            while not self._stop.is_set():
                request = _read_request(reader)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                if not self._answer(conn, request):
                    return
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _answer(self, conn: socket.socket, request: Request) -> bool:
        """Send the answer of the current mode; False: the connection is finished."""
        mode = self.mode
        if mode == "ok":
            event_id = parse_envelope_id(request.body)
            if event_id:
                with self._lock:
                    self.acked.append(event_id)
            conn.sendall(_head("200 OK", "text/xml; charset=utf-8", len(OK_ENVELOPE)) + OK_ENVELOPE)
            return True
        if mode == "huge":                       # 10 GB announced, streamed until the client goes
            conn.sendall(_head("200 OK", "text/xml", 10 * 1024 ** 3) + b"<soap:Envelope>")
            block, sent = b" " * (1024 * 1024), 0
            while sent < HUGE_SEND_CAP_BYTES and not self._stop.is_set():
                conn.sendall(block)
                sent += len(block)
            return False
        if mode == "trickle":                    # one byte every 0.3 s: no single read ever waits long
            body = OK_ENVELOPE
            conn.sendall(_head("200 OK", "text/xml", len(body)))
            for i in range(len(body)):
                if self._stop.wait(0.3):
                    return False
                conn.sendall(body[i:i + 1])
            return True
        if mode == "retry_after":
            conn.sendall(_head("503 Service Unavailable", "text/plain", 4, [("Retry-After", self.retry_after)])
                         + b"busy")
            return True
        if mode.startswith("redirect"):
            status = {"redirect301": "301 Moved Permanently", "redirect302": "302 Found",
                      "redirect307": "307 Temporary Redirect", "redirect308": "308 Permanent Redirect"}[mode]
            conn.sendall(_head(status, "text/plain", 0, [("Location", self.location)]))
            return True
        if mode == "html":
            conn.sendall(_head("200 OK", "text/html; charset=utf-8", len(LOGIN_PAGE)) + LOGIN_PAGE)
            return True
        if mode == "escape_reason":               # a reason phrase that drives a terminal
            conn.sendall(b"HTTP/1.1 503 Busy\x1b[2J\x1b]0;owned\x07\r\nContent-Length: 0\r\n\r\n")
            return True
        if mode == "fault":
            body = ('<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
                    f"<soap:Fault><faultcode>soap:Server</faultcode><faultstring>{self.fault_text}"
                    "</faultstring></soap:Fault></soap:Body></soap:Envelope>").encode()
            conn.sendall(_head("500 Internal Server Error", "text/xml", len(body)) + body)
            return True
        raise ValueError(mode)


def _head(status: str, content_type: str, length: int, extra=()) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Type: {content_type}", f"Content-Length: {length}"]
    lines += [f"{k}: {v}" for k, v in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_request(reader) -> Request | None:
    line = reader.readline(65536)
    if not line:
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while True:
        line = reader.readline(65536)
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    body = reader.read(length) if length else b""
    return Request(method, path, headers, body)


def wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())

