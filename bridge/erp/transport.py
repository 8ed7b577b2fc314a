"""The one HTTP seam towards subscribers (the ERP): the only module that imports `requests`."""

from __future__ import annotations

import email.utils
import logging
import os
import time
from typing import Mapping

import requests

from bridge import __version__
from bridge.errors import DeliveryRejected, DeliveryRetryable
from bridge.erp import signing
from bridge.erp.envelope import CONTENT_TYPE, SOAP_ACTION, redact
from bridge.erp.fault import find_fault

log = logging.getLogger(__name__)

POOL_CONNECTIONS = 4
POOL_MAXSIZE = 16
REDACTED_HEADERS = {"authorization", "proxy-authorization", "webhook-signature"}


class ErpTransport:
    """POSTs PushEvent envelopes to one subscriber's URL over a keep-alive Session."""

    def __init__(self, cfg, session: requests.Session | None = None, clock=time.time) -> None:
        self.cfg = cfg
        self.url = cfg.url
        self.timeout = (cfg.connect_timeout_s, cfg.read_timeout_s)
        self._clock = clock
        self.session = session or requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=POOL_CONNECTIONS, pool_maxsize=POOL_MAXSIZE,
                                                max_retries=0)
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

    def push(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Deliver or raise DeliveryRetryable (try later) / DeliveryRejected (SOAP Fault)."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug("POST %s headers=%s body=%s", self.url, _redact_headers(headers),
                      redact(body.decode("utf-8", "replace")))
        try:
            resp = self.session.post(self.url, data=body, headers=headers, timeout=self.timeout)
        except requests.Timeout as exc:
            raise DeliveryRetryable(f"timeout after {self._timeout_text(exc)} posting to {self._where()}") from exc
        except requests.ConnectionError as exc:
            raise DeliveryRetryable(f"connection failed to {self._where()}: {_reason(exc)}") from exc
        except requests.RequestException as exc:
            raise DeliveryRetryable(f"HTTP error posting to {self._where()}: {type(exc).__name__}") from exc
        self._check(resp)

    def _check(self, resp: requests.Response) -> None:
        status = resp.status_code
        fault = find_fault(resp.content)
        if fault is not None:
            raise DeliveryRejected(f"SOAP Fault (HTTP {status}) {fault.code}: {fault.text}"[:300],
                                   faultcode=fault.code, faultstring=fault.text, status_code=status)
        if 200 <= status < 300:
            return
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
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


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
