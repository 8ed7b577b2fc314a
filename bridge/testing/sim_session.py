"""One client connection to the AMI simulator: reads actions and answers them the way Asterisk does."""

from __future__ import annotations

import logging
import random
import re
import select
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING, Callable, Sequence

from bridge.ami import names
from bridge.testing import sim_channels
from bridge.ami.auth import md5_key
from bridge.ami.message import NEED_DATA, Message
from bridge.ami.protocol import AmiParser
from bridge.testing.sim_channels import Value

if TYPE_CHECKING:
    from bridge.testing.simulator import AmiSimulator

log = logging.getLogger(__name__)

READ_POLL_S = 0.2
# Asterisk drops a client that does not read within `writetimeout` (100 ms by default,
# manager.conf); the simulator is more patient so slow test machines are not punished.
WRITE_TIMEOUT_S = 5.0
BANNERS = {"asterisk11": "Asterisk Call Manager/1.3", "asterisk20": "Asterisk Call Manager/11.0.0"}
VERSIONS = {"asterisk11": ("1.3", "11.25.3"), "asterisk20": ("11.0.0", "22.10.1")}
_PRE_LOGIN = {"login", "challenge", "logoff"}


def encode_message(pairs: Sequence[tuple[str, Value]]) -> bytes:
    """`Key: Value` CRLF lines + empty line; str values as UTF-8, bytes values sent as they are (cp1251)."""
    out = bytearray()
    for key, value in pairs:
        out += key.encode("ascii") + b": " + (value if isinstance(value, bytes) else value.encode("utf-8")) + b"\r\n"
    out += b"\r\n"
    return bytes(out)


class SimSession(threading.Thread):
    """Reader thread of one simulated AMI session; writes come from any thread under a lock."""

    def __init__(self, sim: "AmiSimulator", sock: socket.socket, number: int) -> None:
        super().__init__(name=f"ami-sim-session-{number}", daemon=True)
        self.sim = sim
        self.sock = sock
        self.number = number
        self.username: str | None = None
        self.events_mask = "on"
        self.filters: list[tuple[bool, re.Pattern[str]]] = []  # (allow?, pattern)
        self._challenge: str | None = None
        self._write_lock = threading.Lock()
        self._backlog: list[bytes] = []
        self._stop_event = threading.Event()
        self.closed = threading.Event()
        sock.settimeout(WRITE_TIMEOUT_S)

    @property
    def logged_in(self) -> bool:
        return self.username is not None and not self.closed.is_set()

    # --- output ---------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        with self._write_lock:
            if self.closed.is_set():
                return
            if self.sim.stalled:
                self._backlog.append(data)
                return
            try:
                self.sock.sendall(data)
            except OSError as exc:  # socket.timeout included: the client stopped reading
                self._close_locked(f"write failed: {exc}")

    def answer(self, data: bytes) -> None:
        """What an action answers (response, list events): on TCP, the same stream as events; the
        AJAM side (sim_ajam.py) puts it in the HTTP body instead."""
        self.send(data)

    def reply(self, msg: Message, *pairs: tuple[str, Value], response: str = names.SUCCESS) -> None:
        head: list[tuple[str, Value]] = [(names.RESPONSE, response)]
        if msg.action_id is not None:
            head.append((names.ACTION_ID, msg.action_id))
        self.answer(encode_message(head + list(pairs)))

    def error(self, msg: Message, text: str) -> None:
        self.reply(msg, (names.MESSAGE, text), response=names.ERROR)

    def flush_backlog(self) -> None:
        with self._write_lock:
            backlog, self._backlog = self._backlog, []
            for data in backlog:
                try:
                    self.sock.sendall(data)
                except OSError as exc:
                    self._close_locked(f"write failed: {exc}")
                    return

    def wants(self, privilege: str, text: str) -> bool:
        """Would Asterisk send this event to this session (Events mask, then Filter regexes)?"""
        if not self.logged_in or self.events_mask == "off":
            return False
        if self.events_mask != "on":
            classes = {c.strip().lower() for c in self.events_mask.split(",")}
            if not classes & {c.strip().lower() for c in privilege.split(",")}:
                return False
        allows = [p for allow, p in self.filters if allow]
        if allows and not any(p.search(text) for p in allows):
            return False
        return not any(p.search(text) for allow, p in self.filters if not allow)

    def cut(self, partial: bytes) -> None:
        """Send `partial` (half a message) and drop the connection, like a crashing Asterisk."""
        with self._write_lock:
            try:
                if partial:
                    self.sock.sendall(partial)
            except OSError:
                pass
            self._close_locked("dropped by the simulator")

    def close(self, reason: str = "closed") -> None:
        with self._write_lock:
            self._close_locked(reason)

    def _close_locked(self, reason: str) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self._stop_event.set()
        log.debug("simulator session %d closed: %s", self.number, reason)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    stop = close

    # --- input ----------------------------------------------------------------------------------

    def run(self) -> None:
        parser = AmiParser(expect_banner=False)
        try:
            if isinstance(self.sock, ssl.SSLSocket):
                self.sock.do_handshake()
            self.send((BANNERS[self.sim.profile] + "\r\n").encode("ascii"))
            while not self._stop_event.is_set():
                if self.sim.stalled:
                    self.sim.resumed.wait(READ_POLL_S)  # stalled: read nothing, answer nothing
                    continue
                buffered = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
                readable = buffered or select.select([self.sock], [], [], READ_POLL_S)[0]
                if not readable:
                    continue
                data = self.sock.recv(65536)
                if not data:
                    break
                parser.feed(data)
                while (msg := parser.next_message()) is not NEED_DATA and not self.closed.is_set():
                    self.sim.record_action(msg)
                    self.handle(msg)
        except (OSError, ValueError):
            pass  # closed under us by drop_connections() or stop()
        finally:
            self.close("client went away")
            self.sim.forget(self)

    def handle(self, msg: Message) -> None:
        name = (msg.get(names.ACTION) or "").lower()
        if self.username is None and name not in _PRE_LOGIN:
            self.error(msg, "Permission denied")
            return
        handler: Callable[[Message], None] | None = getattr(self, f"_action_{name}", None)
        if handler is None or not name.isidentifier():
            extra = self.sim.extra_actions.get(name)
            if extra is not None:
                extra(self, msg)
                return
            self.error(msg, f"Invalid/unknown command: {msg.get(names.ACTION)}. "
                            f"Use Action: ListCommands to show available commands.")
            return
        handler(msg)

    # --- login and session actions (shapes: login-md5-ok-*.ami, login-failed-22.10.1.ami) ----------

    def _action_challenge(self, msg: Message) -> None:
        if (msg.get("AuthType") or "").lower() != "md5":
            self.error(msg, "Must specify AuthType")
            return
        self._challenge = str(random.randrange(10**8, 10**9))
        self.reply(msg, ("Challenge", self._challenge))

    def _action_login(self, msg: Message) -> None:
        user = msg.get("Username") or ""
        secret = self.sim.users.get(user)
        if (msg.get("AuthType") or "").lower() == "md5":
            ok = secret is not None and self._challenge is not None and \
                msg.get("Key") == md5_key(self._challenge, secret)
        else:
            ok = secret is not None and msg.get("Secret") == secret
        if not ok:
            self.error(msg, "Authentication failed")
            self.close("authentication failed")  # Asterisk closes the session after a failed login
            return
        self.username = user
        self.events_mask = (msg.get("Events") or "on").strip().lower()
        self.reply(msg, (names.MESSAGE, "Authentication accepted"))
        booted: list[tuple[str, Value]] = [("Event", "FullyBooted"), ("Privilege", "system,all")]
        if self.sim.profile != "asterisk11":
            booted += [("Uptime", "3"), ("LastReload", "3")]
        booted.append(("Status", "Fully Booted"))
        if self.wants("system,all", "Event: FullyBooted"):
            self.send(encode_message(booted))

    def _action_logoff(self, msg: Message) -> None:
        self.reply(msg, (names.MESSAGE, "Thanks for all the fish."), response=names.GOODBYE)
        self.close("logoff")

    def _action_ping(self, msg: Message) -> None:
        self.reply(msg, ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}"))

    def _action_events(self, msg: Message) -> None:
        self.events_mask = (msg.get("EventMask") or "off").strip().lower()
        self.reply(msg, ("Events", "Off" if self.events_mask == "off" else "On"))

    def _action_filter(self, msg: Message) -> None:
        if self.sim.profile == "asterisk11":  # the Filter action arrived in Asterisk 13
            self.error(msg, "Invalid/unknown command: Filter. Use Action: ListCommands to show available commands.")
            return
        line = msg.get("Filter") or ""
        allow = not line.startswith("!")
        try:
            pattern = re.compile(line if allow else line[1:])
        except re.error:
            self.error(msg, "Filter Not Added")
            return
        self.filters.append((allow, pattern))
        self.reply(msg, (names.MESSAGE, "Success"))

    def _action_coresettings(self, msg: Message) -> None:
        ami, asterisk = VERSIONS[self.sim.profile]
        self.reply(msg, ("AMIversion", ami), ("AsteriskVersion", asterisk), ("SystemName", ""),
                   ("CoreMaxCalls", "0"), ("CoreMaxLoadAvg", "0.000000"), ("CoreRunUser", ""),
                   ("CoreRunGroup", ""), ("CoreMaxFilehandles", "0"), ("CoreRealTimeEnabled", "No"),
                   ("CoreCDRenabled", "Yes"), ("CoreHTTPenabled", "No"))

    def _action_command(self, msg: Message) -> None:
        command = " ".join((msg.get("Command") or "").split())
        lines = self.sim.command_output(command)
        ok = lines is not None
        if lines is None:
            lines = [f"No such command '{command}' (type 'core show help {command}' for other possible commands)"]
        if self.sim.profile == "asterisk11":
            # Asterisk <= 13: headers in CRLF, raw output in bare LF, then --END COMMAND--.
            head = "Response: Follows\r\nPrivilege: Command\r\n"
            if msg.action_id is not None:
                head += f"ActionID: {msg.action_id}\r\n"
            body = "".join(line + "\n" for line in lines)
            self.answer((head + body + names.END_COMMAND + "\r\n\r\n").encode("utf-8"))
            return
        self.reply(msg, (names.MESSAGE, "Command output follows"), *[(names.OUTPUT, line) for line in lines],
                   response=names.SUCCESS if ok else names.ERROR)

    # --- channel actions ----------------------------------------------------------------------

    def _action_coreshowchannels(self, msg: Message) -> None:
        self._list(msg, "Channels will follow", "CoreShowChannelsComplete",
                   [sim_channels.core_show_channel(self.sim.profile, c, msg.action_id, time.monotonic())
                    for c in self.sim.channels.snapshot()])

    def _action_status(self, msg: Message) -> None:
        wanted = msg.get("Channel")
        chans = self.sim.channels.snapshot()
        if wanted:
            chans = [c for c in chans if c.channel == wanted]
            if not chans:
                self.error(msg, "No such channel")
                return
        events = [sim_channels.status_event(self.sim.profile, c, msg.action_id, time.monotonic()) for c in chans]
        self._list(msg, "Channel status will follow", "StatusComplete", events, items=True)

    def _list(self, msg: Message, message: str, complete: str, events: list, items: bool = False) -> None:
        aid: list[tuple[str, Value]] = [(names.ACTION_ID, msg.action_id)] if msg.action_id is not None else []
        if self.sim.profile == "asterisk11" and complete == "StatusComplete":
            # Asterisk 11: Status answers without EventList, StatusComplete has only Items.
            self.reply(msg, (names.MESSAGE, message))
            tail = [("Event", complete), *aid, ("Items", str(len(events)))]
        else:
            self.reply(msg, (names.EVENT_LIST, "start"), (names.MESSAGE, message))
            tail = [("Event", complete), *aid, (names.EVENT_LIST, "Complete"), ("ListItems", str(len(events)))]
            if items:
                tail.append(("Items", str(len(events))))
        self.answer(b"".join(encode_message(e) for e in events) + encode_message(tail))

    def _action_extensionstate(self, msg: Message) -> None:
        exten, context = msg.get("Exten") or "", msg.get("Context") or "default"
        code = self.sim.channels.extension_state(exten)
        hint = f"{self.sim.tech}/{exten}" if sim_channels.has_hint(exten) else ""
        pairs: list[tuple[str, Value]] = [(names.MESSAGE, "Extension Status"), ("Exten", exten),
                                          ("Context", context), ("Hint", hint), ("Status", str(code))]
        if self.sim.profile != "asterisk11":
            pairs.append(("StatusText", sim_channels.status_text(code)))
        self.reply(msg, *pairs)

    def _action_hangup(self, msg: Message) -> None:
        channel = msg.get("Channel") or ""
        if not self.sim.hangup_channel(channel, int(msg.get("Cause") or 16)):
            self.error(msg, "No such channel")
            return
        self.reply(msg, (names.MESSAGE, "Channel Hungup"))

    def _action_redirect(self, msg: Message) -> None:
        channel = msg.get("Channel") or ""
        exten, context = msg.get("Exten") or "", msg.get("Context") or ""
        if not exten:
            self.error(msg, "Exten not specified")
            return
        if not self.sim.redirect_channel(channel, context, exten, msg.get("Priority") or "1"):
            self.error(msg, f"Channel does not exist: {channel}")
            return
        self.reply(msg, (names.MESSAGE, "Redirect successful"))

    def _action_originate(self, msg: Message) -> None:
        if not msg.get("Channel"):
            self.error(msg, "Channel not specified")
            return
        if not msg.get("Exten") and not msg.get("Application"):
            self.error(msg, "Exten not specified")
            return
        if (msg.get("Async") or "").lower() in ("true", "yes", "1", "on"):
            self.reply(msg, (names.MESSAGE, "Originate successfully queued"))
            self.sim.originate(msg, wait=False)
            return
        outcome = self.sim.originate(msg, wait=True)
        if outcome == "answered":
            self.reply(msg, (names.MESSAGE, "Originate successfully queued"))
        else:
            self.error(msg, "Originate failed")
