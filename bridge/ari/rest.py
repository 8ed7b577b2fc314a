"""The ARI REST seam: one requests.Session with HTTP Basic auth; HTTP answers mapped to typed errors.

Asterisk answers 401 for a wrong user or password (ari.conf: AmiAuthError), 403 for a read_only
user writing (AmiActionError: that request is refused, the link is fine),
404 for an unknown channel, 412 when a channel is not in a Stasis application, 400/422 for bad
arguments; the body is `{"message": "..."}`. The password never appears in an error or a log.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from bridge.errors import AmiActionError, AmiAuthError, AmiConnectionError

DEFAULT_TIMEOUT_S = 5.0


def endpoint_of(url: str) -> str:
    """`http://user:pw@pbx:8088/ari/` → `http://pbx:8088/ari/` (for logs: no userinfo)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"


def events_url(url: str, app: str) -> str:
    """The events WebSocket for `app`, every event of the PBX (subscribeAll), same scheme family."""
    parts = urlsplit(endpoint_of(url))
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}/events?app={quote(app)}&subscribeAll=true"


class AriRest:
    """GET/POST/DELETE under the ARI base url; each returns the decoded JSON (None for 204)."""

    def __init__(self, url: str, username: str, secret: str, *, verify_tls: bool = True,
                 ca_file: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.base = endpoint_of(url).rstrip("/")
        self.username = username
        self.timeout_s = timeout_s
        self._auth = (username, secret)
        self._verify: bool | str = ca_file if (verify_tls and ca_file) else verify_tls
        self._local = threading.local()   # a Session per thread: requests does not promise sharing

    def __repr__(self) -> str:
        return f"AriRest({self.base!r}, user={self.username!r})"

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.auth = self._auth
            session.verify = self._verify
            self._local.session = session
        return session

    def request(self, method: str, path: str, *, params: dict | None = None, json: Any = None,
                timeout_s: float | None = None) -> Any:
        url = f"{self.base}/{path.lstrip('/')}"
        timeout = timeout_s or self.timeout_s
        try:
            response = self._session().request(method, url, params=params, json=json, timeout=timeout)
        except requests.Timeout as exc:
            raise AmiConnectionError(f"ARI {method} /{path}: no answer within {timeout:g} s") from exc
        except requests.RequestException as exc:
            raise AmiConnectionError(f"ARI {method} /{path}: {type(exc).__name__}: {_reason(exc)}") from exc
        if response.status_code == 401:
            raise AmiAuthError(f"ARI user {self.username!r}: HTTP 401, wrong user or password "
                               f"(ari.conf [{self.username}])")
        if response.status_code == 403:
            # A read_only user writing: Asterisk refuses this request, the link itself is fine (as an
            # AMI user without `originate` write permission gets `Response: Error`).
            raise AmiActionError(f"ARI {method} /{path} refused: user {self.username!r} has permission to read "
                                 f"only (HTTP 403; ari.conf [{self.username}] read_only = yes)")
        if response.status_code >= 300:
            raise AmiActionError(f"ARI {method} /{path}: HTTP {response.status_code} {_message(response)}")
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise AmiActionError(f"ARI {method} /{path}: answer is not JSON") from exc

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.request("POST", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason or ""
    return str(body.get("message") or body.get("error") or "") if isinstance(body, dict) else ""


def _reason(exc: Exception) -> str:
    # requests nests the socket error; its str() carries the url only, never the credentials.
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "…"
