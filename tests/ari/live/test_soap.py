"""The SOAP service over ARI against the real Asterisk 22: ClickToCall, Originate, Hangup, Redirect, states."""

from __future__ import annotations

import pytest
import requests
import zeep
from zeep.transports import Transport

from bridge.ami.actions import Action
from bridge.config import ClickToCallConfig, SoapConfig
from bridge.soap.app import build_app
from bridge.soap.backend import BridgeBackend
from bridge.soap.server import SoapServer
from bridge.testing.helpers import RecordingListener, wait_until
from tests.ari.live.stack import bridge_for

pytestmark = pytest.mark.asterisk

USER, PASSWORD = "1c", "secret-1c"


@pytest.fixture(scope="module")
def soap(pbx):
    """ARI client → pipeline/call model → BridgeBackend → SOAP over HTTP; an AMI client beside it as reference."""
    ari, ami = bridge_for(pbx, "ari", hint_device="Custom:phone{extension}"), bridge_for(pbx, "tcp")
    raw = RecordingListener()
    ari.client.add_listener(raw)
    cfg = SoapConfig(listen="127.0.0.1:0", users={USER: PASSWORD},
                     click_to_call=ClickToCallConfig(channel="Local/{extension}@phones", context="calls"),
                     allowed_contexts=("calls", "phones", "parked"), allowed_channels=(r"Local/.+",))
    backend = BridgeBackend({"pbx": ari.client}, ari.tracker, soap_cfg=cfg)
    ari.start()
    ami.start()
    server = SoapServer(build_app(backend, cfg), "127.0.0.1:0", threads=4)
    server.start()
    session = requests.Session()
    session.auth = (USER, PASSWORD)
    client = zeep.Client(server.url + "/bridge?wsdl", transport=Transport(session=session, timeout=10))
    try:
        yield client, ari, ami, raw
    finally:
        server.stop()
        ari.client.stop()
        ami.client.stop()


def test_click_to_call_is_answered_and_reported_when_placed_over_ari(soap):
    client, ari, _, _ = soap
    originate_id = client.service.ClickToCall(extension="401", number="102")
    assert wait_until(lambda: ari.call_ended(originate_id), timeout_s=15)
    # The operator's phone (401) rings and picks up, then the number (102) rings, answers, hangs up.
    story = [(e.name, e.get("Extension"), e.get("CallerIDNum"), e.get("CalleeNum"), e.get("AnsweredBy") or "")
             for e in ari.sink.normalized(originate_id)]
    assert story == [("CallRinging", "401", "401", "102", ""), ("CallAnswered", "401", "401", "102", "401"),
                     ("CallRinging", "102", "401", "102", ""), ("CallAnswered", "102", "401", "102", "102"),
                     ("CallEnded", "102", "401", "102", "102")]
    status = client.service.GetOriginateStatus(originateId=originate_id)
    assert (status.status, status.reason, status.uniqueid) == ("success", "answered", originate_id)


def test_originate_carries_cyrillic_caller_id_and_variables_when_sent_over_rest(soap):
    client, ari, _, raw = soap
    variables = {"variable": ["GREETING=привет"]}
    originate_id = client.service.Originate(channel="Local/402@phones", context="calls", exten="102",
                                            callerId="Пётр Иванов <402>", variables=variables)
    assert wait_until(lambda: ari.call_ended(originate_id), timeout_s=15)
    ended = ari.sink.normalized(originate_id)[-1]
    assert (ended.get("CallerIDName"), ended.get("CallerIDNum"), ended.get("Reason")) == ("Пётр Иванов", "402",
                                                                                         "answered")
    assert any(m.event == "ChannelVarset" and m.get("channel.id") == originate_id and m.get("variable") == "GREETING"
               and m.get("value") == "привет" for m in raw.events)
    # No otherChannelId sent: Asterisk names the Local pair's far half <channelId>;2 by itself (as for
    # AMI's Originate without OtherChannelId), so both halves carry the originate's id.
    assert any(m.event == "ChannelCreated" and m.get("channel.id") == f"{originate_id};2" for m in raw.events)


def test_hangup_by_call_id_ends_a_ringing_call_when_asked_over_ari(soap):
    client, ari, _, _ = soap
    originate_id = client.service.ClickToCall(extension="403", number="205")   # 205 rings, never answers
    assert wait_until(lambda: [e for e in ari.sink.normalized(originate_id) if e.name == "CallRinging"
                               and e.get("Extension") == "205"], timeout_s=10)
    calls = client.service.GetActiveCalls(extension="205")
    assert [c.id for c in getattr(calls, "call", calls)] == [originate_id]
    assert client.service.Hangup(callId=originate_id) >= 1
    assert wait_until(lambda: ari.call_ended(originate_id), timeout_s=10)
    ended = ari.sink.normalized(originate_id)[-1]
    assert ended.get("Reason") != "answered" and ended.get("HangupBy") in ("caller", "")


def test_hangup_by_channel_name_and_redirect_fault_when_the_helper_context_is_missing(soap):
    client, ari, _, _ = soap
    originate_id = client.service.ClickToCall(extension="404", number="405")   # both answer and talk 20 s
    assert wait_until(lambda: any(e.name == "CallAnswered" and e.get("Extension") == "405"
                                  for e in ari.sink.normalized(originate_id)), timeout_s=10)
    legs = ari.tracker.call(originate_id).legs
    callee = next((leg.channel for leg in legs if leg.extension == "405"), None)
    assert callee, legs
    # This PBX has no [asterisk-bridge-redirect] (the default redirect_context): the helper ends
    # without running ChannelRedirect and the caller learns why, naming the context.
    with pytest.raises(zeep.exceptions.Fault) as info:
        client.service.Redirect(channel=callee, context="parked", exten="900")
    assert "[asterisk-bridge-redirect] did not run ChannelRedirect" in info.value.message
    assert client.service.Hangup(channel=callee) == 1
    assert wait_until(lambda: ari.call_ended(originate_id), timeout_s=10)
    with pytest.raises(zeep.exceptions.Fault) as info:
        client.service.Hangup(channel=callee)
    assert "no such channel" in info.value.message.lower()


def test_redirect_moves_a_channel_that_runs_dialplan_when_the_helper_context_exists(pbx, soap):
    _, _, ami, _ = soap
    # Its own app name: Asterisk hands an app's events to its newest WebSocket only (the fixture's
    # client would go deaf).
    ari = bridge_for(pbx, "ari", mode="both", redirect_context="bridge-redirect", app="second-bridge")
    ari.start()
    try:
        ami.client.send_action(Action.build("Originate", Channel="Local/406@phones", Context="calls", Exten="407",
                                            Priority=1, CallerID="Ольга <406>", ChannelId="redirect-me",
                                            Async=True)).result(5)
        assert wait_until(lambda: any(e.name == "CallAnswered" and e.get("Extension") == "407"
                                      for e in ari.sink.normalized("redirect-me")), timeout_s=10)
        callee = next(leg.channel for leg in ari.tracker.call("redirect-me").legs if leg.extension == "407")
        result = ari.client.send_action(Action.build("Redirect", Channel=callee, Context="parked", Exten="900",
                                                     Priority=1)).result(10)
        assert result.response.get("Response") == "Success"
        # 407's Local half left the call's Dial for [parked] 900, which hangs up after 1 s.
        assert wait_until(lambda: ari.call_ended("redirect-me"), timeout_s=10)
        raw = [e for e, _ in ari.sink.accepted if e.kind == "raw"]
        assert any(e.get("Event") == "ChannelDialplan" and e.get("channel.name") == callee
                   and e.get("channel.dialplan.context") == "parked" for e in raw)
        # The helper pair is the bridge's own plumbing, no call of anyone's: no event names it.
        assert [e for e in ari.sink.normalized() if "-redirect-" in (e.get("CallId") or "")] == []
        assert [e for e in raw if "-redirect-" in e.text] == []
    finally:
        ari.client.stop()


def test_originate_status_is_busy_when_the_first_party_is_busy(soap):
    client, _, _, _ = soap
    originate_id = client.service.Originate(channel="Local/301@phones", context="calls", exten="102")
    assert wait_until(lambda: client.service.GetOriginateStatus(originateId=originate_id).status != "pending",
                      timeout_s=10)
    status = client.service.GetOriginateStatus(originateId=originate_id)
    assert (status.status, status.reason) == ("failure", "busy")


@pytest.mark.parametrize("device_state, expected", [("NOT_INUSE", "idle"), ("INUSE", "in_use"),
                                                    ("UNAVAILABLE", "unavailable")])
def test_extension_state_over_ari_equals_ami_when_the_hint_changes(soap, device_state, expected):
    client, _, ami, _ = soap
    ami.client.send_action(Action.build("Setvar", Variable="DEVICE_STATE(Custom:phone101)",
                                        Value=device_state)).result(5)
    over_ami = ami.client.send_action(Action.build("ExtensionState", Exten="101", Context="phones")).result(5)
    # The cache forgets on the DeviceStateChanged event, which may trail the Setvar answer a little.
    assert wait_until(lambda: client.service.GetExtensionState(extension="101", context="phones").state == expected,
                      timeout_s=5)
    state = client.service.GetExtensionState(extension="101", context="phones")
    assert (state.state, state.statusCode) == (expected, int(over_ami.response.get("Status")))
