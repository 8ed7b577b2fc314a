"""Play each simulator scenario on the real Asterisk 22.10.1 and save the raw AMI captures.

    BRIDGE_ASTERISK_DIR=/path/to/shared/asterisk .venv/bin/python -m tests.fidelity.record [NAME…]

writes tests/fixtures/ami/asterisk-22.10.1/live-<scenario>-22.10.1.ami (what Asterisk sent) and
.sent (what we sent). Dialplan and queue: tests/fidelity/etc/. One AMI session per scenario:
login, the actions that make the call, every byte until all its channels hung up, logoff.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

from tests.fidelity.live import SECRET, USER, Asterisk, RawSession, asterisk_dir

OUT = Path(__file__).resolve().parents[1] / "fixtures" / "ami" / "asterisk-22.10.1"
OPERATOR = "Оператор-202 <202>"          # the simulator's default caller
OUTSIDE = "Иван Петров <79161234567>"     # the simulator's queue caller


def _originate(s: RawSession, action_id: str, channel: str, *extra: tuple[str, str]) -> None:
    s.send(("Action", "Originate"), ("ActionID", action_id), ("Channel", channel), *extra,
           ("Async", "true"))


def _wait_app(seconds: int) -> tuple[tuple[str, str], ...]:
    return (("Application", "Wait"), ("Data", str(seconds)))


def _channel(s: RawSession, prefix: str, timeout: float = 5.0) -> str:
    """The name of the first channel whose name starts with `prefix` (e.g. the caller's ;2)."""
    m = s.wait_for(lambda m: m.event == "Newchannel" and (m.get("Channel") or "").startswith(prefix)
                   and (m.get("Channel") or "").endswith(";2"), timeout)
    return m.get("Channel") or ""


def answered(s: RawSession) -> None:
    _originate(s, "sim-answered", "Local/202@sim-answered", *_wait_app(30), ("CallerID", OPERATOR))


def noanswer(s: RawSession) -> None:
    _originate(s, "sim-noanswer", "Local/202@sim-noanswer", *_wait_app(30), ("CallerID", OPERATOR))


def busy(s: RawSession) -> None:
    _originate(s, "sim-busy", "Local/202@sim-busy", *_wait_app(30), ("CallerID", OPERATOR))


def caller_hangup_ringing(s: RawSession) -> None:
    _originate(s, "sim-cancel", "Local/202@sim-cancel", *_wait_app(30), ("CallerID", OPERATOR))
    caller = _channel(s, "Local/202@sim-cancel")
    s.pump(2.0)   # 902 rings 2 s, then the caller's phone hangs up
    s.send(("Action", "Hangup"), ("ActionID", "sim-cancel-hangup"), ("Channel", caller))


def queue(s: RawSession) -> None:
    # The caller talks 3 s after member 902 answers, then hangs up (the ;1 Wait ends).
    _originate(s, "sim-queue", "Local/600@from-trunk", *_wait_app(3), ("CallerID", OUTSIDE))


def blind_transfer(s: RawSession) -> None:
    # 902 answers after 2 s; 3 s later the caller's leg is redirected to 903, which answers
    # after 2 s; 3 s later the caller hangs up: the ;1 Wait (from the caller's own Answer) covers 2 + 3 + 2 + 3 s.
    _originate(s, "sim-transfer", "Local/202@sim-transfer", *_wait_app(10), ("CallerID", OPERATOR))
    caller = _channel(s, "Local/202@sim-transfer")
    s.wait_for(lambda m: m.event == "BridgeEnter" and (m.get("Channel") or "") == caller, 10)
    s.pump(3.0)
    s.send(("Action", "Redirect"), ("ActionID", "sim-transfer-redirect"), ("Channel", caller),
           ("Context", "sim-xfer"), ("Exten", "903"), ("Priority", "1"))


def _originate_outcome(phone_context: str, action_id: str, *extra: tuple[str, str]):
    def play(s: RawSession) -> None:
        # ClickToCall shape: the operator's phone first, then it dials 902 in from-internal.
        _originate(s, action_id, f"Local/202@{phone_context}", ("Context", "from-internal"),
                   ("Exten", "902"), ("Priority", "1"), ("CallerID", OPERATOR),
                   ("ChannelId", f"{action_id}-chan"), *extra)
    return play


SCENARIOS: dict[str, Callable[[RawSession], None]] = {
    "answered": answered,
    "noanswer": noanswer,
    "busy": busy,
    "caller-hangup-ringing": caller_hangup_ringing,
    "queue": queue,
    "blind-transfer": blind_transfer,
    "originate-answered": _originate_outcome("sim-operator", "sim-orig-answered"),
    "originate-noanswer": _originate_outcome("sim-phone-ring", "sim-orig-noanswer", ("Timeout", "2000")),
    "originate-busy": _originate_outcome("sim-phone-busy", "sim-orig-busy"),
    "originate-failed": _originate_outcome("sim-nowhere", "sim-orig-failed"),
}
# Recorded too, though the simulator does not offer it: ClickToCall whose number is queue 600.
EXTRA: dict[str, Callable[[RawSession], None]] = {
    "originate-queue": lambda s: _originate(
        s, "sim-orig-queue", "Local/202@sim-operator-q", ("Context", "from-internal"),
        ("Exten", "600"), ("Priority", "1"), ("CallerID", OPERATOR), ("ChannelId", "sim-orig-queue-chan")),
}


def _settled(s: RawSession, quiet_s: float = 1.5, timeout: float = 40.0) -> None:
    """Read until every channel that appeared has hung up and nothing came for `quiet_s`."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        new = s.pump(quiet_s)
        born = {m.get("Uniqueid") for m in s.messages if m.event == "Newchannel"}
        dead = {m.get("Uniqueid") for m in s.messages if m.event == "Hangup"}
        responded = any(m.event == "OriginateResponse" for m in s.messages)
        if not new and born <= dead and responded:
            return
    raise TimeoutError("the scenario's channels did not all hang up")


def record(port: int, name: str) -> tuple[bytes, bytes]:
    s = RawSession(port)
    try:
        s.pump(0.3)   # banner
        s.send(("Action", "Login"), ("ActionID", f"{name}-login"), ("Username", USER), ("Secret", SECRET))
        s.wait_for(lambda m: m.get("ActionID") == f"{name}-login", 5)
        {**SCENARIOS, **EXTRA}[name](s)
        _settled(s)
        s.send(("Action", "Logoff"), ("ActionID", f"{name}-logoff"))
        s.pump(1.0)
        return bytes(s.received), bytes(s.sent)
    finally:
        s.close()


def main(names: list[str]) -> int:
    home = asterisk_dir()
    if home is None:
        print("no shared Asterisk: set BRIDGE_ASTERISK_DIR", file=sys.stderr)
        return 2
    pbx = Asterisk(home)
    pbx.start()
    try:
        for name in names or [*SCENARIOS, *EXTRA]:
            received, sent = record(pbx.ami_port, name)
            (OUT / f"live-{name}-22.10.1.ami").write_bytes(received)
            (OUT / f"live-{name}-22.10.1.sent").write_bytes(sent)
            print(f"live-{name}-22.10.1.ami: {len(received)} bytes")
    finally:
        pbx.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
