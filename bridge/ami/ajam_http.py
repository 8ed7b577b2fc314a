"""The AJAM client's one HTTP seam: requests sessions, the shared mansession cookie, Digest, TLS, proxy.

Asterisk serves each HTTP request on its own thread and finds the manager session by the
`mansession_id` cookie (rawman) or by the Digest nonce (arawman); a WaitEvent blocks only its
own request, so actions run at the same time on other keep-alive connections of the same
session (main/manager.c `generic_http_callback`, `auth_http_callback`). Hence one requests
Session for the long poll and one per action thread, all sharing one cookie jar.

Digest is different: Asterisk wants each nonce's count to grow, and answers a request that
arrives out of order with a new nonce; one signed with a nonce it no longer knows even gets a
brand-new session. Concurrent actions would thus move the event session's nonce under the long
poll, and the events queued on the old session would be lost. So the long poll (and the
Logoff that ends it) signs with its own Digest state, one request at a time, and the actions
share a second one. Foreign errors are translated here, at the edge, into the AmiError tree.
"""

from __future__ import annotations

import threading
from typing import Sequence

import requests
from requests.auth import HTTPDigestAuth
from requests.cookies import RequestsCookieJar

from bridge.ami.ajam_wire import ARAWMAN, RAWMAN
from bridge.errors import AmiAuthError, AmiConnectionError

USER_AGENT = "asterisk-bridge (AJAM)"
# Concurrent Digest requests of one session can arrive out of nonce-count order; Asterisk then
# rotates the nonce and answers `stale=true` (never for a wrong password), so signing again is safe.
STALE_RETRIES = 8


class _DigestState:
    """requests keeps a Digest challenge per thread; Asterisk keys the manager session by the
    nonce, so a nonce per thread would make one session per thread. The challenge and nonce
    count are shared here; only a request's own retry bookkeeping stays per thread."""

    _PER_THREAD = frozenset({"init", "pos", "num_401_calls"})

    def __init__(self) -> None:
        object.__setattr__(self, "_local", threading.local())
        object.__setattr__(self, "last_nonce", "")
        object.__setattr__(self, "nonce_count", 0)
        object.__setattr__(self, "chal", {})

    def __getattr__(self, name: str):  # only reached for names not set on the object itself
        if name in _DigestState._PER_THREAD:
            return getattr(object.__getattribute__(self, "_local"), name)
        raise AttributeError(name)

    def __setattr__(self, name: str, value) -> None:
        if name in self._PER_THREAD:
            setattr(self._local, name, value)
        else:
            object.__setattr__(self, name, value)


class SharedDigestAuth(HTTPDigestAuth):
    """HTTP Digest with one challenge for every thread; nonce counts increase under a lock.

    Two requests can still reach Asterisk out of nonce-count order; it then answers 401 with a
    fresh nonce and `stale=true` (the session stays, re-keyed), and the request is signed again
    with it: requests retries once, AjamHttp.post a few more times (`STALE_RETRIES`).
    """

    def __init__(self, username: str, password: str) -> None:
        super().__init__(username, password)
        self._lock = threading.Lock()
        self._thread_local = _DigestState()  # type: ignore[assignment]

    def init_per_thread_state(self) -> None:
        state = self._thread_local
        if not hasattr(state, "init"):
            state.init = True
            state.pos = None
            state.num_401_calls = None

    def build_digest_header(self, method, url):  # type: ignore[no-untyped-def]
        with self._lock:
            return super().build_digest_header(method, url)

    def reset(self) -> None:
        with self._lock:
            self._thread_local = _DigestState()  # type: ignore[assignment]

    def __repr__(self) -> str:  # never the password
        return f"SharedDigestAuth({self.username!r})"


class AjamHttp:
    """POSTs form-encoded actions to `<url>rawman` (cookie) or `<url>arawman` (digest)."""

    def __init__(self, server: str, url: str, username: str, secret: str, *, auth: str = "cookie",
                 verify_tls: bool = True, ca_file: str | None = None, proxy: str | None = None,
                 connect_timeout_s: float = 5.0) -> None:
        if auth not in ("cookie", "digest"):
            raise AmiAuthError(f"unknown AJAM auth mode {auth!r}; use cookie or digest")
        self.server = server
        self.base_url = url if url.endswith("/") else url + "/"
        self.endpoint = self.base_url + (ARAWMAN if auth == "digest" else RAWMAN)
        self.connect_timeout_s = connect_timeout_s
        self._cookies = RequestsCookieJar()  # thread-safe (http.cookiejar locks); shared by all sessions
        digest = auth == "digest"
        self._poll_digest = SharedDigestAuth(username, secret) if digest else None
        self._action_digest = SharedDigestAuth(username, secret) if digest else None
        self._verify: bool | str = ca_file if (verify_tls and ca_file) else verify_tls
        self._proxies = {"http": proxy, "https": proxy} if proxy else None
        self._lock = threading.Lock()
        self._sessions: list[requests.Session] = []
        self._local = threading.local()
        self._poll_session = self._new_session(self._poll_digest)
        self._control_session = self._new_session(self._poll_digest)  # Logoff from stop(): same session

    def __repr__(self) -> str:
        return f"AjamHttp({self.server!r}, {self.endpoint})"

    def _new_session(self, digest: SharedDigestAuth | None) -> requests.Session:
        session = requests.Session()
        session.cookies = self._cookies
        session.auth = digest
        session.verify = self._verify
        if self._proxies:
            session.proxies.update(self._proxies)
        session.headers["User-Agent"] = USER_AGENT
        with self._lock:
            self._sessions.append(session)
        return session

    def _action_session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._new_session(self._action_digest)
        return session

    @property
    def has_session(self) -> bool:
        """A cookie, or a Digest nonce of the event session, to try again after a link failure."""
        if self._poll_digest is not None:
            return bool(self._poll_digest._thread_local.chal)
        return self.session_id is not None

    @property
    def session_id(self) -> str | None:
        """The mansession_id cookie (quotes stripped), or None before a cookie login."""
        for cookie in list(self._cookies):
            if cookie.name == "mansession_id":
                return (cookie.value or "").strip('"') or None
        return None

    def post(self, fields: Sequence[tuple[str, str]], read_timeout_s: float, *, poll: bool = False,
             control: bool = False) -> bytes:
        """One action, one answer body; AmiConnectionError for anything but an HTTP 200.

        `poll`: on the long poll's own connection (the poller thread only); `control`: on the
        event session from another thread (Logoff at stop); otherwise an action connection.
        """
        if poll:
            session = self._poll_session
        elif control:
            session = self._control_session
        else:
            session = self._action_session()
        for _ in range(STALE_RETRIES):
            reply = self._post_once(session, fields, read_timeout_s)
            if reply.status_code != 401 or "stale=true" not in reply.headers.get("WWW-Authenticate", "").lower():
                break
        if reply.status_code == 401:
            raise AmiAuthError(f"{self.server}: HTTP Digest login refused at {self.endpoint}; check "
                               f"username/secret and the user's permit= in manager.conf")
        if reply.status_code == 404:
            raise AmiConnectionError(f"{self.server}: {self.endpoint} answered 404: is webenabled = yes in "
                                     f"manager.conf and does the url end in http.conf's prefix?")
        if reply.status_code != 200:
            raise AmiConnectionError(f"{self.server}: {self.endpoint} answered HTTP {reply.status_code}")
        return reply.content

    def _post_once(self, session: requests.Session, fields: Sequence[tuple[str, str]],
                   read_timeout_s: float) -> requests.Response:
        try:
            return session.post(self.endpoint, data=list(fields), allow_redirects=False,
                                timeout=(self.connect_timeout_s, read_timeout_s))
        except requests.Timeout as exc:
            raise AmiConnectionError(f"{self.server}: no HTTP answer from {self.endpoint} "
                                     f"within {read_timeout_s:g} s") from exc
        except requests.RequestException as exc:
            raise AmiConnectionError(f"{self.server}: HTTP manager {self.endpoint} unreachable: "
                                     f"{_reason(exc)}") from exc

    def forget_session(self) -> None:
        """Drop the cookie / Digest nonce, so the next login starts a fresh manager session."""
        self._cookies.clear()
        for digest in (self._poll_digest, self._action_digest):
            if digest is not None:
                digest.reset()

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()


def _reason(exc: requests.RequestException) -> str:
    """The innermost cause, short (requests wraps urllib3 wraps socket errors)."""
    cause: BaseException = exc
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
    text = str(cause) or type(cause).__name__
    if "] " in text and text.startswith("<"):
        text = text.split("] ", 1)[1]
    return text[:200]
