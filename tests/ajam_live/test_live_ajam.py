"""The real Asterisk 22 over AJAM: the same call stories as over TCP, and the link survives faults.

One bridge (in process) reads the same Asterisk three ways at once, as three [[ami]] servers:
`tcp` (AMI), `cookie` (AJAM rawman) and `digest` (AJAM arawman). Every call therefore reaches the
ERP sink three times, and the three stories must be the same.
"""

from __future__ import annotations

import itertools
import uuid
from collections import defaultdict

import pytest
from lxml import etree

from bridge.ami.actions import Action
from bridge.ami.ajam import AjamClient
from bridge.ami.client import AmiClient
from bridge.config import AmiConfig, CallsConfig, Config, DatabaseConfig, SubscriberConfig
from bridge.testing.fake_erp import FakeErp
from bridge.testing.helpers import wait_until
from bridge import ns
from tests.ajam_live.pbx import BRIDGE_SECRET, BRIDGE_USER, DRIVER_SECRET, DRIVER_USER, Pbx

SERVERS = ("tcp", "cookie", "digest")
# Compared across transports: everything but ids, channel names and times (Duration/Billsec are
# whole seconds measured from each link's own arrival times, so a boundary can differ by one).
FIELDS = ("Extension", "CallerIDNum", "CallerIDName", "CalleeNum", "Direction", "State", "Reason",
          "Cause", "CauseTxt", "HangupBy", "AnsweredBy")


@pytest.fixture(scope="module")
def pbx():
    instance = Pbx(httptimeout_s=30)
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def driver(pbx):
    client = AmiClient(AmiConfig("driver", "127.0.0.1", pbx.ami_port, DRIVER_USER, DRIVER_SECRET, events="off"))
    client.start()
    try:
        assert client.wait_connected(10)
        yield client
    finally:
        client.stop()


def ami(name: str, pbx: Pbx, **kw) -> AmiConfig:
    if name != "tcp":
        kw.update(transport="http", url=pbx.ajam_url, auth=name, wait_timeout_s=10.0)
    return AmiConfig(name=name, port=pbx.ami_port, username=BRIDGE_USER, secret=BRIDGE_SECRET,
                     reconnect_base_s=0.1, reconnect_cap_s=1.0, **kw)


def stories(sink) -> dict[str, dict[str, list[dict]]]:
    """server → CallId → the normalized events the ERP received, in arrival order."""
    out: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for receipt in sink.delivered():
        push = etree.fromstring(receipt.body).find(f".//{{{ns.EVENTS}}}PushEvent")
        call = {etree.QName(el).localname: el.text or "" for el in push.iterfind(f"{{{ns.EVENTS}}}call/*")}
        call["name"] = push.findtext(f"{{{ns.EVENTS}}}name")
        out[push.findtext(f"{{{ns.EVENTS}}}server")][call.get("CallId", "")].append(call)
    return out


def place(driver: AmiClient, number: str, exten: str) -> str:
    """A customer at Local/<number>@pstn calls <exten> through [from-trunk]; the call's id is ours."""
    call_id = f"ajam-{uuid.uuid4().hex[:12]}"
    driver.send_action(Action.build("Originate", Channel=f"Local/{number}@pstn", Context="from-trunk",
                                    Exten=exten, Priority=1, CallerID=f"<{number}>", ChannelId=call_id,
                                    Async=True)).result(10)
    return call_id


def test_each_call_tells_the_same_story_over_tcp_cookie_and_digest(pbx, driver, tmp_path):
    from bridge.runtime import Runtime

    sink = FakeErp().start()
    config = Config(database=DatabaseConfig(url=f"sqlite:///{tmp_path / 'outbox.db'}", batch_max_delay_s=0.005),
                    ami=tuple(ami(name, pbx) for name in SERVERS),
                    subscribers=(SubscriberConfig(name="erp", url=sink.url, mode="normalized",
                                                  retry_base_s=0.05, retry_cap_s=0.5),),
                    calls=CallsConfig(inbound_contexts=("from-trunk",)))
    runtime = Runtime(config, auto_upgrade=True, drain_timeout_s=2.0).start()
    try:
        assert all(c.wait_connected(10) for c in runtime.clients), [c.stats.last_error for c in runtime.clients]
        assert [type(c).__name__ for c in runtime.clients] == ["AmiClient", "AjamClient", "AjamClient"]
        calls = {"answered": place(driver, "79160000001", "101"), "no-answer": place(driver, "79160000002", "201"),
                 "busy": place(driver, "79160000003", "301"), "queue": place(driver, "79160000004", "702")}

        def ended() -> bool:
            got = stories(sink)
            return all(any(e["name"] == "CallEnded" for e in got[s][cid]) for s in SERVERS for cid in calls.values())

        assert wait_until(ended, 40), {s: {k: [e["name"] for e in v] for k, v in d.items()}
                                       for s, d in stories(sink).items()}
        got = stories(sink)
    finally:
        runtime.stop()
        sink.stop()
    for scenario, call_id in calls.items():
        tcp = [[e["name"]] + [e.get(f, "-") for f in FIELDS] for e in got["tcp"][call_id]]
        for server in ("cookie", "digest"):
            http = [[e["name"]] + [e.get(f, "-") for f in FIELDS] for e in got[server][call_id]]
            assert http == tcp, f"{scenario}: {server} differs from tcp"
    # What happened, written by hand: who called whom, who answered, why it ended.
    end = {s: got["tcp"][cid][-1] for s, cid in calls.items()}
    assert [e["name"] for e in got["tcp"][calls["answered"]]] == ["CallRinging", "CallAnswered", "CallEnded"]
    assert (end["answered"]["Reason"], end["answered"]["AnsweredBy"], end["answered"]["CallerIDNum"],
            end["answered"]["Direction"]) == ("answered", "101", "79160000001", "inbound")
    assert [e["name"] for e in got["tcp"][calls["no-answer"]]] == ["CallRinging", "CallEnded"]
    assert end["no-answer"]["Reason"] == "no-answer" and end["busy"]["Reason"] == "busy"
    assert end["queue"]["Reason"] == "answered" and end["queue"]["AnsweredBy"] == "105"
    assert "CallAnswered" in [e["name"] for e in got["tcp"][calls["queue"]]]


class Recorder:
    def __init__(self) -> None:
        self.events: list = []
        self.notices: list[str] = []

    def on_event(self, server, message) -> None:
        self.events.append(message)

    def on_connected(self, server, banner) -> None:
        self.notices.append("connected")

    def on_disconnected(self, server, reason) -> None:
        self.notices.append(f"disconnected: {reason}")

    def seqs(self, tag: str) -> list[int]:
        return [int(m.get("Seq")) for m in self.events
                if m.event == "UserEvent" and m.get("UserEvent") == tag and m.get("Seq")]


def user_events(driver: AmiClient, tag: str, start: int, count: int) -> list[int]:
    """UserEvents that Asterisk acknowledged: each is queued to every manager session at once."""
    for seq in range(start, start + count):
        driver.send_action(Action.build("UserEvent", UserEvent=tag, Seq=str(seq))).result(5)
    return list(range(start, start + count))


@pytest.fixture
def ajam_client(request, pbx):
    auth = getattr(request, "param", "cookie")
    client = AjamClient(AmiConfig("pbx", username=BRIDGE_USER, secret=BRIDGE_SECRET, transport="http",
                                  url=pbx.ajam_url, auth=auth, wait_timeout_s=2.0, ping_timeout_s=1.0,
                                  connect_timeout_s=1.0, reconnect_base_s=0.1, reconnect_cap_s=0.5))
    recorder = Recorder()
    client.add_listener(recorder)
    client.start()
    try:
        assert client.wait_connected(10), client.stats.last_error
        yield client, recorder
    finally:
        client.stop()


@pytest.mark.parametrize("ajam_client", ["cookie", "digest"], indirect=True)
def test_nothing_acknowledged_is_lost_when_the_session_dies_and_the_client_logs_in_again(pbx, driver, ajam_client):
    client, rec = ajam_client
    tag = f"expiry-{uuid.uuid4().hex[:6]}"
    expected = user_events(driver, tag, 0, 50)
    assert wait_until(lambda: rec.seqs(tag) == expected, 10)
    # The session dies on the Asterisk side, as at httptimeout: its Logoff from elsewhere
    # (main/manager.c destroys the session and releases the pending WaitEvent).
    if client.auth == "cookie":
        import requests

        requests.post(pbx.ajam_url + "rawman", data={"Action": "Logoff"},
                      cookies={"mansession_id": f'"{client._http.session_id}"'}, timeout=5)
        assert wait_until(lambda: client.stats.connects == 2, 15), client.stats
        assert wait_until(lambda: any("Permission denied" in n for n in rec.notices), 5), rec.notices
    else:
        # Digest: Logoff signed with the event session's nonce. Asterisk then builds a new session
        # for that nonce at the next request, silently: the link never looks down. Until the poller's
        # next WaitEvent reaches Asterisk there is no session to queue events for (main/manager.c
        # queues to existing sessions only), so events in that gap are gone whatever the client
        # does; under load the gap outlasted the driver's first UserEvents. Go on once a probe
        # (its own tag, so `expected` stays exact) came through the new session.
        client._call(Action.build("Logoff", action_id="kill-1"), 5.0, control=True)
        probes = itertools.count()
        assert wait_until(lambda: user_events(driver, f"{tag}-probe", next(probes), 1) and rec.seqs(f"{tag}-probe"),
                          15, 0.1), client.stats
    expected += user_events(driver, tag, 50, 50)
    assert wait_until(lambda: rec.seqs(tag) == expected, 15), (len(rec.seqs(tag)), client.stats)


@pytest.mark.parametrize("ajam_client", ["cookie"], indirect=True)
def test_nothing_acknowledged_is_lost_when_asterisk_freezes_and_thaws(pbx, driver, ajam_client):
    client, rec = ajam_client
    tag = f"freeze-{uuid.uuid4().hex[:6]}"
    expected = user_events(driver, tag, 0, 50)
    assert wait_until(lambda: rec.seqs(tag) == expected, 10)
    logins = pbx.log_count("HTTP Manager 'bridge' logged")
    pbx.freeze()                                              # accepts, answers nothing
    try:
        assert wait_until(lambda: any("no HTTP answer" in n for n in rec.notices), 10), rec.notices
    finally:
        pbx.thaw()
    assert wait_until(lambda: client.connected, 15), client.stats
    expected += user_events(driver, tag, 50, 50)
    assert wait_until(lambda: rec.seqs(tag) == expected, 15), (len(rec.seqs(tag)), client.stats)
    assert pbx.log_count("HTTP Manager 'bridge' logged") == logins  # the same session: no new login


@pytest.mark.parametrize("ajam_client", ["digest"], indirect=True)
def test_logs_in_again_and_events_flow_when_asterisk_restarts(pbx, ajam_client):
    client, rec = ajam_client
    pbx.restart()
    assert wait_until(lambda: client.connected and client.stats.connects >= 2, 30), client.stats
    driver = AmiClient(AmiConfig("driver2", "127.0.0.1", pbx.ami_port, DRIVER_USER, DRIVER_SECRET, events="off"))
    driver.start()
    try:
        assert driver.wait_connected(10)
        tag = f"restart-{uuid.uuid4().hex[:6]}"
        expected = user_events(driver, tag, 0, 30)
        assert wait_until(lambda: rec.seqs(tag) == expected, 15), (len(rec.seqs(tag)), client.stats)
    finally:
        driver.stop()
