"""AriClient: the AmiClient interface over ARI — events from the WebSocket, actions over REST.

Theory of operation
-------------------
One reader thread owns the link: GET /asterisk/info (checks the user and password and reads
the Asterisk version), open the events WebSocket `/ari/events?app=NAME&subscribeAll=true`, tell
the listeners `on_connected` (the pipeline then resyncs the live channels from GET /channels,
as it does with CoreShowChannels over AMI), and hand every JSON frame to `on_event` in order as
an AriEvent. A link silent for `ping_interval` gets a WebSocket ping; silent for another
interval after it, the link is dead. A dead or refused link is retried with the project's
Backoff; a 401 is logged as an error naming the ari.conf user (never the password).

Actions (`send_action`) run on the caller's thread as REST requests (bridge.ari.actions).
ARI addresses channels by id, the SOAP API by name: the reader keeps name → id for the live
channels from ChannelCreated/ChannelDestroyed and every GET /channels.
"""

from __future__ import annotations

import base64
import logging
import random
import ssl
import threading
from concurrent.futures import Future
from typing import Sequence

import websocket

from bridge.ami.actions import Action
from bridge.ami.face import ClientFace
from bridge.ami.connection import ActionResult
from bridge.ami.message import Banner
from bridge.ari import actions
from bridge.ari.event import LINKEDID, AriEvent, parse
from bridge.ari.redirect import Watch
from bridge.ari.rest import AriRest, endpoint_of, events_url
from bridge.backoff import Backoff
from bridge.config import AmiConfig
from bridge.errors import AmiAuthError, AmiConnectionError, AmiError, BridgeError

log = logging.getLogger(__name__)

__all__ = ["AriClient"]

BANNER = "Asterisk REST Interface"


class AriClient(ClientFace):
    """One Asterisk server over ARI, with the public face of AmiClient (connected, send_action, listeners)."""

    def __init__(self, settings: AmiConfig, *, filters: Sequence[str] = (), rng: random.Random | None = None) -> None:
        self._init_face(settings)    # ARI has no per-session event Filter: the router filters (`filters` unused)
        self.app = settings.app
        self.url = endpoint_of(settings.url)
        self.rest = AriRest(settings.url, settings.username, settings.secret, verify_tls=settings.verify_tls,
                            ca_file=settings.ca_file, timeout_s=settings.connect_timeout_s)
        self.reconnect = Backoff(settings.reconnect_base_s, settings.reconnect_cap_s, jitter=True)
        self._rng = rng or random.Random()
        self._ws: websocket.WebSocket | None = None
        self._channels: dict[str, str] = {}       # live channel name → ARI id
        self._channels_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._linkedid_checked = False            # warned (or found) ari.conf channelvars this connection
        self._watch = Watch()                     # actions awaiting an event (Redirect's verdict)
        self._redirector = actions.Redirector(self._watch, settings.app, settings.redirect_context, self._id_prefix)

    def __repr__(self) -> str:  # no secret
        return f"AriClient({self.name!r}, {self.url}, user={self.username!r}, app={self.app!r})"

    # --- the public face (the rest is ClientFace's) ----------------------------------------------

    def set_filters(self, filters: Sequence[str]) -> None:
        """AMI `Filter` lines mean nothing to ARI; the router still filters what subscribers get."""

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._notifier.start()
        self._thread = threading.Thread(target=self._run, name=f"ari-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        ws = self._ws
        if ws is not None:
            ws.abort()   # wakes the reader out of recv()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self._stop_notifier(timeout_s)

    def send_action(self, action: Action, timeout_s: float = 10.0) -> "Future[ActionResult]":
        """Carry the action out over REST now; the Future is already settled when returned."""
        future: Future = Future()
        if not self.connected:
            future.set_exception(AmiConnectionError(f"{self.name}: not connected to ARI at {self.url}"))
            return future
        action = self._with_id(action)
        self.stats.actions_sent += 1
        try:
            result = actions.run(self.rest, action, self._channel_id, timeout_s, self.settings.hint_device,
                                 self._redirector)
        except BridgeError as exc:
            future.set_exception(exc)
            return future
        if action.name.lower() == "coreshowchannels":
            self._remember_channels({m.get("Channel"): m.get("Uniqueid") for m in result.events})
        future.set_result(result)
        return future

    # --- the link -------------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                ws = self._open()
            except AmiAuthError as exc:
                self.stats.auth_failures += 1
                self._failed(exc, logging.ERROR)
            except (AmiError, OSError, websocket.WebSocketException) as exc:
                self._failed(exc, logging.WARNING)
            except Exception as exc:  # thread top level: log, back off, go on
                log.exception("%s: unexpected error while connecting to ARI", self.name)
                self._failed(exc, logging.ERROR)
            else:
                failures = 0
                self._went_offline(ws, self._read(ws))
                continue
            failures += 1
            self._stop.wait(self.reconnect.delay_s(failures, self._rng))

    def _open(self) -> websocket.WebSocket:
        cfg = self.settings
        info = self.rest.get("asterisk/info", timeout_s=cfg.connect_timeout_s) or {}
        version = str((info.get("system") or {}).get("version") or "")
        token = base64.b64encode(f"{cfg.username}:{cfg.secret}".encode()).decode("ascii")
        sslopt = {"cert_reqs": ssl.CERT_NONE} if not cfg.verify_tls else (
            {"ca_certs": cfg.ca_file} if cfg.ca_file else None)
        try:
            ws = websocket.create_connection(events_url(cfg.url, self.app), timeout=cfg.connect_timeout_s,
                                             header=[f"Authorization: Basic {token}"], sslopt=sslopt,
                                             enable_multithread=True,
                                             # json.loads checks the UTF-8 itself; websocket-client's
                                             # pure-Python check cost 3/4 of the read rate (a flood:
                                             # ~550 → ~2,200 events/s), and Asterisk drops a reader
                                             # that falls behind (ari.conf websocket_write_timeout)
                                             skip_utf8_validation=True)
        except websocket.WebSocketBadStatusException as exc:
            if exc.status_code in (401, 403):
                raise AmiAuthError(f"ARI user {cfg.username!r}: events WebSocket refused with HTTP "
                                   f"{exc.status_code}") from None
            raise AmiConnectionError(f"ARI events WebSocket refused with HTTP {exc.status_code}") from None
        ws.settimeout(cfg.ping_interval_s)
        self._ws = ws
        self.asterisk_version = version or None
        self.banner = Banner(f"{BANNER}/{version}", tuple(int(p) for p in version.split(".") if p.isdigit()))
        with self._channels_lock:
            self._channels.clear()
        self._linkedid_checked = False            # ari.conf may have changed while we were away
        self.stats.connects += 1
        self.stats.reconnects += self.stats.connects > 1
        self._connected.set()
        log.info("%s: ARI connected to %s as app %r (Asterisk %s)", self.name, self.url, self.app, version or "?")
        self._notify("on_connected", self.banner)
        return ws

    def _failed(self, exc: BaseException, level: int) -> None:
        self.stats.connect_failures += 1
        self.stats.last_error = str(exc)
        log.log(level, "%s: ARI %s: %s; retrying with backoff", self.name, self.url, exc)

    def _read(self, ws: websocket.WebSocket) -> str:
        """Frames until the link dies; the reason it died."""
        pinged = False
        while not self._stop.is_set():
            try:
                opcode, data = ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                if pinged:
                    self.stats.ping_timeouts += 1
                    return f"no answer to a WebSocket ping within {self.settings.ping_interval_s:g} s"
                pinged = True
                try:
                    ws.ping()
                except (OSError, websocket.WebSocketException) as exc:
                    return f"ping failed: {exc}"
                continue
            except (OSError, websocket.WebSocketException) as exc:
                return "client stopped" if self._stop.is_set() else f"WebSocket lost: {exc or type(exc).__name__}"
            pinged = False
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return "Asterisk closed the WebSocket"
            if opcode == websocket.ABNF.OPCODE_TEXT:
                self._on_frame(data)
        return "client stopped"

    def _on_frame(self, data: bytes) -> None:
        self.stats.messages += 1
        try:
            event = parse(data)
        except AmiError as exc:
            self.stats.dropped += 1
            log.warning("%s: %s", self.name, exc)
            return
        self._track(event)
        self._watch.offer(event)
        if self._redirector.owns(event):
            # Redirect's helper channel (bridge.ari.redirect) is no party of any call: its events
            # answer our own request and go no further, like an AMI action's response.
            return
        self._dispatch(event)

    def _went_offline(self, ws: websocket.WebSocket, reason: str) -> None:
        self._connected.clear()
        self._ws = None
        self._watch.fail_all(f"{self.name}: ARI link lost before the awaited event: {reason}")
        try:
            ws.close(timeout=1.0)
        except (OSError, websocket.WebSocketException):
            pass
        self.stats.disconnects += 1
        stopping = self._stop.is_set()
        self.stats.last_error = None if stopping else reason
        log.log(logging.INFO if stopping else logging.WARNING, "%s: ARI disconnected from %s: %s",
                self.name, self.url, reason)
        self._notify("on_disconnected", reason)

    # --- channel names → ids ----------------------------------------------------------------------

    def _track(self, event: AriEvent) -> None:
        kind = event.event
        if kind in ("ChannelCreated", "ChannelDestroyed"):
            name, uid = event.get("channel.name"), event.get("channel.id")
            if name and uid:
                with self._channels_lock:
                    if kind == "ChannelCreated":
                        self._channels[name] = uid
                    else:
                        self._channels.pop(name, None)
            if kind == "ChannelCreated" and not self._linkedid_checked:
                self._linkedid_checked = True
                if event.get(f"channel.{LINKEDID}") is None:
                    log.warning("%s: ARI channels carry no Linkedid: add `channelvars = CHANNEL(linkedid)` to "
                                "[general] of ari.conf; until then calls are linked by their Dial events and an "
                                "attended transfer's target is reported as a call of its own (docs/ami.md, ARI)",
                                self.name)

    def _remember_channels(self, found: dict) -> None:
        with self._channels_lock:
            self._channels.update({k: v for k, v in found.items() if k and v})

    def _channel_id(self, name: str) -> str | None:
        with self._channels_lock:
            uid = self._channels.get(name)
        if uid is None:   # created before we connected and no resync yet: ask
            for channel in self.rest.get("channels") or []:
                if isinstance(channel, dict) and channel.get("name") == name:
                    return str(channel.get("id"))
        return uid
