"""The threaded AMI client (bridge/ami/client.py) against the simulator over real TCP and TLS."""

from __future__ import annotations

import logging
import subprocess
import threading

import pytest

from bridge.ami.client import AmiClient
from bridge.ami.actions import Action
from bridge.testing.sim_session import SimSession
from bridge.testing.simulator import AmiSimulator
from bridge.config import AmiConfig
from bridge.errors import AmiActionError, AmiConnectionError, AmiEncodeError
from bridge.testing.helpers import RecordingListener, wait_until
from tests.ami.conftest import WAIT_S, barrier

SECRET = "s3cret-Пароль"


@pytest.mark.parametrize("profile", ["asterisk11", "asterisk20"], indirect=True)
@pytest.mark.parametrize("auth", ["md5", "plain"])
def test_login_succeeds_when_credentials_right(sim, make_client, profile, auth):
    client, rec = make_client(auth=auth)
    assert client.wait_connected(WAIT_S)
    assert rec.wait_for(lambda r: r.connected)
    assert client.ami_version == ("1.3" if profile == "asterisk11" else "11.0.0")
    assert client.asterisk_version == ("11.25.3" if profile == "asterisk11" else "22.10.1")
    logins = sim.actions_named("Login")
    assert len(logins) == 1
    if auth == "md5":
        assert logins[0].get("AuthType") == "MD5" and logins[0].get("Secret") is None
        assert len(sim.actions_named("Challenge")) == 1
    else:
        assert logins[0].get("Secret") == SECRET


def test_keeps_retrying_without_logging_secret_when_secret_wrong(sim, make_client, caplog):
    caplog.set_level(logging.DEBUG)
    client, rec = make_client(secret="wrong-secret-xyz", auth="plain")
    assert wait_until(lambda: client.stats.auth_failures >= 3)
    assert not client.connected and not rec.connected
    assert "login refused for user 'bridge'" in (client.stats.last_error or "")
    assert len(sim.actions_named("Login")) >= 3
    assert "wrong-secret-xyz" not in caplog.text and "wrong-secret-xyz" not in repr(client)
    assert "login refused" in caplog.text


def test_event_list_collected_when_coreshowchannels(sim, make_client):
    client, rec = make_client()
    assert client.wait_connected(WAIT_S)
    for n, name in enumerate(("Иван Петров", "Оператор-202")):
        sim.emit([("Event", "Newchannel"), ("Privilege", "call,all"), ("Channel", f"PJSIP/20{n}-0000000{n}"),
                  ("ChannelState", "6"), ("CallerIDNum", f"20{n}"), ("CallerIDName", name),
                  ("Uniqueid", f"1700000000.{n}"), ("Linkedid", "1700000000.0")])
    result = client.send_action(Action.build("CoreShowChannels")).result(WAIT_S)
    assert result.response.get("EventList") == "start"
    assert [e.get("CallerIDName") for e in result.events] == ["Иван Петров", "Оператор-202"]
    assert result.complete is not None and result.complete.get("ListItems") == "2"
    barrier(client)
    assert not rec.named("CoreShowChannel") and not rec.named("CoreShowChannelsComplete")
    assert len(rec.named("Newchannel")) == 2


@pytest.mark.parametrize("profile", ["asterisk11"], indirect=True)
def test_event_list_collected_when_asterisk11_status_has_no_eventlist_header(sim, make_client):
    client, _ = make_client()
    assert client.wait_connected(WAIT_S)
    sim.emit([("Event", "Newchannel"), ("Privilege", "call,all"), ("Channel", "SIP/202-00000001"),
              ("ChannelState", "6"), ("Uniqueid", "1700000000.1")])
    result = client.send_action(Action.build("Status")).result(WAIT_S)
    assert [e.get("Channel") for e in result.events] == ["SIP/202-00000001"]
    assert result.complete.event == "StatusComplete"


def test_reconnects_and_resends_filters_when_server_drops_mid_message(sim, make_client):
    client, rec = make_client(filters=["!Event: VarSet"])
    assert rec.wait_for(lambda r: len(r.connected) == 1)
    sim.drop_connections(mid_message=True)
    assert rec.wait_for(lambda r: len(r.disconnected) == 1 and len(r.connected) == 2)
    assert client.wait_connected(WAIT_S)
    assert client.stats.reconnects == 1
    assert [f.get("Filter") for f in sim.actions_named("Filter")] == ["!Event: VarSet"] * 2
    sim.emit([("Event", "VarSet"), ("Privilege", "dialplan,all"), ("Variable", "X")])
    sim.emit([("Event", "Newexten"), ("Privilege", "dialplan,all"), ("Exten", "902")])
    barrier(client)
    assert not rec.named("VarSet") and len(rec.named("Newexten")) == 1
    assert not rec.named("DialBegin")  # the half message cut by the drop never became an event


def test_link_declared_dead_when_server_stalls_without_closing(sim, make_client):
    client, rec = make_client(ping_interval_s=0.1, ping_timeout_s=0.3, connect_timeout_s=0.5)
    assert rec.wait_for(lambda r: r.connected)
    sim.stall()
    assert rec.wait_for(lambda r: r.disconnected)
    assert rec.disconnected[0].startswith("ping timeout")
    assert client.stats.ping_timeouts == 1 and not client.connected
    sim.resume()
    assert rec.wait_for(lambda r: len(r.connected) == 2)


def test_link_stays_up_when_pong_is_late_but_events_keep_arriving(sim, make_client, monkeypatch):
    # A flooded reader can be seconds behind the socket, so the Pong queues behind events.
    # That peer is alive: only silence after a Ping means a stalled link.
    def late_pong(session, msg):
        threading.Timer(1.0, lambda: session.reply(msg, ("Ping", "Pong"))).start()

    client, rec = make_client(ping_interval_s=0.1, ping_timeout_s=0.3)
    assert rec.wait_for(lambda r: r.connected)
    monkeypatch.setattr(SimSession, "_action_ping", late_pong)
    sim.flood(rate_per_s=200, count=500, block=True)   # 2.5 s of events, several Pongs 1 s late
    assert rec.disconnected == [] and client.stats.ping_timeouts == 0 and client.connected
    sim.stall()   # and silence is still caught
    assert rec.wait_for(lambda r: r.disconnected)
    assert rec.disconnected[0].startswith("ping timeout")
    sim.resume()


def test_pending_actions_fail_fast_when_link_drops(sim, make_client):
    client, rec = make_client()
    assert client.wait_connected(WAIT_S)
    sim.stall()  # the simulator holds the answer back
    future = client.send_action(Action.build("CoreShowChannels"), timeout_s=60.0)
    assert not future.done()
    sim.drop_connections()
    with pytest.raises(AmiConnectionError, match="link lost before CoreShowChannels"):
        future.result(WAIT_S)
    sim.resume()


def test_send_action_fails_when_not_connected():
    client = AmiClient(AmiConfig("pbx", "127.0.0.1", 9, "bridge", SECRET))
    with pytest.raises(AmiConnectionError, match="not connected"):
        client.send_action(Action.build("Ping")).result(1)


def test_action_error_carries_action_id_when_asterisk_answers_error(sim, make_client):
    client, _ = make_client()
    assert client.wait_connected(WAIT_S)
    with pytest.raises(AmiActionError) as info:
        client.send_action(Action.build("NoSuchAction")).result(WAIT_S)
    assert info.value.action_id and info.value.action_id.startswith("pbx-")
    assert "Invalid/unknown command" in info.value.message


def test_crlf_never_reaches_the_simulator_when_value_smuggles_an_action(sim, make_client):
    client, _ = make_client()
    assert client.wait_connected(WAIT_S)
    with pytest.raises(AmiEncodeError):
        client.send_action(Action.build("Originate",
                                        Channel="PJSIP/1\r\n\r\nAction: Command\r\nCommand: core stop now"))
    with pytest.raises(AmiEncodeError):
        client.set_filters(["Event: X\r\nAction: Command"])
    barrier(client)
    assert not sim.actions_named("Command") and not sim.actions_named("Originate")


def test_cyrillic_names_kept_exactly_when_utf8_and_cp1251_mixed(sim, make_client):
    client, rec = make_client()
    assert client.wait_connected(WAIT_S)
    sim.emit([("Event", "Newchannel"), ("Privilege", "call,all"), ("CallerIDName", "Оператор-202")])
    sim.emit([("Event", "Newchannel"), ("Privilege", "call,all"), ("CallerIDName", "Василий".encode("cp1251"))])
    sim.emit([("Event", "Newchannel"), ("Privilege", "call,all"), ("CallerIDName", "Ёлка «ёж» №5")])
    barrier(client)
    assert [m.get("CallerIDName") for m in rec.named("Newchannel")] == ["Оператор-202", "Василий", "Ёлка «ёж» №5"]


def test_reader_survives_when_a_listener_raises(sim, make_client):
    class Broken:
        def on_event(self, server, message):
            raise RuntimeError("listener bug")

    client, rec = make_client()
    client.add_listener(Broken())
    assert client.wait_connected(WAIT_S)
    sim.emit([("Event", "Newexten"), ("Privilege", "dialplan,all")])
    sim.emit([("Event", "Newexten"), ("Privilege", "dialplan,all")])
    barrier(client)
    assert len(rec.named("Newexten")) == 2
    assert client.stats.listener_errors >= 2 and client.connected


def test_no_events_delivered_when_events_off(sim, make_client):
    client, rec = make_client(events="off")
    assert client.wait_connected(WAIT_S)
    sim.emit([("Event", "Newexten"), ("Privilege", "dialplan,all")])
    barrier(client)
    assert rec.events == []
    assert sim.actions_named("Login")[0].get("Events") == "off"


def test_originate_response_reaches_listeners_when_async(sim, make_client):
    client, rec = make_client()
    assert client.wait_connected(WAIT_S)
    result = client.send_action(Action.build("Originate", Channel="PJSIP/202", Context="from-internal",
                                             Exten="902", Priority=1, Async=True, ChannelId="bridge-call-1"))
    action_id = result.result(WAIT_S).response.action_id
    assert rec.wait_for(lambda r: r.named("OriginateResponse"))
    response = rec.named("OriginateResponse")[0]
    assert response.action_id == action_id and response.get("Uniqueid") == "bridge-call-1"


def test_from_config_builds_client_without_secret_in_repr():
    cfg = AmiConfig(name="pbx1", host="10.0.0.1", port=5039, username="u", secret="topsecret", tls=True)
    client = AmiClient.from_config(cfg, filters=["Event: Hangup"])
    assert (client.host, client.port, client.tls, client.filters) == ("10.0.0.1", 5039, True, ("Event: Hangup",))
    assert "topsecret" not in repr(client)


@pytest.fixture
def tls_files(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"openssl CLI unavailable to make a test certificate: {exc}")
    return str(cert), str(key)


def test_tls_login_and_events_when_ca_file_given(tls_files):
    cert, key = tls_files
    with AmiSimulator("asterisk20", users={"bridge": SECRET}, tls_cert=cert, tls_key=key) as sim:
        client = AmiClient(AmiConfig("pbx", sim.host, sim.port, "bridge", SECRET, tls=True, ca_file=cert))
        rec = RecordingListener()
        client.add_listener(rec)
        client.start()
        try:
            assert client.wait_connected(WAIT_S)
            sim.emit([("Event", "Newchannel"), ("Privilege", "call,all"), ("CallerIDName", "Оператор-202")])
            assert rec.wait_for(lambda r: r.named("Newchannel"))
            assert rec.named("Newchannel")[0].get("CallerIDName") == "Оператор-202"
            assert client.send_action(Action.build("CoreSettings")).result(WAIT_S).response.get("AMIversion")
        finally:
            client.stop()


def test_tls_refused_when_certificate_untrusted(tls_files):
    cert, key = tls_files
    with AmiSimulator("asterisk20", users={"bridge": SECRET}, tls_cert=cert, tls_key=key) as sim:
        client = AmiClient(AmiConfig("pbx", sim.host, sim.port, "bridge", SECRET, tls=True, reconnect_base_s=0.05,
                                     reconnect_cap_s=0.1))
        client.start()
        try:
            assert wait_until(lambda: client.stats.connect_failures >= 1)
            assert "CERTIFICATE_VERIFY_FAILED" in (client.stats.last_error or "")
            assert not client.connected and not sim.actions_named("Login")
        finally:
            client.stop()


def test_future_times_out_with_connection_error_when_no_answer(sim, make_client):
    client, _ = make_client()
    assert client.wait_connected(WAIT_S)
    sim.stall()
    future = client.send_action(Action.build("Ping"), timeout_s=0.2)
    with pytest.raises(AmiConnectionError, match="timed out"):
        future.result(WAIT_S)
    sim.resume()
    assert client.connected  # one late answer is the action's failure, not the link's
    barrier(client)


def test_client_restarts_and_notifies_when_started_again_after_stop(sim, make_client):
    client, rec = make_client()
    assert rec.wait_for(lambda r: len(r.connected) == 1)
    client.stop()
    assert rec.wait_for(lambda r: r.disconnected == ["client stopped"])
    assert sim.actions_named("Logoff")  # a polite goodbye, not a dropped socket
    client.start()
    assert rec.wait_for(lambda r: len(r.connected) == 2)
    barrier(client)


def test_every_event_delivered_in_order_when_flooded(sim, make_client):
    client, rec = make_client()
    assert client.wait_connected(WAIT_S)
    barrier(client)
    before = len(rec.events)
    job = sim.flood(rate_per_s=100_000, count=3000, match_ratio=0.3, seed=3)
    barrier(client)
    flooded = rec.events[before:]
    assert len(flooded) == job.sent == 3000
    assert sum(m.event == "DialBegin" for m in flooded) == job.matched
    uniqueids = [m.get("Uniqueid") for m in flooded if m.event != "DeviceStateChange"]
    assert uniqueids == sorted(uniqueids, key=lambda u: int(u.split(".")[0][-6:]))  # stream order kept
    assert client.stats.dropped == 0
