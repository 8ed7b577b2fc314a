"""AjamClient: the AMI client's interface over Asterisk's HTTP manager (AJAM), long-polling WaitEvent.

Theory of operation
-------------------
One poller thread owns the session: log in (cookie: MD5 `Challenge` + `Login` on rawman;
digest: every request signed on arawman), send the `Filter` lines, read `CoreSettings`, tell
the listeners `on_connected`, then loop on `WaitEvent` and hand its events to `on_event` in
order. Asterisk answers a WaitEvent as soon as an event is queued for the session (the event
wakes the waiting HTTP thread), so latency is one HTTP round trip, not a polling interval.

Between two WaitEvents Asterisk keeps queuing the session's events, and it keeps the session
`httptimeout` seconds after its last request. So when the HTTP link fails (timeout, refused,
reset) the poller first tries the same session again: if Asterisk still knows it, nothing
queued meanwhile is lost. Only a `Permission denied` (session expired, purged, or Asterisk
restarted) starts a new login; events of the dead session are gone, and the resync that
`on_connected` triggers (CoreShowChannels) closes the calls that ended meanwhile.

Actions run on a small thread pool, each thread on its own keep-alive connection of the same
session, so a pending WaitEvent never delays an Originate.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Sequence

from bridge.ami import ajam_wire, auth, names
from bridge.ami.actions import Action
from bridge.ami.ajam_http import AjamHttp
from bridge.ami.ajam_order import EventBarrier
from bridge.ami.face import ClientFace
from bridge.ami.connection import ActionResult
from bridge.ami.message import Banner, Message
from bridge.backoff import Backoff
from bridge.config import AmiConfig
from bridge.errors import AmiActionError, AmiAuthError, AmiConnectionError, AmiError, BridgeError

log = logging.getLogger(__name__)

__all__ = ["AjamClient"]

ACTION_THREADS = 4
LOGOFF_TIMEOUT_S = 1.0


class AjamClient(ClientFace):
    """One Asterisk server over HTTP, with the same public face as AmiClient."""

    poller_class: type["_Poller"]  # set below the class: what reads events (benchmarks swap it)

    def __init__(self, settings: AmiConfig, *, filters: Sequence[str] = (), action_threads: int = ACTION_THREADS,
                 rng: random.Random | None = None) -> None:
        """`settings` is the `[[ami]]` table (transport = "http"): url, auth (cookie | digest),
        verify_tls, ca_file, proxy, events, wait_timeout_s, connect_timeout_s, ping_timeout_s (how
        late a WaitEvent answer may be before the server counts as stalled), reconnect_*."""
        if settings.auth not in ("cookie", "digest"):
            raise AmiAuthError(f"unknown AJAM auth mode {settings.auth!r}; use cookie or digest")
        self._init_face(settings, filters)
        self.url = settings.url
        self.auth, self.events = settings.auth, settings.events
        self._http = AjamHttp(settings.name, settings.url, settings.username, settings.secret, auth=settings.auth,
                              verify_tls=settings.verify_tls, ca_file=settings.ca_file, proxy=settings.proxy,
                              connect_timeout_s=settings.connect_timeout_s)
        self.wait_timeout_s = settings.wait_timeout_s
        self.connect_timeout_s = settings.connect_timeout_s
        self.stall_margin_s = settings.ping_timeout_s
        self.reconnect = Backoff(settings.reconnect_base_s, settings.reconnect_cap_s, jitter=True)
        self._action_threads = action_threads
        self._rng = rng or random.Random()
        self._session_lost = threading.Event()   # an action saw the session die
        self._barrier = EventBarrier()
        self._logins = 0                         # login generation: a late "session lost" is ignored
        self._poller: _Poller | None = None
        self._executor: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:  # no secret
        return f"AjamClient({self.name!r}, {self._http.endpoint}, user={self.username!r}, auth={self.auth})"

    # --- the link's own public face (the rest is ClientFace's) ----------------------------------

    @property
    def endpoint(self) -> str:
        return self._http.endpoint

    def start(self) -> None:
        if self._poller is not None:
            return
        self._stop.clear()
        self._executor = ThreadPoolExecutor(self._action_threads, thread_name_prefix=f"ajam-action-{self.name}")
        self._notifier.start()
        self._poller = self.poller_class(self)
        self._poller.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self.connected:
            try:  # Logoff ends the session at once, which also releases the pending WaitEvent
                self._call(self._with_id(Action.build(names.LOGOFF)), LOGOFF_TIMEOUT_S, control=True)
            except (BridgeError, Exception):
                pass
        if self._poller is not None:
            self._poller.join(timeout_s)
            self._poller = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self._http.close()
        self._stop_notifier(timeout_s)

    def send_action(self, action: Action, timeout_s: float = 10.0) -> "Future[ActionResult]":
        """Like AmiClient.send_action: AmiActionError on `Response: Error`, AmiConnectionError when
        the session is down, lost, or the answer is late."""
        executor = self._executor
        if executor is None or not self.connected:
            future: Future = Future()
            future.set_exception(AmiConnectionError(f"{self.name}: not logged in to {self._http.endpoint}"))
            return future
        self.stats.actions_sent += 1
        return executor.submit(self._call_checked, self._with_id(action), timeout_s)

    # --- internals ----------------------------------------------------------------------------------

    def _call(self, action: Action, timeout_s: float, *, poll: bool = False, control: bool = False) -> ActionResult:
        """One action over HTTP; raises AmiActionError on `Response: Error` (as the TCP link does)."""
        body = self._http.post(ajam_wire.form_fields(action), timeout_s, poll=poll, control=control)
        result = ajam_wire.action_result(body)
        self.stats.messages += 1 + len(result.events) + (result.complete is not None)
        response = result.response
        if response.response == names.ERROR:
            reason = response.get(names.MESSAGE) or "Response: Error"
            raise AmiActionError(f"{self.name}: {action.name} failed: {reason}",
                                 action_id=action.action_id, response=response)
        return result

    def _call_checked(self, action: Action, timeout_s: float) -> ActionResult:
        """_call, but a `Permission denied` that a Ping confirms means the session died: relogin;
        a list answer (CoreShowChannels, Status …) waits for the events queued before it."""
        generation = self._logins
        try:
            result = self._call(action, timeout_s)
            if result.complete is not None and self.connected:
                self._barrier.wait_after(time.monotonic(), self._stop)
            return result
        except AmiActionError as exc:
            if exc.response is None or not ajam_wire.session_lost(exc.response) or not self._session_gone():
                raise
            if generation == self._logins:  # else the poller has logged in again meanwhile
                self._session_lost.set()
            raise AmiConnectionError(f"{self.name}: manager session expired before {action.name} "
                                     f"(Asterisk answered Permission denied); logging in again") from None

    def _session_gone(self) -> bool:
        """Ping needs no write class: refused means the session itself is not logged in."""
        try:
            self._call(self._with_id(Action.build(names.PING)), self.connect_timeout_s)
            return False
        except AmiActionError as exc:
            return exc.response is not None and ajam_wire.session_lost(exc.response)
        except AmiError:
            return False


class _Poller(threading.Thread):
    """Log in (or resume the session) → notify → WaitEvent until the session or link dies → again."""

    def __init__(self, client: AjamClient) -> None:
        super().__init__(name=f"ajam-poller-{client.name}", daemon=True)
        self.client = client
        self._pending: tuple[Message, ...] = ()   # events the resuming WaitEvent brought

    def run(self) -> None:
        client, failures = self.client, 0
        while not client._stop.is_set():
            try:
                resumed = self._establish()
            except AmiAuthError as exc:
                client.stats.auth_failures += 1
                self._failed(exc, logging.ERROR)
            except AmiError as exc:
                self._failed(exc, logging.WARNING)
            except Exception as exc:  # thread top level: log, back off, go on
                log.exception("%s: unexpected error while logging in over HTTP", client.name)
                self._failed(exc, logging.ERROR)
            else:
                failures = 0
                self._online(resumed)
                continue
            failures += 1
            client._stop.wait(client.reconnect.delay_s(failures, client._rng))

    def _failed(self, exc: BaseException, level: int) -> None:
        client = self.client
        client.stats.connect_failures += 1
        client.stats.last_error = str(exc)
        log.log(level, "%s: AJAM %s: %s; retrying with backoff", client.name, client.endpoint, exc)

    def _establish(self) -> bool:
        """True when the previous session still lives (nothing it queued is lost), else log in.

        AJAM has no acknowledgement: events Asterisk put into an answer that never arrives are
        gone. So the probe is a Ping first (harmless if the answer is lost again: a server that
        hangs may still process it later), then, once the server answers, a WaitEvent with
        Timeout 0: the WaitEvent left pending on the broken connection still waits inside
        Asterisk and would swallow the next events into an answer nobody reads, and a new
        WaitEvent on the session makes Asterisk abandon it at once (main/manager.c
        action_waitevent: "newcomers kick out the previous").
        """
        client = self.client
        if client._http.has_session and not client._session_lost.is_set():
            timeout = client.connect_timeout_s
            try:
                client._call(client._with_id(Action.build(names.PING)), timeout, poll=True)
                fields = [(names.ACTION, ajam_wire.WAIT_EVENT), ("Timeout", "0")]
                result = ajam_wire.wait_event_result(client._http.post(fields, timeout, poll=True))
                if not ajam_wire.session_lost(result.response):
                    self._pending = result.events
                    return True
            except AmiActionError as exc:
                if exc.response is None or not ajam_wire.session_lost(exc.response):
                    raise
        client._session_lost.clear()
        if client.auth == "digest":
            client._http.forget_session()  # a cookie needs no forgetting: Asterisk sets a new one
        self._login()
        return False

    def _login(self) -> None:
        client = self.client
        client._logins += 1
        timeout = client.connect_timeout_s + 1.0

        def send(action: Action) -> Future:
            future: Future = Future()
            try:
                future.set_result(client._call(client._with_id(action), timeout, poll=True))
            except BaseException as exc:  # handed to the caller through the Future
                future.set_exception(exc)
            return future

        if client.auth == "cookie":
            auth.login(send, client.username, client.settings.secret, auth="md5", events=client.events,
                       timeout_s=timeout)
        else:  # Digest signs every request; the first one (a 401 answered) opens the session
            send(Action.build(names.PING)).result()
            if client.events != "on":  # no Login carries `Events:` here: set the session's mask
                send(Action.build("Events", EventMask=client.events)).result()
        auth.apply_filters(send, client._filters, timeout)
        self._core_settings(send, timeout)

    def _core_settings(self, send, timeout_s: float) -> None:
        """No banner over HTTP: CoreSettings gives the AMI version (Originate's ChannelId needs 13+)."""
        client = self.client
        try:
            response = send(Action.build("CoreSettings")).result(timeout_s).response
        except AmiError as exc:
            log.info("%s: CoreSettings unavailable (needs write=system or reporting): %s", client.name, exc.message)
            return
        ami = response.get("AMIversion") or ""
        version = tuple(int(p) for p in re.findall(r"[0-9]{1,9}", ami))
        client.banner = Banner(f"{names.BANNER_PREFIX}{ami}", version) if version else None
        client.asterisk_version = response.get("AsteriskVersion")

    def _online(self, resumed: bool) -> None:
        client = self.client
        if client._stop.is_set():
            return
        client.stats.connects += 1
        client.stats.reconnects += client.stats.connects > 1
        client._connected.set()
        log.info("%s: AJAM %s %s (AMI %s, Asterisk %s)", client.name, "session resumed at" if resumed
                 else "logged in to", client.endpoint, client.ami_version, client.asterisk_version or "unknown")
        client._notify("on_connected", client.banner)
        reason = self._poll()
        client._connected.clear()
        client.stats.disconnects += 1
        client.stats.last_error = None if client._stop.is_set() else reason
        log.log(logging.INFO if client._stop.is_set() else logging.WARNING,
                "%s: AJAM disconnected from %s: %s", client.name, client.endpoint, reason)
        client._notify("on_disconnected", reason)

    def _poll(self) -> str:
        """WaitEvent after WaitEvent; returns why the loop ended."""
        client = self.client
        fields = [(names.ACTION, ajam_wire.WAIT_EVENT), ("Timeout", str(max(1, round(client.wait_timeout_s))))]
        pending, self._pending = self._pending, ()
        for event in pending:
            client._dispatch(event)
        while not client._stop.is_set():
            if client._session_lost.is_set():
                return "manager session expired (an action got Permission denied)"
            client._barrier.poll_started()
            try:
                body = client._http.post(fields, client.wait_timeout_s + client.stall_margin_s, poll=True)
                client._barrier.poll_answered()
                result = ajam_wire.wait_event_result(body)
            except AmiError as exc:
                return "client stopped" if client._stop.is_set() else exc.message
            if client._stop.is_set():  # our own Logoff ended the session; deliver what it brought
                for event in result.events:
                    client._dispatch(event)
                return "client stopped"
            if ajam_wire.session_lost(result.response):
                client._session_lost.set()
                return "manager session expired (WaitEvent: Permission denied)"
            if result.response.response == names.ERROR:
                return f"WaitEvent failed: {result.response.get(names.MESSAGE) or 'Response: Error'}"
            client.stats.messages += 1 + len(result.events)
            for event in result.events:
                client._dispatch(event)
            client._barrier.poll_done()
        return "client stopped"


AjamClient.poller_class = _Poller
