"""The AMI simulator (bridge/testing/simulator.py) spoken to with raw sockets, as Asterisk would be."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from bridge.testing import scenarios
from bridge.ami.auth import md5_key
from bridge.ami.actions import Action
from bridge.ami.message import NEED_DATA, Banner, Message
from bridge.ami.protocol import AmiParser
from bridge.testing.simulator import AmiSimulator
from bridge.testing.helpers import wait_until
from tests.ami.conftest import WAIT_S
from tests.conftest import AMI_FIXTURES

SECRET = "s3cret-Пароль"


class RawAmi:
    """A bare socket plus our parser: what a test needs to see the simulator's exact answers."""

    def __init__(self, sim: AmiSimulator) -> None:
        self.sock = socket.create_connection((sim.host, sim.port), timeout=WAIT_S)
        self.parser = AmiParser()
        self.raw = bytearray()

    def send(self, name: str, **fields) -> None:
        action_id = fields.pop("ActionID", None)
        self.sock.sendall(Action.build(name, action_id=action_id, **fields).encode())

    def next(self, timeout_s: float = WAIT_S):
        self.sock.settimeout(timeout_s)
        while (msg := self.parser.next_message()) is NEED_DATA:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.raw += data
            self.parser.feed(data)
        return msg

    def answer(self, name: str, **fields) -> Message:
        self.send(name, **fields)
        while isinstance(msg := self.next(), Message) and not msg.is_response:
            pass
        assert msg is not None, "connection closed"
        return msg

    def login(self) -> None:
        assert isinstance(self.next(), Banner)
        assert self.answer("Login", Username="bridge", Secret=SECRET).get("Message") == "Authentication accepted"

    def events_until_closed(self) -> list[Message]:
        out = []
        while (msg := self.next()) is not None:
            out.append(msg)
        return out


@pytest.fixture
def raw(sim):
    conn = RawAmi(sim)
    yield conn
    conn.sock.close()


@pytest.mark.parametrize("profile, banner", [("asterisk11", "1.3"), ("asterisk20", "11.0.0")], indirect=["profile"])
def test_banner_matches_profile_when_client_connects(raw, profile, banner):
    msg = raw.next()
    assert isinstance(msg, Banner) and msg.version_text == banner
    assert raw.raw.startswith(f"Asterisk Call Manager/{banner}\r\n".encode())


def test_md5_login_accepted_when_key_is_md5_of_challenge_and_secret(raw):
    raw.next()
    challenge = raw.answer("Challenge", AuthType="MD5").get("Challenge")
    assert challenge and challenge.isdigit()
    ok = raw.answer("Login", AuthType="MD5", Username="bridge", Key=md5_key(challenge, SECRET))
    assert ok.response == "Success" and ok.get("Message") == "Authentication accepted"


def test_connection_closed_after_error_when_secret_wrong(raw):
    raw.next()
    failed = raw.answer("Login", Username="bridge", Secret="nope")
    assert (failed.response, failed.get("Message")) == ("Error", "Authentication failed")
    assert raw.next() is None


def test_permission_denied_when_action_before_login(raw, sim):
    raw.next()
    denied = raw.answer("Ping", ActionID="nologin-ping")
    assert (denied.response, denied.get("Message"), denied.action_id) == ("Error", "Permission denied", "nologin-ping")
    assert sim.actions_named("Ping")[0].action_id == "nologin-ping"


def test_unknown_action_answered_like_asterisk(raw):
    raw.login()
    msg = raw.answer("NoSuchAction")
    assert msg.response == "Error"
    assert msg.get("Message") == ("Invalid/unknown command: NoSuchAction. "
                                  "Use Action: ListCommands to show available commands.")


def test_goodbye_then_close_when_logoff(raw):
    raw.login()
    bye = raw.answer("Logoff")
    assert (bye.response, bye.get("Message")) == ("Goodbye", "Thanks for all the fish.")
    assert raw.next() is None


@pytest.mark.parametrize("profile", ["asterisk11"], indirect=True)
def test_command_answers_follows_body_when_asterisk11(raw):
    raw.login()
    msg = raw.answer("Command", Command="core show version", ActionID="q-cmd")
    assert msg.response == "Follows" and msg.get("Privilege") == "Command"
    assert msg.output == ("Asterisk 11.25.3 built by root @ simulator on a x86_64 running Linux",)
    assert b"Linux\n--END COMMAND--\r\n\r\n" in raw.raw


def test_command_answers_output_headers_when_asterisk20(raw):
    raw.login()
    msg = raw.answer("Command", Command="core show version")
    assert msg.response == "Success" and msg.get("Message") == "Command output follows"
    assert msg.get_all("Output") == ["Asterisk 22.10.1 built by root @ simulator on a x86_64 running Linux"]


def test_only_allowed_events_sent_when_session_filter_added(raw, sim):
    raw.login()
    raw.next()  # FullyBooted
    assert raw.answer("Filter", Operation="Add", Filter="Event: Newexten").get("Message") == "Success"
    sim.emit([("Event", "VarSet"), ("Privilege", "dialplan,all")])
    sim.emit([("Event", "Newexten"), ("Privilege", "dialplan,all"), ("Exten", "902")])
    assert raw.next().event == "Newexten"


def test_replay_sends_capture_byte_for_byte_when_logged_in(raw, sim):
    raw.login()
    raw.next()  # FullyBooted
    capture = (AMI_FIXTURES / "asterisk-22.10.1/cp1251-callerid-amiheader-22.10.1.ami").read_bytes()
    before = len(raw.raw)
    sent = sim.replay(AMI_FIXTURES / "asterisk-22.10.1/cp1251-callerid-amiheader-22.10.1.ami")
    expected = capture[capture.index(b"\n") + 1:]
    assert sent == len(expected)
    messages = [raw.next() for _ in range(28)]
    assert bytes(raw.raw[before:]) == expected
    assert "Василий" in {m.get("CallerIDName") for m in messages}


def test_half_a_message_then_eof_when_dropped_mid_message(raw, sim):
    raw.login()
    raw.next()  # FullyBooted
    assert sim.drop_connections(mid_message=True) == 1
    assert raw.events_until_closed() == []
    assert raw.parser.buffered > 0  # the cut message is still waiting for its end


def test_flood_sends_every_event_with_mixed_encodings_when_rate_given(raw, sim):
    raw.login()
    raw.next()  # FullyBooted
    job = sim.flood(rate_per_s=50_000, count=600, match_ratio=0.25, seed=7)
    events = [raw.next() for _ in range(job.sent)]
    assert job.sent == 600 and 0 < job.matched < 600
    assert sum(e.event in ("DialBegin", "Dial") for e in events) == job.matched
    names = {e.get("CallerIDName") for e in events}
    assert {"Василий", "Оператор-202"} <= names  # cp1251 bytes and UTF-8 both arrive intact
    assert b"\xc2\xe0\xf1\xe8\xeb\xe8\xe9" in raw.raw  # really sent as cp1251


def test_no_answer_until_resume_when_stalled(raw, sim):
    raw.login()
    raw.next()  # FullyBooted
    sim.stall()
    raw.send("Ping", ActionID="p1")
    with pytest.raises(socket.timeout):
        raw.next(timeout_s=0.3)
    sim.resume()
    assert raw.next().action_id == "p1"


@pytest.mark.parametrize("profile", ["asterisk11", "asterisk20"], indirect=True)
def test_originate_response_carries_action_id_when_async(raw, sim, profile):
    raw.login()
    raw.next()
    queued = raw.answer("Originate", ActionID="orig-1", Channel="PJSIP/202", Context="from-internal",
                        Exten="902", Priority=1, Async="true", ChannelId="chan-42")
    assert queued.get("Message") == "Originate successfully queued"
    while (msg := raw.next()).event != "OriginateResponse":
        pass
    assert msg.action_id == "orig-1" and msg.get("Response") == "Success"
    # Asterisk 13+ honours ChannelId; Asterisk 11 knows nothing of it.
    assert (msg.get("Uniqueid") == "chan-42") == (profile == "asterisk20")


def test_channel_actions_follow_the_scenario_when_call_in_progress(raw, sim):
    raw.login()
    raw.next()
    steps = scenarios.call_events("asterisk20", "answered", seq=1, caller="202", callee="902")
    bridged = next(i for i, s in enumerate(steps) if dict(s.headers).get("Event") == "BridgeEnter")
    for step in steps[: bridged + 2]:
        sim.emit(step.headers)
    raw.send("CoreShowChannels", ActionID="csc")
    msgs = []
    while (msg := raw.next()).event != "CoreShowChannelsComplete":
        msgs.append(msg)
    channels = sorted(m.get("Channel") for m in msgs if m.event == "CoreShowChannel")
    assert len(channels) == 2 and channels[0].startswith("PJSIP/202-") and channels[1].startswith("PJSIP/902-")
    state = raw.answer("ExtensionState", Exten="902", Context="from-internal")
    assert (state.get("Status"), state.get("StatusText")) == ("1", "InUse")
    assert raw.answer("Hangup", Channel=channels[0]).get("Message") == "Channel Hungup"
    for step in steps[bridged + 2:]:
        sim.emit(step.headers)
    assert wait_until(lambda: len(sim.channels) == 0)
    assert raw.answer("ExtensionState", Exten="902", Context="from-internal").get("StatusText") == "Idle"
    assert raw.answer("Hangup", Channel=channels[0]).get("Message") == "No such channel"


def test_cli_serves_logins_when_started_as_module(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "bridge.testing.simulator", "--port", "0", "--calls-per-minute", "0",
                             "--users", f"bridge:{SECRET}"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "AMI simulator (asterisk20) on 127.0.0.1:" in line
        port = int(line.split(":")[1].split(",")[0])
        sim_like = type("S", (), {"host": "127.0.0.1", "port": port})()
        conn = RawAmi(sim_like)
        conn.login()
        conn.sock.close()
    finally:
        proc.terminate()
        proc.wait(WAIT_S)
