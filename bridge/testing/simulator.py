"""A real TCP AMI server on loopback that behaves like Asterisk 11 or 22, for tests, demos and load."""

from __future__ import annotations

import argparse
import itertools
import logging
import random
import re
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from bridge.ami import names
from bridge.testing import sim_channels, sim_flood
from bridge.ami.message import Message
from bridge.testing.sim_ajam import AjamFront
from bridge.testing.sim_channels import ChannelRegistry, Value
from bridge.testing.sim_session import SimSession, encode_message

log = logging.getLogger(__name__)

__all__ = ["AmiSimulator", "FloodJob", "main"]

ACCEPT_POLL_S = 0.2
PROFILES = ("asterisk11", "asterisk20")
VERSION_LINES = {"asterisk11": "Asterisk 11.25.3 built by root @ simulator on a x86_64 running Linux",
                 "asterisk20": "Asterisk 22.10.1 built by root @ simulator on a x86_64 running Linux"}
FLOOD_BATCH_S = 0.01   # floods send in slices this long, so high rates need no per-event sleep
_CALLERID = re.compile(r'^\s*"?([^"<]*?)"?\s*<([^>]*)>\s*$')


class FloodJob(threading.Thread):
    """A flood in progress (or finished): `.sent` events so far, `.matched` of them matching."""

    def __init__(self, sim: "AmiSimulator", rate_per_s: float, count: int, match_ratio: float, seed: int) -> None:
        super().__init__(name="ami-sim-flood", daemon=True)
        self.sim, self.rate_per_s, self.count = sim, rate_per_s, count
        self.match_ratio, self.seed = match_ratio, seed
        self.sent = 0
        self.matched = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        events = sim_flood.mixed_events(self.sim.profile, self.count, self.match_ratio, self.seed)
        started = time.monotonic()
        for pairs, matched in events:
            if self._stop_event.is_set():
                return
            self.sim.emit(pairs)
            self.sent += 1
            self.matched += matched
            ahead_s = self.sent / self.rate_per_s - (time.monotonic() - started)
            if ahead_s > FLOOD_BATCH_S:
                self._stop_event.wait(ahead_s)

    def stop(self) -> None:
        self._stop_event.set()


class AmiSimulator:
    """Speaks AMI like Asterisk; plays bridge.testing.scenarios calls and tracks the live channels."""

    def __init__(self, profile: str = "asterisk20", host: str = "127.0.0.1", port: int = 0,
                 users: Mapping[str, str] | None = None, *, seed: int = 0, time_scale: float = 1.0,
                 originate_outcomes: Mapping[str, str] | None = None, tls_cert: str | None = None,
                 tls_key: str | None = None, timestamp_events: bool = False, http_port: int | None = None,
                 httptimeout_s: float = 60.0) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; use one of {', '.join(PROFILES)}")
        self.profile, self.host, self.port = profile, host, port
        self.users = dict(users if users is not None else {"bridge": "secret"})
        self.time_scale = time_scale  # multiplies scenario delays; tests use ~0.01
        # manager.conf `timestampevents = yes`: scenario events carry `Timestamp` (their scripted
        # time, unscaled), so a fast test run still shows the call's real durations.
        self.timestamp_events = timestamp_events
        self.tech = "SIP" if profile == "asterisk11" else "PJSIP"
        # Originate outcome per dialled extension ("answered", "noanswer", "busy", "failed").
        self.originate_outcomes = dict(originate_outcomes or {})
        self.channels = ChannelRegistry()
        self._tls: ssl.SSLContext | None = None
        if tls_cert:  # AMI over TLS (manager.conf tlsenable=yes, port 5039 by default)
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(tls_cert, tls_key)
        self.received_actions: list[Message] = []
        self.extra_actions: dict[str, Callable[[SimSession, Message], None]] = {}
        self.resumed = threading.Event()
        self.resumed.set()
        self._rng = random.Random(seed)
        self._seq = itertools.count(1)
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._sessions: list[SimSession] = []
        self._workers: list[threading.Thread] = []
        self._stop_event = threading.Event()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        # AJAM: the same scenarios over HTTP (rawman/arawman) when http_port is given (0: any free port).
        self.http_port, self.httptimeout_s = http_port, httptimeout_s
        self.ajam: AjamFront | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> "AmiSimulator":
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        listener.settimeout(ACCEPT_POLL_S)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, name="ami-sim-accept", daemon=True)
        self._acceptor.start()
        if self.http_port is not None:
            self.ajam = AjamFront(self, self.host, self.http_port, httptimeout_s=self.httptimeout_s).start()
            self.http_port = self.ajam.port  # keep the port: stop() then start() reuses it
        return self

    def stop(self) -> None:
        self._stop_event.set()
        self.resumed.set()
        if self.ajam is not None:
            self.ajam.stop()
            self.ajam = None
        for worker in list(self._workers):
            if isinstance(worker, FloodJob):
                worker.stop()
        if self._acceptor is not None:
            self._acceptor.join(2.0)
        if self._listener is not None:
            self._listener.close()
        for session in self.sessions:
            session.close("simulator stopped")
            session.join(2.0)

    def __enter__(self) -> "AmiSimulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop_event.is_set():
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:  # the handshake happens on the session's thread
                sock = self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            session = SimSession(self, sock, next(self._numbers))
            with self._lock:
                self._sessions.append(session)
            session.start()

    # --- what tests look at ---------------------------------------------------------------------

    @property
    def sessions(self) -> list[SimSession]:
        with self._lock:
            return list(self._sessions)

    @property
    def stalled(self) -> bool:
        return not self.resumed.is_set()

    def logged_in_count(self) -> int:
        return sum(s.logged_in for s in self.sessions)

    def wait_logged_in(self, count: int = 1, timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.logged_in_count() < count:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def actions_named(self, name: str) -> list[Message]:
        with self._lock:
            return [m for m in self.received_actions if (m.get(names.ACTION) or "").lower() == name.lower()]

    def record_action(self, msg: Message) -> None:
        with self._lock:
            self.received_actions.append(msg)

    def attach(self, session: SimSession) -> None:
        """Add a session that has no TCP socket of its own (an AJAM session): it gets events too."""
        with self._lock:
            self._sessions.append(session)

    def forget(self, session: SimSession) -> None:
        with self._lock:
            if session in self._sessions:
                self._sessions.remove(session)

    # --- traffic --------------------------------------------------------------------------------

    def emit(self, pairs: Iterable[tuple[str, Value]] | Mapping[str, Value]) -> None:
        """Send one event to every logged-in session that wants it; str values go as UTF-8, bytes as-is."""
        items = list(pairs.items() if isinstance(pairs, Mapping) else pairs)
        self.channels.observe(items)
        data = encode_message(items)
        text = "\r\n".join(f"{k}: {v if isinstance(v, str) else v.decode('cp1251', 'replace')}" for k, v in items)
        privilege = next((v for k, v in items if k.lower() == "privilege" and isinstance(v, str)), "")
        for session in self.sessions:
            if session.wants(privilege, text):
                session.send(data)

    def flood(self, rate_per_s: float, count: int, match_ratio: float = 0.2, *, block: bool = True,
              seed: int | None = None) -> FloodJob:
        """Emit `count` mixed events at `rate_per_s`; `match_ratio` of them dial extension 902."""
        job = FloodJob(self, rate_per_s, count, match_ratio, self._rng.randrange(2**31) if seed is None else seed)
        self._workers = [w for w in self._workers if w.is_alive()] + [job]
        job.start()
        if block:
            job.join()
        return job

    def replay(self, path: str | Path, skip_banner: bool = True) -> int:
        """Send a raw capture to every logged-in session byte for byte; returns the bytes sent.

        Its banner line is skipped by default: the client already got ours, and a second banner
        inside the stream would be read as the start of a message.
        """
        data = Path(path).read_bytes()
        if skip_banner and data.startswith(names.BANNER_PREFIX.encode()):
            data = data[data.index(b"\n") + 1:]
        for session in self.sessions:
            if session.logged_in:
                session.send(data)
        return len(data)

    def drop_connections(self, mid_message: bool = False) -> int:
        """Close every session; with mid_message, after sending the first half of an event."""
        partial = b""
        if mid_message:
            whole = encode_message(sim_flood.matching_event(self.profile, 0, random.Random(0)))
            partial = whole[: len(whole) // 2]
        sessions = self.sessions
        for session in sessions:
            session.cut(partial if session.logged_in else b"")
        return len(sessions)

    def stall(self) -> None:
        """Stop reading and sending (connections stay open), like a wedged Asterisk."""
        self.resumed.clear()

    def resume(self) -> None:
        self.resumed.set()
        for session in self.sessions:
            session.flush_backlog()

    # --- calls ----------------------------------------------------------------------------------

    def run_scenario(self, scenario: str, *, wait: bool = False, **kw: object) -> str:
        """Play a bridge.testing.scenarios call to all clients with its timing; returns the call's id."""
        from bridge.testing import scenarios  # owned by helper "calls"

        steps = scenarios.call_events(self.profile, scenario, seq=next(self._seq), **kw)
        call_id = _call_id(steps)
        player = threading.Thread(target=self._play, args=(steps,), name=f"ami-sim-{scenario}", daemon=True)
        self._workers = [w for w in self._workers if w.is_alive()] + [player]
        player.start()
        if wait:
            player.join()
        return call_id

    def _play(self, steps: Sequence) -> None:
        scripted = time.time()
        for step in steps:
            if step.delay_s > 0 and self._stop_event.wait(step.delay_s * self.time_scale):
                return
            scripted += step.delay_s
            headers = list(step.headers)
            if self.timestamp_events:   # Asterisk puts it right after Privilege
                headers.insert(2, ("Timestamp", f"{scripted:.6f}"))
            self.emit(headers)

    def originate(self, msg: Message, wait: bool) -> str:
        """Play the `originate` scenario for an Originate action; returns the outcome."""
        channel = msg.get("Channel") or ""
        exten = msg.get("Exten") or msg.get("Application") or ""
        outcome = self.originate_outcomes.get(exten, "answered")
        match = _CALLERID.match(msg.get("CallerID") or "")
        device = sim_channels.Channel(channel, "", "").device or channel
        kw: dict[str, object] = dict(channel=channel, context=msg.get("Context") or "default", exten=exten,
                                     action_id=msg.action_id or "", outcome=outcome, caller=device,
                                     callee=exten)
        if match:
            kw["caller_name"] = match.group(1).strip()
        if self.profile != "asterisk11" and msg.get("ChannelId"):
            kw["channel_id"] = msg.get("ChannelId")  # Asterisk 13+ honours ChannelId as the Uniqueid
        self.run_scenario("originate", wait=wait, **kw)
        return outcome

    def hangup_channel(self, channel: str, cause: int = 16) -> bool:
        found = self.channels.find(channel)
        if found is None:
            return False
        snapshot = [("Channel", found.channel), ("Uniqueid", found.uniqueid)]
        if self.profile != "asterisk11":
            snapshot.append(("Linkedid", found.linkedid))
        self.emit([("Event", "HangupRequest"), ("Privilege", "call,all"), *snapshot, ("Cause", str(cause))])
        self.emit([("Event", "Hangup"), ("Privilege", "call,all"), *snapshot,
                   ("CallerIDNum", found.caller_num), ("CallerIDName", found.caller_name),
                   ("Cause", str(cause)), ("Cause-txt", "Normal Clearing" if cause == 16 else "Unknown")])
        return True

    def redirect_channel(self, channel: str, context: str, exten: str, priority: str) -> bool:
        found = self.channels.find(channel)
        if found is None:
            return False
        self.emit([("Event", "Newexten"), ("Privilege", "dialplan,all"), ("Channel", channel),
                   ("Context", context or found.context), ("Exten", exten), ("Priority", priority),
                   ("Uniqueid", found.uniqueid), ("Extension", exten),
                   ("Application", "Dial"), ("AppData", f"{self.tech}/{exten},30")])
        return True

    def command_output(self, command: str) -> list[str] | None:
        if command == "core show version":
            return [VERSION_LINES[self.profile]]
        if command in ("core show channels", "core show channels concise"):
            return sim_channels.channels_text(self.channels.snapshot())
        if command == "core show uptime":
            return ["System uptime: 3 seconds", "Last reload: 3 seconds"]
        return None


def _call_id(steps: Sequence) -> str:
    for key in ("Linkedid", "Uniqueid", "UniqueID"):
        for step in steps:
            for k, v in step.headers:
                if k == key and v and not v.startswith("<"):
                    return v
    return ""


# --- CLI: python -m bridge.testing.simulator ----------------------------------------------------------

def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bridge.testing.simulator",
                                     description="AMI simulator speaking like Asterisk 11 or 22.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5038)
    parser.add_argument("--profile", choices=PROFILES, default="asterisk20")
    parser.add_argument("--calls-per-minute", type=float, default=6.0, help="random call scenarios (0: none)")
    parser.add_argument("--users", default="bridge:secret", help="user:secret[,user:secret…]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--http-port", type=int, default=None,
                        help="also serve AJAM (rawman/arawman under /asterisk/) on this port")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    users = dict(pair.split(":", 1) for pair in args.users.split(",") if ":" in pair)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sim = AmiSimulator(args.profile, args.host, args.port, users, seed=args.seed, http_port=args.http_port).start()
    print(f"AMI simulator ({args.profile}) on {sim.host}:{sim.port}, users: {', '.join(users)}", flush=True)
    if sim.ajam is not None:
        print(f"AJAM on {sim.ajam.url}rawman (cookie) and {sim.ajam.url}arawman (digest)", flush=True)
    rng = random.Random(args.seed)
    try:
        while True:
            if args.calls_per_minute <= 0:
                time.sleep(3600)
                continue
            time.sleep(rng.expovariate(args.calls_per_minute / 60.0))
            scenario = rng.choice(("answered", "answered", "noanswer", "busy", "caller-hangup-ringing", "queue"))
            caller, callee = str(rng.randint(200, 299)), rng.choice(("902", "903", "904"))
            call_id = sim.run_scenario(scenario, caller=caller, callee=callee,
                                       caller_name=rng.choice(sim_flood.NAMES_UTF8))
            log.info("call %s: %s %s → %s", call_id, scenario, caller, callee)
    except KeyboardInterrupt:
        return 0
    finally:
        sim.stop()


if __name__ == "__main__":
    raise SystemExit(main())
