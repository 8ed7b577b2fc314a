"""AjamClient against the simulator's HTTP manager over real HTTP: login, events, actions, faults."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from bridge.ami.actions import Action
from bridge.ami.ajam import AjamClient
from bridge.config import AmiConfig
from bridge.testing.helpers import wait_until
from bridge.testing.simulator import AmiSimulator
from bridge.errors import AmiActionError, AmiConnectionError
from tests.ami.tcp_proxy import TcpProxy

SECRET = "ajam-test-secret"


class Recorder:
    def __init__(self) -> None:
        self.events: list = []
        self.notices: list[tuple[str, object]] = []
        self.lock = threading.Lock()

    def on_event(self, server, message) -> None:
        with self.lock:
            self.events.append(message)

    def on_connected(self, server, banner) -> None:
        self.notices.append(("connected", banner))

    def on_disconnected(self, server, reason) -> None:
        self.notices.append(("disconnected", reason))

    def seqs(self) -> list[int]:
        with self.lock:
            return [int(m.get("Seq")) for m in self.events if m.event == "UserEvent" and m.get("Seq")]


@pytest.fixture
def sim():
    simulator = AmiSimulator("asterisk20", users={"bridge": SECRET}, http_port=0, time_scale=0.01).start()
    yield simulator
    simulator.stop()


def make_client(url: str, auth: str = "cookie", *, action_threads: int = 4, **kw) -> tuple[AjamClient, Recorder]:
    """An AjamClient from an `[[ami]]` table with transport = "http" (ping_timeout: the stall margin)."""
    kw.setdefault("wait_timeout_s", 1.0)
    kw.setdefault("ping_timeout_s", 1.0)
    kw.setdefault("reconnect_base_s", 0.05)
    kw.setdefault("reconnect_cap_s", 0.3)
    settings = AmiConfig("pbx1", username="bridge", secret=kw.pop("secret", SECRET), transport="http", url=url,
                         auth=auth, **kw)
    client = AjamClient(settings, action_threads=action_threads)
    recorder = Recorder()
    client.add_listener(recorder)
    return client, recorder


def emit_user_events(sim: AmiSimulator, start: int, count: int) -> list[int]:
    for seq in range(start, start + count):
        sim.emit([("Event", "UserEvent"), ("Privilege", "user,all"), ("UserEvent", "probe"),
                  ("Seq", str(seq)), ("Name", "Тест")])
    return list(range(start, start + count))


@pytest.mark.parametrize("auth", ["cookie", "digest"])
def test_events_arrive_in_order_and_actions_answer_when_logged_in(sim, auth):
    client, rec = make_client(sim.ajam.url, auth)
    client.start()
    try:
        assert client.wait_connected(5)
        assert (client.ami_version, client.asterisk_version) == ("11.0.0", "22.10.1")
        assert wait_until(lambda: rec.notices) and rec.notices[0][0] == "connected"
        assert rec.notices[0][1].version == (11, 0, 0)
        expected = emit_user_events(sim, 0, 200)
        assert wait_until(lambda: len(rec.seqs()) == 200), rec.seqs()[-3:]
        assert rec.seqs() == expected and rec.events[-1].get("Name") == "Тест"
        originate = Action.build("Originate", action_id="orig-1", Channel="PJSIP/202", Context="from-internal",
                                 Exten="902", Priority=1, Async=True)
        assert client.send_action(originate).result(5).response.get("Message") == "Originate successfully queued"
        assert wait_until(lambda: any(m.event == "OriginateResponse" and m.action_id == "orig-1" for m in rec.events))
        listing = client.send_action(Action.build("CoreShowChannels")).result(5)
        assert listing.complete is not None and listing.complete.event == "CoreShowChannelsComplete"
        assert all(e.event == "CoreShowChannel" for e in listing.events)
        with pytest.raises(AmiActionError, match="No such channel"):
            client.send_action(Action.build("Hangup", Channel="PJSIP/nobody-0001")).result(5)
        # cookie: the long poll and the actions share one manager session; Digest keeps the
        # event session's nonce away from concurrent actions: one session for each.
        assert len(sim.ajam.sessions) == (1 if auth == "cookie" else 2)
    finally:
        client.stop()
    assert wait_until(lambda: rec.notices[-1][0] == "disconnected") and not client.connected


def test_events_keep_their_session_when_many_digest_actions_run_at_once(sim):
    client, rec = make_client(sim.ajam.url, "digest", action_threads=6)
    client.start()
    try:
        assert client.wait_connected(5)
        poll_session = sim.ajam.sessions[0]
        expected = []
        for round_ in range(5):
            futures = [client.send_action(Action.build("Ping")) for _ in range(30)]
            expected += emit_user_events(sim, round_ * 20, 20)
            assert all(f.result(10).response.get("Ping") == "Pong" for f in futures)
        assert wait_until(lambda: rec.seqs() == expected)
        assert poll_session in sim.ajam.sessions and client.stats.connects == 1
        assert not sim.actions_named("Login")   # Digest signs every request: no Login action
    finally:
        client.stop()


@pytest.mark.parametrize("auth", ["cookie", "digest"])
def test_login_is_refused_and_retried_when_the_secret_is_wrong(sim, auth):
    client, _ = make_client(sim.ajam.url, auth, secret="wrong")
    client.start()
    try:
        assert wait_until(lambda: client.stats.auth_failures >= 2, 10)
        assert not client.connected and "wrong" not in (client.stats.last_error or "")
        with pytest.raises(AmiConnectionError):
            client.send_action(Action.build("Ping")).result(1)
    finally:
        client.stop()


def test_logs_in_again_and_resyncs_when_the_session_expires(sim):
    client, rec = make_client(sim.ajam.url)
    client.start()
    try:
        assert client.wait_connected(5)
        assert sim.ajam.expire_sessions() == 1
        assert wait_until(lambda: client.stats.connects == 2), client.stats
        assert wait_until(lambda: len(rec.notices) == 3)
        assert [kind for kind, _ in rec.notices] == ["connected", "disconnected", "connected"]
        assert "Permission denied" in rec.notices[1][1]
        assert len(sim.actions_named("Login")) == 2
        expected = emit_user_events(sim, 0, 50)
        assert wait_until(lambda: rec.seqs() == expected)
    finally:
        client.stop()


def test_an_action_refused_for_its_class_is_an_error_not_a_lost_session(sim):
    sim.extra_actions["reload"] = lambda session, msg: session.error(msg, "Permission denied")
    client, rec = make_client(sim.ajam.url)
    client.start()
    try:
        assert client.wait_connected(5)
        with pytest.raises(AmiActionError, match="Permission denied"):
            client.send_action(Action.build("Reload")).result(5)
        time.sleep(0.3)
        assert client.connected and client.stats.connects == 1 and len(sim.actions_named("Login")) == 1
    finally:
        client.stop()


def test_an_action_on_an_expired_session_fails_as_a_lost_link_and_logs_in_again(sim):
    # A long WaitEvent: the poller cannot notice the lost login before the action does.
    client, rec = make_client(sim.ajam.url, wait_timeout_s=20.0)
    client.start()
    try:
        assert client.wait_connected(5)
        session = sim.ajam.sessions[0]
        assert wait_until(lambda: session.waiting)    # the poller's WaitEvent is pending now
        session.username = None  # Asterisk forgot the login (as after a purge); the cookie still maps
        with pytest.raises(AmiConnectionError, match="expired"):
            client.send_action(Action.build("Ping")).result(5)
        session.send(b"Event: UserEvent\r\nUserEvent: wake\r\n\r\n")  # the pending WaitEvent returns
        assert wait_until(lambda: client.stats.connects == 2 and client.connected)
        assert client.send_action(Action.build("Ping")).result(5).response.get("Ping") == "Pong"
    finally:
        client.stop()


def test_the_same_session_resumes_when_the_link_resets_under_a_waitevent(sim):
    with TcpProxy(("127.0.0.1", sim.ajam.port)) as proxy:
        client, rec = make_client(f"http://127.0.0.1:{proxy.port}/asterisk/")
        client.start()
        try:
            assert client.wait_connected(5)
            expected = emit_user_events(sim, 0, 100)
            for round_ in range(3):
                assert wait_until(lambda: rec.seqs() == expected)
                assert wait_until(lambda: sim.ajam.sessions[0].waiting)   # a WaitEvent is in flight now
                proxy.reset()                                  # every HTTP connection dies
                assert wait_until(lambda: client.stats.connects == round_ + 2), client.stats
                expected += emit_user_events(sim, 100 * (round_ + 1), 100)
            assert wait_until(lambda: rec.seqs() == expected), (len(rec.seqs()), len(expected))
            assert len(sim.actions_named("Login")) == 1         # the same session resumed each time
            assert [kind for kind, _ in rec.notices][:3] == ["connected", "disconnected", "connected"]
        finally:
            client.stop()


@pytest.mark.slow  # seconds of timeouts by design
def test_stalled_server_is_detected_and_its_queued_events_arrive_after_it_resumes(sim):
    client, rec = make_client(sim.ajam.url, ping_timeout_s=0.5, connect_timeout_s=0.5)
    client.start()
    try:
        assert client.wait_connected(5)
        expected = emit_user_events(sim, 0, 50)
        assert wait_until(lambda: rec.seqs() == expected)
        sim.stall()                                             # accepts, never answers, queues events
        expected += emit_user_events(sim, 50, 100)
        assert wait_until(lambda: len(rec.notices) == 2, 10)
        assert "no HTTP answer" in rec.notices[1][1]
        time.sleep(0.6)                                         # a failed resumption or two, with backoff
        sim.resume()
        assert wait_until(lambda: rec.seqs() == expected, 15), (len(rec.seqs()), client.stats)
        assert len(sim.actions_named("Login")) == 1             # nothing queued was lost: same session
    finally:
        client.stop()


@pytest.mark.slow  # seconds of timeouts by design
def test_a_server_that_accepts_and_never_answers_is_retried_with_backoff_and_stops_fast():
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: [accepted.append(listener.accept()[0]) for _ in range(50)], daemon=True).start()
    client, _ = make_client(f"http://127.0.0.1:{listener.getsockname()[1]}/asterisk/", connect_timeout_s=0.3)
    client.start()
    try:
        assert wait_until(lambda: client.stats.connect_failures >= 2, 10)
        assert not client.connected and "no HTTP answer" in client.stats.last_error
    finally:
        started = time.monotonic()
        client.stop()
        assert time.monotonic() - started < 3.0
        listener.close()
        for sock in accepted:
            sock.close()


def test_logs_in_again_when_the_server_restarts_on_the_same_port(sim):
    client, rec = make_client(sim.ajam.url)
    client.start()
    try:
        assert client.wait_connected(5)
        port, http_port = sim.port, sim.http_port
        sim.stop()
        assert wait_until(lambda: not client.connected, 10)
        again = AmiSimulator("asterisk20", port=port, users={"bridge": SECRET}, http_port=http_port).start()
        try:
            assert wait_until(lambda: client.connected and client.stats.connects == 2, 15), client.stats
            expected = emit_user_events(again, 0, 20)
            assert wait_until(lambda: rec.seqs() == expected)
        finally:
            client.stop()
            again.stop()
    finally:
        client.stop()


@pytest.mark.parametrize("auth", ["cookie", "digest"])
def test_no_events_arrive_but_actions_work_when_events_are_off(sim, auth):
    client, rec = make_client(sim.ajam.url, auth, events="off")
    client.start()
    try:
        assert client.wait_connected(5)
        emit_user_events(sim, 0, 20)
        assert client.send_action(Action.build("Ping")).result(5).response.get("Ping") == "Pong"
        time.sleep(0.3)
        assert rec.seqs() == []
    finally:
        client.stop()


class SlowListener:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_event(self, server, message) -> None:
        time.sleep(self.seconds)


@pytest.mark.slow  # seconds of timeouts by design
def test_a_resync_answer_comes_after_the_events_queued_before_it(sim):
    # Over AJAM the CoreShowChannels answer and the events travel on different connections; a
    # listener must still have every event Asterisk queued before the answer when it gets it.
    client, rec = make_client(sim.ajam.url, wait_timeout_s=3.0)
    client.add_listener(SlowListener(0.0003))  # a busy pipeline: dispatch outlasts the action's round trip
    client.start()
    try:
        assert client.wait_connected(5)
        time.sleep(0.2)
        for round_ in range(3):
            expected = emit_user_events(sim, round_ * 1000, 1000)
            client.send_action(Action.build("CoreShowChannels")).result(10)
            assert rec.seqs()[-1000:] == expected, (round_, len(rec.seqs()))
        started = time.monotonic()
        client.send_action(Action.build("CoreShowChannels")).result(10)   # idle: held at most briefly
        assert time.monotonic() - started < 1.5
    finally:
        client.stop()
