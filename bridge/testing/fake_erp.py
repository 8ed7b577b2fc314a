"""A real local PushEvent (and PushEvents) receiver for tests, the demo and the chaos suite: records what arrives.

It is a plain ThreadingHTTPServer on 127.0.0.1 (port 0 by default) with HTTP/1.1 keep-alive that
can be told to misbehave the ways an ERP does: answer 500, a SOAP Fault, 429/503 with Retry-After,
hang past the client's read timeout, reset the connection, or refuse connections (stop listening).
A PushEvents batch is recorded as one Receipt per event (its own id, its <m:event> element as
body, `batch` = the number of events in the request), answered all-or-nothing; `reject_ids`
makes a request carrying any of those ids answer a SOAP Fault (an ERP refusing one event).
"""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bridge.erp.envelope import parse_envelope_id

OK = "ok"
ERROR_500 = "500"
FAULT = "fault"
THROTTLE = "429"
UNAVAILABLE = "503"
HANG = "hang"
RESET = "reset"
BIG = "big"              # a 200 announcing 10 GiB, streamed until the client goes (BIG_SEND_BYTES at most)
TRICKLE = "trickle"      # the OK envelope, one byte every TRICKLE_INTERVAL_S: a per-read timeout never fires
MODES = (OK, ERROR_500, FAULT, THROTTLE, UNAVAILABLE, HANG, RESET, BIG, TRICKLE)
BIG_SEND_BYTES = 256 * 1024 * 1024
TRICKLE_INTERVAL_S = 0.2
_BLOCK = b" " * (1024 * 1024)   # one block for every BIG answer: the sink itself must not churn memory

RESPONSE_OK = (b'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope '
               b'xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
               b'<m:PushEventResponse xmlns:m="urn:asterisk-bridge:events"><m:return>true</m:return>'
               b'</m:PushEventResponse></soap:Body></soap:Envelope>')
RESPONSE_BATCH_OK = RESPONSE_OK.replace(b"PushEventResponse", b"PushEventsResponse")
_BATCH_EVENT = re.compile(rb"<m:event>.*?</m:event>", re.DOTALL)
RESPONSE_FAULT = (b'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope '
                  b'xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault>'
                  b'<faultcode>soap:Server</faultcode><faultstring>sink refuses the event</faultstring>'
                  b'</soap:Fault></soap:Body></soap:Envelope>')


@dataclass(frozen=True)
class Receipt:
    id: str | None        # the envelope's <id>
    body: bytes
    headers: dict[str, str]
    path: str
    received_at: float    # time.time()
    received_monotonic: float
    answered: str         # the mode that answered
    peer: tuple = ()      # client (host, port): one port across requests means keep-alive worked
    batch: int = 0        # events in the PushEvents request this event came in (0: a PushEvent)


def _event_name(body: bytes) -> str:
    match = re.search(rb"<(?:\w+:)?name>([^<]*)</", body)
    return match.group(1).decode("utf-8", "replace") if match else "?"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive, as a 1C/IIS/Apache front end would offer
    server: "_Server"

    def setup(self) -> None:
        super().setup()
        # http.server sends headers and body in two writes; without NODELAY, Nagle holds the body
        # until the client's delayed ACK (~40 ms on Linux), capping keep-alive at ~25 requests/s.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.sink._lock:
            self.server.active.add(self.connection)

    def finish(self) -> None:
        with self.server.sink._lock:
            self.server.active.discard(self.connection)
        super().finish()

    def do_POST(self) -> None:
        sink = self.server.sink
        with sink._lock:
            sink.in_flight += 1
            sink.max_in_flight = max(sink.max_in_flight, sink.in_flight)
        try:
            self._post(sink)
        finally:
            with sink._lock:
                sink.in_flight -= 1

    def _post(self, sink: "FakeErp") -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = self.rfile.read(length) if length else b""
        except OSError:
            body = b""
        if len(body) < length:   # the client died mid-request: nothing was delivered
            self.close_connection = True
            return
        mode = sink.mode
        batch = _BATCH_EVENT.findall(body) if b"PushEvents" in body[:400] else None
        parts = batch if batch is not None else [body]
        ids = [parse_envelope_id(part) for part in parts]
        if mode == OK and sink.reject_ids and any(i in sink.reject_ids for i in ids):
            mode = FAULT
        headers = {k: v for k, v in self.headers.items()}
        now, now_monotonic = time.time(), time.monotonic()
        sink._record([Receipt(i, part, headers, self.path, now, now_monotonic, mode, tuple(self.client_address),
                              len(parts) if batch is not None else 0) for i, part in zip(ids, parts)])
        if sink.delay_s:
            time.sleep(sink.delay_s)
        if mode == RESET:
            # SO_LINGER 0: close() sends RST instead of FIN, like a crashed front end.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if mode == HANG:
            sink._release.wait(sink.hang_s)
            self.close_connection = True
            return
        if mode in (BIG, TRICKLE):
            self._stream(sink, mode)
            return
        status, payload, extra = {
            OK: (200, RESPONSE_OK if batch is None else RESPONSE_BATCH_OK, {}),
            ERROR_500: (500, b"internal error", {}),
            FAULT: (500, RESPONSE_FAULT, {}),
            THROTTLE: (429, b"slow down", {"Retry-After": str(sink.retry_after_s)}),
            UNAVAILABLE: (503, b"unavailable", {"Retry-After": str(sink.retry_after_s)}),
        }[mode]
        self.send_response(status)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        """A browser (or `check`, which asks for ?wsdl as of a 1C service) gets an answer it can
        read: the PushEvent WSDL, or what this sink has received so far."""
        if self.path.split("?", 1)[-1].lower() == "wsdl" and "?" in self.path:
            from importlib.resources import files

            payload = files("bridge").joinpath("wsdl", "events.wsdl").read_bytes()
            content_type = "text/xml; charset=utf-8"
        else:
            receipts = self.server.sink.delivered()
            lines = [f"asterisk-bridge PushEvent sink (plays the ERP): {len(receipts)} event(s) received.",
                     f"The bridge POSTs SOAP envelopes to {self.server.sink.url}; GET ?wsdl for the contract.",
                     "", "Last events:"]
            lines += [f"  {time.strftime('%H:%M:%S', time.localtime(r.received_at))}  {_event_name(r.body)}"
                      for r in receipts[-20:]] or ["  (none yet)"]
            payload = ("\n".join(lines) + "\n").encode("utf-8")
            content_type = "text/plain; charset=utf-8"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _stream(self, sink: "FakeErp", mode: str) -> None:
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(10 * 1024 ** 3 if mode == BIG else len(RESPONSE_OK)))
        self.end_headers()
        try:
            if mode == BIG:
                for _ in range(BIG_SEND_BYTES // len(_BLOCK)):
                    self.wfile.write(_BLOCK)
            else:
                for i in range(len(RESPONSE_OK)):
                    if sink._release.wait(TRICKLE_INTERVAL_S):
                        return
                    self.wfile.write(RESPONSE_OK[i:i + 1])
                    self.wfile.flush()
        except OSError:
            pass          # the client gave up: what it should do

    def log_message(self, format: str, *args) -> None:  # quiet: tests read .receipts instead
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, sink: "FakeErp") -> None:
        self.sink = sink
        self.active: set[socket.socket] = set()   # open keep-alive connections, cut on stop()
        super().__init__(addr, _Handler)

    def handle_error(self, request, client_address) -> None:
        # A client killed mid-request (the crash tests do that on purpose) is not a sink error.
        import sys

        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class FakeErp:
    """Records every POST; `mode` decides the answer. Use as a context manager or start()/stop()."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, path: str = "/erp", *,
                 hang_s: float = 30.0, retry_after_s: int = 1, delay_s: float = 0.0) -> None:
        self.host, self.port, self.path = host, port, path
        self.mode = OK
        self.hang_s = hang_s
        self.retry_after_s = retry_after_s
        self.delay_s = delay_s            # answer every request this much later (a slow ERP)
        self.on_receipt = None            # optional callable(Receipt), called on the handler thread
        self.keep_receipts = True         # False: count only (long benchmarks)
        self.reject_ids: set[str] = set()  # a request carrying one of these ids gets a SOAP Fault
        self.in_flight = 0                # POSTs being answered now; max_in_flight: the most at once
        self.max_in_flight = 0
        self.count = 0
        self.receipts: list[Receipt] = []
        self._lock = threading.RLock()
        self._arrived = threading.Condition(self._lock)
        self._release = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    def start(self) -> "FakeErp":
        self._release.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]  # keep the port: refuse() then start() reuses it
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"sink-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (later connections are refused) and release hanging requests."""
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            with self._lock:
                active = list(self._server.active)
            for conn in active:  # a stopped ERP also drops its keep-alive connections
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._server = None
        if self._thread is not None:
            self._thread.join(5)

    refuse = stop

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown sink mode {mode!r}; one of {MODES}")
        if self.mode in (HANG, TRICKLE) and mode not in (HANG, TRICKLE):
            self._release.set()
        elif mode in (HANG, TRICKLE):
            self._release.clear()
        self.mode = mode

    def _record(self, receipts: list[Receipt]) -> None:
        with self._arrived:
            self.count += len(receipts)
            if self.keep_receipts:
                self.receipts.extend(receipts)
            self._arrived.notify_all()
        if self.on_receipt is not None:
            for receipt in receipts:
                self.on_receipt(receipt)

    def delivered(self) -> list[Receipt]:
        """Receipts that were answered with success."""
        with self._lock:
            return [r for r in self.receipts if r.answered == OK]

    def delivered_ids(self) -> set[str]:
        return {r.id for r in self.delivered() if r.id}

    def wait_for(self, predicate, timeout_s: float = 10.0) -> bool:
        """Wait until predicate(sink) is true (checked on every arrival)."""
        deadline = time.monotonic() + timeout_s
        with self._arrived:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._arrived.wait(min(remaining, 0.1))
        return True

    def wait_for_ids(self, ids, timeout_s: float = 10.0) -> bool:
        want = set(ids)
        return self.wait_for(lambda s: want <= {r.id for r in s.receipts if r.answered == OK}, timeout_s)

    def __enter__(self) -> "FakeErp":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv=None) -> int:
    """`python -m bridge.testing.fake_erp --port 8099`: a standalone receiver for the demo and benchmarks."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bridge.testing.fake_erp", description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--path", default="/erp")
    parser.add_argument("--mode", choices=MODES, default=OK)
    parser.add_argument("--quiet", action="store_true", help="do not print one line per event")
    args = parser.parse_args(argv)
    sink = FakeErp(args.host, args.port, args.path)
    sink.set_mode(args.mode)
    if not args.quiet:
        sink.on_receipt = lambda r: print(f"{r.answered} {r.id}", flush=True)
    sink.start()
    print(sink.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sink.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
