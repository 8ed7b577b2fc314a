"""The one HTTP seam towards subscribers (the ERP): the only module that imports `requests`."""

from __future__ import annotations

import email.utils
import logging
import os
import re
import socket
import threading
import time
import weakref
from typing import Mapping

import requests
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import HTTPError as Urllib3Error

from bridge import __version__
from bridge.errors import DeliveryRejected, DeliveryRetryable
from bridge.erp import signing
from bridge.erp.envelope import (BATCH_SOAP_ACTION, CONTENT_TYPE, SOAP_ACTION, EnvelopeFormatError, batch_id,
                                 build_batch, redact)
from bridge.erp.fault import FAULT_SNIFF_BYTES, find_fault

log = logging.getLogger(__name__)

POOL_CONNECTIONS = 4
POOL_MAXSIZE = 16
# An ERP answer to PushEvent is a few hundred bytes; anything past this is not read (the
# connection is dropped) and the delivery counts as failed: a 10 GB body must not reach memory.
MAX_RESPONSE_BYTES = 1024 * 1024
READ_CHUNK_BYTES = 64 * 1024
REAPER_INTERVAL_S = 0.1        # how late past its deadline a stalled answer can be cut
# Retry-After beyond this is not believed (the policy clamps further, to retry_cap).
MAX_RETRY_AFTER_S = 7 * 24 * 3600.0
_ENVELOPE = re.compile(rb"<(?:[\w.-]+:)?Envelope[\s>/]")
REDACTED_HEADERS = {"authorization", "proxy-authorization", "webhook-signature"}


class ErpTransport:
    """POSTs PushEvent (and PushEvents) envelopes to one subscriber's URL over a keep-alive Session."""

    def __init__(self, cfg, session: requests.Session | None = None, clock=time.time) -> None:
        self.cfg = cfg
        self.url = cfg.url
        self.timeout = (cfg.connect_timeout_s, cfg.read_timeout_s)
        self._clock = clock
        self.session = session or requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=POOL_CONNECTIONS, pool_maxsize=POOL_MAXSIZE,
                                                max_retries=0)
        # The pools tell this transport which connection a request runs on, so the reaper can
        # cut it at the deadline (urllib3's timeouts are per socket read: a trickle defeats them).
        adapter.poolmanager.pool_classes_by_scheme = {"http": _tracking(HTTPConnectionPool, self),
                                                      "https": _tracking(HTTPSConnectionPool, self)}
        self._guard = threading.Lock()
        self._deadline: float | None = None
        self._active = None
        self._cut = False
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        # What requests would read from the environment on *every* POST (proxies, CA bundle,
        # ~/.netrc: stat() calls that were a tenth of a busy bridge's profile) is read once here.
        # Environment proxies (HTTP_PROXY) apply only when no proxy is configured explicitly;
        # credentials come from the config only, never from ~/.netrc.
        self.session.trust_env = False
        if cfg.proxy:
            self.session.proxies = {"http": cfg.proxy, "https": cfg.proxy}
        else:
            self.session.proxies = requests.utils.get_environ_proxies(cfg.url)
        if cfg.username is not None:
            self.session.auth = (cfg.username, cfg.password or "")
        self.session.verify = _verify_setting(cfg)
        self.session.headers.update({"Content-Type": CONTENT_TYPE, "SOAPAction": f'"{SOAP_ACTION}"',
                                     "User-Agent": f"asterisk-bridge/{__version__}"})

    def delivery_headers(self, event_id: str, body: bytes) -> dict[str, str]:
        """Idempotency-Key always; the Standard Webhooks trio when the subscriber signs."""
        headers = {"Idempotency-Key": event_id}
        secret = self.cfg.signing_secret
        if secret:
            ts = int(self._clock())
            headers.update({"webhook-id": event_id, "webhook-timestamp": str(ts),
                            "webhook-signature": signing.sign(secret, event_id, ts, body)})
        return headers

    def push_event(self, event_id: str, payload: str) -> None:
        body = payload.encode("utf-8")
        self.push(body, self.delivery_headers(event_id, body))

    def push_events(self, events: list[tuple[str, str]]) -> None:
        """Deliver (event id, stored PushEvent envelope) pairs as one PushEvents request, in order,
        acknowledged all-or-nothing; raises like push(). One event whose stored payload cannot be
        framed into a batch (not built by this version) goes as a PushEvent; among several, that
        is a DeliveryRejected, so the dispatcher sends them one by one."""
        try:
            body = build_batch([payload for _, payload in events]).encode("utf-8")
        except EnvelopeFormatError as exc:
            if len(events) == 1:
                self.push_event(*events[0])
                return
            raise DeliveryRejected(f"cannot batch: {exc}") from exc
        headers = self.delivery_headers(batch_id([event_id for event_id, _ in events]), body)
        headers["SOAPAction"] = f'"{BATCH_SOAP_ACTION}"'
        self.push(body, headers)

    def push(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Deliver or raise DeliveryRetryable (try later) / DeliveryRejected (SOAP Fault).

        The whole answer (status, headers, body) must arrive within connect_timeout + read_timeout
        of the start, and its body may not exceed MAX_RESPONSE_BYTES."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("POST %s headers=%s body=%s", self._where(), _redact_headers(headers),
                      redact(body.decode("utf-8", "replace")))
        total_s = self.timeout[0] + self.timeout[1]
        with self._guard:
            self._deadline, self._cut = time.monotonic() + total_s, False
        _Reaper.watch(self)
        try:
            # Never follow redirects: a 301/302 would turn the POST into a GET elsewhere (and look
            # delivered), a 307/308 would send the signed event to another host.
            resp = self.session.post(self.url, data=body, headers=headers, timeout=self.timeout,
                                     stream=True, allow_redirects=False)
            try:
                content = self._read_capped(resp)
            finally:
                resp.close()
        except requests.Timeout as exc:
            raise DeliveryRetryable(f"timeout after {self._timeout_text(exc)} posting to {self._where()}") from exc
        except (requests.RequestException, Urllib3Error, OSError) as exc:   # urllib3's: from raw.read()
            if self._cut:
                raise DeliveryRetryable(f"no complete answer from {self._where()} within {total_s:g} s "
                                        "(connect_timeout + read_timeout)") from exc
            if isinstance(exc, (requests.ConnectionError, Urllib3Error, OSError)):
                raise DeliveryRetryable(f"connection failed to {self._where()}: {_reason(exc)}") from exc
            raise DeliveryRetryable(f"HTTP error posting to {self._where()}: {type(exc).__name__}") from exc
        finally:
            with self._guard:
                self._deadline = self._active = None
        self._check(resp, content)

    def _read_capped(self, resp: requests.Response) -> bytes:
        chunks, total = [], 0
        while True:
            chunk = resp.raw.read(READ_CHUNK_BYTES, decode_content=True)
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            if total > MAX_RESPONSE_BYTES:
                # The exception's traceback keeps this frame alive (the dispatcher holds a batch's
                # outcomes): drop the megabyte read so far first.
                chunks.clear()
                raise DeliveryRetryable(f"HTTP {resp.status_code} from {self._where()}: the answer is larger "
                                        f"than {MAX_RESPONSE_BYTES} bytes (not read further)",
                                        status_code=resp.status_code)
            chunks.append(chunk)

    def probe(self, timeout_s: float) -> tuple[int, str]:
        """GET the endpoint's ?wsdl with the delivery settings (auth, TLS verification, CA file,
        proxy, no redirects): (HTTP status, redirect target host or ""). Raises DeliveryRetryable
        when the endpoint cannot be reached."""
        url = self.url + ("&wsdl" if "?" in self.url else "?wsdl")
        try:
            resp = self.session.get(url, timeout=(timeout_s, timeout_s), stream=True, allow_redirects=False)
        except requests.RequestException as exc:
            raise DeliveryRetryable(f"{self._where()} unreachable: {_reason(exc)}") from exc
        try:
            return resp.status_code, _host_of(resp.headers.get("Location") or "")
        finally:
            resp.close()

    def reap_if_late(self, now: float) -> None:
        """Called by the reaper thread: cut the connection of an answer past its deadline."""
        with self._guard:
            if self._deadline is None or now < self._deadline or self._active is None:
                return
            sock = getattr(self._active, "sock", None)
            self._cut, self._deadline = True, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _track(self, conn) -> None:
        with self._guard:
            self._active = conn

    def _check(self, resp: requests.Response, body: bytes) -> None:
        status = resp.status_code
        content = body[:FAULT_SNIFF_BYTES]
        fault = find_fault(content)
        if fault is not None:
            raise DeliveryRejected(f"SOAP Fault (HTTP {status}) {fault.code}: {fault.text}"[:300],
                                   faultcode=fault.code, faultstring=fault.text, status_code=status)
        if 200 <= status < 300:
            if content.strip() and not _ENVELOPE.search(content):
                # An HTML login page or a proxy's error page says 200 without the ERP ever
                # seeing the event: that is not an acknowledgement.
                kind = (resp.headers.get("Content-Type") or "no content type").split(";")[0][:60]
                raise DeliveryRetryable(f"HTTP {status} from {self._where()} is not a SOAP envelope ({kind}); "
                                        "not counted as delivered", status_code=status)
            return
        if 300 <= status < 400:
            target = _host_of(resp.headers.get("Location") or "")
            raise DeliveryRetryable(f"HTTP {status} redirect from {self._where()}"
                                    f"{' to ' + target if target else ''} not followed: set the subscriber's url "
                                    "to the final address", status_code=status)
        retry_after = parse_retry_after(resp.headers.get("Retry-After"), self._clock()) \
            if status in (429, 503) else None
        raise DeliveryRetryable(f"HTTP {status} {resp.reason or ''}".strip() + f" from {self._where()}",
                                retry_after_s=retry_after, status_code=status)

    def _where(self) -> str:
        # Never the full URL: it may carry credentials (user:pass@host) or tokens in the query.
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)

    def _timeout_text(self, exc: Exception) -> str:
        kind = "connect" if isinstance(exc, requests.ConnectTimeout) else "read"
        return f"{self.timeout[0] if kind == 'connect' else self.timeout[1]} s ({kind})"

    def close(self) -> None:
        self.session.close()


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP-date; None if absent or garbage."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
        return min(max(0.0, when.timestamp() - now), MAX_RETRY_AFTER_S)
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


def _host_of(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def _tracking(base: type, owner: ErpTransport) -> type:
    """A urllib3 pool class that tells `owner` which connection each request uses."""

    class TrackingPool(base):
        def _get_conn(self, timeout=None):
            conn = super()._get_conn(timeout)
            owner._track(conn)
            return conn

    return TrackingPool


class _Reaper(threading.Thread):
    """One daemon thread cutting ERP answers that are past their deadline (checked every 0.1 s)."""

    _instance: "_Reaper | None" = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        super().__init__(name="erp-reaper", daemon=True)
        self.transports: "weakref.WeakSet[ErpTransport]" = weakref.WeakSet()

    @classmethod
    def watch(cls, transport: ErpTransport) -> None:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
                cls._instance.start()
            cls._instance.transports.add(transport)

    def run(self) -> None:
        while True:
            time.sleep(REAPER_INTERVAL_S)
            now = time.monotonic()
            with self._lock:
                watched = list(self.transports)
            for transport in watched:
                try:
                    transport.reap_if_late(now)
                except Exception:  # the top of a thread: never let one transport stop the reaper
                    log.exception("cutting a late ERP answer failed")


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Connection reset", "Name or service not known",
                   "Remote end closed connection", "RemoteDisconnected", "timed out", "CERTIFICATE_VERIFY_FAILED"):
        if marker in text:
            return marker
    return type(exc).__name__


def _verify_setting(cfg) -> bool | str:
    """requests' `verify`: off, the configured CA file, the environment's bundle, or True."""
    if not cfg.verify_tls:
        return False
    if cfg.ca_file:
        return cfg.ca_file
    if cfg.url.lower().startswith("https:"):
        return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return True


def _redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: ("***" if k.lower() in REDACTED_HEADERS else v) for k, v in headers.items()}
