"""The ARI link under trouble: a wrong password, an Asterisk restart under calls (audit: lost = 0)."""

from __future__ import annotations

import base64
import json
import logging
import threading

import pytest
import websocket

from bridge.ami.actions import Action
from bridge.ari.event import AriEvent
from bridge.errors import AmiActionError
from bridge.testing.helpers import wait_until
from tests.ari.live.pbx import ARI_SECRET, ARI_USER, Pbx, asterisk_dir
from tests.ari.live.stack import bridge_for

pytestmark = pytest.mark.asterisk


def test_wrong_password_is_a_clear_error_without_the_password_when_ari_refuses(pbx, caplog):
    caplog.set_level(logging.WARNING)
    bridge = bridge_for(pbx, "ari", secret="not-the-password")
    bridge.client.start()
    try:
        assert wait_until(lambda: bridge.client.stats.auth_failures >= 2, timeout_s=10)
        assert not bridge.client.connected
        error = bridge.client.stats.last_error
        assert "ARI user 'ari': HTTP 401, wrong user or password (ari.conf [ari])" in error
        assert any(r.levelno == logging.ERROR and "HTTP 401" in r.getMessage() for r in caplog.records)
        assert "not-the-password" not in caplog.text and "not-the-password" not in repr(bridge.client)
    finally:
        bridge.client.stop()


class Reference(threading.Thread):
    """An independent WebSocket reader (its own app): what Asterisk sent while it was connected."""

    def __init__(self, pbx: Pbx) -> None:
        super().__init__(daemon=True)
        token = base64.b64encode(f"{ARI_USER}:{ARI_SECRET}".encode()).decode()
        url = f"ws://127.0.0.1:{pbx.http_port}/ari/events?app=reference&subscribeAll=true"
        self.ws = websocket.create_connection(url, header=[f"Authorization: Basic {token}"], timeout=10)
        self.events: list[dict] = []

    def run(self) -> None:
        while True:
            try:
                self.events.append(json.loads(self.ws.recv()))
            except (OSError, websocket.WebSocketException, ValueError):
                return


def key(headers) -> tuple:
    """An event's identity, whichever app received it (`application` names the receiver)."""
    return tuple(p for p in headers if p[0] != "application")


def test_asterisk_restart_is_survived_with_lost_zero_when_events_flowed_before_it(caplog):
    home = asterisk_dir()
    if home is None:
        pytest.skip("no shared Asterisk")
    caplog.set_level(logging.INFO, logger="bridge.ari.client")
    pbx = Pbx(home).start()
    bridge, ami = bridge_for(pbx, "ari", mode="both"), None
    try:
        bridge.start()
        reference = Reference(pbx)
        reference.start()
        ami = bridge_for(pbx, "tcp")
        ami.start()
        ids = [f"before-{n}" for n in range(3)]
        for cid, exten in zip(ids, ("102", "302", "205")):   # answered, busy, and one still ringing at the restart
            originate(ami, exten, cid)
        assert wait_until(lambda: bridge.call_ended("before-0") and bridge.call_ended("before-1"), timeout_s=10)
        ami.client.stop()
        pbx.halt()                                   # 205 is still ringing: it ends while we are away
        reference.join(10)
        assert wait_until(lambda: not bridge.client.connected, timeout_s=5)
        pbx.start()
        assert wait_until(lambda: bridge.client.connected and bridge.call_ended("before-2"), timeout_s=15)

        # Audit: every event Asterisk sent while connected reached the subscriber as a raw event.
        got = {key(e.headers) for e in _raw(bridge)}
        # DeviceStateChanged is made per application's device subscription (its timestamp differs
        # between two apps), so it cannot be matched across apps; every channel/bridge/dial event can.
        sent = {key(AriEvent.from_json(e).headers) for e in reference.events if e["type"] != "DeviceStateChanged"}
        assert len(sent) > 100 and sent <= got, f"lost {len(sent - got)} of {len(sent)}"

        # `core stop now` hangs the ringing call up; whether ARI still sends its end before the
        # WebSocket closes is a race: its own end (Dial cut: no-answer; caller first: cancelled)
        # or, when the events never came, the resync's verdict. Never left open, never `answered`.
        lost = bridge.sink.normalized("before-2")[-1]
        assert lost.get("CallState") == "ended" and lost.get("CallerIDName") == "Ольга"
        assert lost.get("Reason") in ("lost-during-disconnect", "no-answer", "cancelled")
        assert bridge.tracker.active_calls() == []
        assert bridge.notices.wait_for(lambda r: r.disconnected and len(r.connected) == 2)
        assert bridge.client.stats.reconnects == 1
        text = caplog.text
        assert "ARI disconnected from" in text and text.count("ARI connected to") == 2

        ami = bridge_for(pbx, "tcp")                 # a call after the restart is told as usual
        ami.start()
        originate(ami, "102", "after")
        assert wait_until(lambda: bridge.call_ended("after"), timeout_s=10)
        assert [e.name for e in bridge.sink.normalized("after")] == ["CallRinging", "CallAnswered", "CallEnded"]
    finally:
        if ami is not None:
            ami.client.stop()
        bridge.client.stop()
        pbx.stop()


def originate(ami, exten: str, channel_id: str) -> None:
    ami.client.send_action(Action.build("Originate", Channel="Local/401@phones", Context="calls", Exten=exten,
                                        Priority=1, CallerID="Ольга <401>", ChannelId=channel_id, Async=True)).result(5)


def _raw(bridge):
    return [e for e, _ in bridge.sink.accepted if e.kind == "raw"]


@pytest.mark.parametrize("secret, ok, detail", [
    (ARI_SECRET, True, "logged in as ari (Asterisk 22.10.1, ARI)"),
    ("not-the-password", False, "ARI user 'ari': HTTP 401, wrong user or password (ari.conf [ari])"),
])
def test_check_logs_in_over_ari_or_names_the_refusal_when_run(pbx, secret, ok, detail):
    from bridge.preflight import check_ami
    from tests.ari.live.stack import ami_config

    result = check_ami(ami_config(pbx, "ari", secret=secret), 5.0)
    assert (result.ok, result.detail) == (ok, detail)
    assert f"ARI {pbx.ari_url}" in result.name and "not-the-password" not in result.detail


def test_read_only_user_gets_events_and_each_write_is_refused_by_name_when_it_acts(pbx, caplog):
    caplog.set_level(logging.INFO)
    watcher = bridge_for(pbx, "ari", username="watcher", secret="watchpass", app="watcher-app")
    ami = bridge_for(pbx, "tcp")
    try:
        watcher.start()
        ami.start()
        originate(ami, "402", "watched")                  # events reach a read-only user: 402 answers, talks 20 s
        assert wait_until(lambda: any(e.name == "CallAnswered" and e.get("Extension") == "402"
                                      for e in watcher.sink.normalized("watched")), timeout_s=10)
        callee = next(leg.channel for leg in watcher.tracker.call("watched").legs if leg.extension == "402")
        refused = "user 'watcher' has permission to read only (HTTP 403; ari.conf [watcher] read_only = yes)"
        for action in (Action.build("Originate", Channel="Local/401@phones", Context="calls", Exten="102",
                                    Priority=1, ChannelId="never"),
                       Action.build("Redirect", Channel=callee, Context="parked", Exten="900", Priority=1),
                       Action.build("Hangup", Channel=callee)):
            with pytest.raises(AmiActionError) as info:
                watcher.client.send_action(action).result(5)
            assert refused in str(info.value), info.value
        ami.client.send_action(Action.build("Hangup", Channel=callee)).result(5)
        assert wait_until(lambda: watcher.call_ended("watched"), timeout_s=10)
        assert watcher.client.connected and watcher.client.stats.disconnects == 0   # the link is fine
        assert "watchpass" not in caplog.text
        # This PBX's ari.conf has no channelvars: said once, with the line to add.
        assert caplog.text.count("add `channelvars = CHANNEL(linkedid)` to [general] of ari.conf") == 1
    finally:
        ami.client.stop()
        watcher.client.stop()


def test_stalled_websocket_is_declared_dead_by_the_ping_and_reconnected_when_it_moves_again(pbx, caplog):
    from tests.ami.tcp_proxy import TcpProxy

    caplog.set_level(logging.INFO, logger="bridge.ari.client")
    with TcpProxy(("127.0.0.1", pbx.http_port)) as proxy:
        # The ARI url through the proxy; ping_interval 1 s (stack.ami_config).
        bridge = bridge_for(pbx, "ari", url=f"http://127.0.0.1:{proxy.port}/ari/", app="stalled-app")
        try:
            bridge.start()
            proxy.stall()                                  # TCP stays open, nothing moves (a wedged middlebox)
            assert wait_until(lambda: bridge.client.stats.ping_timeouts == 1, timeout_s=10)
            proxy.resume()
            assert wait_until(lambda: bridge.client.connected and bridge.client.stats.reconnects >= 1, timeout_s=10)
            assert "ARI disconnected from" in caplog.text and "no answer to a WebSocket ping within 1 s" in caplog.text
        finally:
            bridge.client.stop()
