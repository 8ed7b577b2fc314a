"""bridge/soap/service.py: every operation over real HTTP (zeep and raw envelopes) against the AMI simulator."""

from __future__ import annotations

import pytest
import zeep
from lxml import etree
from zeep.transports import Transport

from bridge import ns

from bridge.testing.helpers import wait_until

from .conftest import WAIT_S, envelope, sent

B = f"{{{ns.BRIDGE}}}"


def post(http, url, body: str, *, soap12: bool = False, content_type: str | None = None, **headers):
    ctype = content_type or ("application/soap+xml; charset=utf-8" if soap12 else "text/xml; charset=utf-8")
    return http.post(url, data=body.encode("utf-8"), headers={"Content-Type": ctype, **headers}, timeout=WAIT_S)


def result(response) -> etree._Element:
    assert response.status_code == 200, response.text
    return etree.fromstring(response.content).find(f".//{B}return")


def fault(response) -> tuple[str, str]:
    root = etree.fromstring(response.content)
    code = root.findtext(".//faultcode")
    if code is None:   # SOAP 1.2: Code/Value + Subcode/Value
        values = [e.text for e in root.iter(f"{{{ns.SOAP12_ENV}}}Value")]
        code = ".".join(values)
        return code, root.findtext(f".//{{{ns.SOAP12_ENV}}}Text")
    return code, root.findtext(".//faultstring")


def active_calls(zeep_client, extension=None) -> list:
    # zeep unwraps a `return` whose only child is the repeated `call` into a plain list.
    return zeep_client.service.GetActiveCalls(extension=extension) or []


# The simulator plays a ClickToCall as a whole call (ring, answer, talk, hang up), ~7 s of script
# times this scale: at 5 each step is 50 ms and the call lasts ~35 s unless the test hangs it up,
# which it does. (At 0.2 the call lived 1.4 s and ended by itself before a slow run's Hangup.)
LIVE_CALL_SCALE = 5.0


def status_of(zeep_client, originate_id):
    return zeep_client.service.GetOriginateStatus(originateId=originate_id)


# --- zeep, from the served WSDL --------------------------------------------------------------------

def test_ping_reports_ami_link_and_outbox_when_called_through_zeep(zeep_client):
    answer = zeep_client.service.Ping()
    assert answer.version and answer.outboxPending == 7
    [server] = answer.servers.server
    assert server.name == "pbx1" and server.connected is True and server.amiVersion.startswith(("9", "11"))


def test_originate_reaches_success_when_originate_response_arrives(zeep_client, sim):
    originate_id = zeep_client.service.Originate(
        channel="PJSIP/202", context="from-internal", exten="902", priority=1, callerId='"CRM" <202>',
        timeoutMs=20000, variables={"variable": ["ORDER_ID=42", "__CRM=1"]}, account="crm")
    assert wait_until(lambda: status_of(zeep_client, originate_id).status != "pending")
    status = status_of(zeep_client, originate_id)
    assert (status.status, status.reason, status.uniqueid) == ("success", "answered", originate_id)
    [action] = sent(sim, "Originate")
    assert action.get("Async") == "true" and action.get("ChannelId") == originate_id
    assert action.action_id == originate_id
    assert action.get_all("Variable") == ["ORDER_ID=42", "__CRM=1"]
    assert (action.get("Timeout"), action.get("Account")) == ("20000", "crm")


@pytest.mark.parametrize("profile", ["asterisk11"])
def test_originate_sends_no_channel_id_when_asterisk_is_older_than_13(zeep_client, sim, profile):
    originate_id = zeep_client.service.Originate(channel="SIP/202", context="from-internal", exten="902")
    assert wait_until(lambda: status_of(zeep_client, originate_id).status != "pending")
    status = status_of(zeep_client, originate_id)
    assert status.status == "success" and status.uniqueid and status.uniqueid != originate_id
    [action] = sent(sim, "Originate")
    assert action.get("ChannelId") is None and action.get("Priority") == "1"


def test_originate_reports_failure_when_the_callee_is_busy(zeep_client):
    originate_id = zeep_client.service.Originate(channel="PJSIP/202", context="from-internal", exten="999",
                                                 priority=1)
    assert wait_until(lambda: status_of(zeep_client, originate_id).status != "pending")
    status = status_of(zeep_client, originate_id)
    assert (status.status, status.reason) == ("failure", "busy")


def test_get_originate_status_faults_when_id_is_unknown(zeep_client):
    with pytest.raises(zeep.exceptions.Fault) as info:
        status_of(zeep_client, "0123456789abcdef")
    assert info.value.code.endswith("Client.NotFound")


@pytest.mark.parametrize("time_scale", [LIVE_CALL_SCALE])
def test_click_to_call_shows_an_active_call_when_the_phone_rings(zeep_client, sim, time_scale):
    originate_id = zeep_client.service.ClickToCall(extension="202", number="902")
    assert wait_until(lambda: active_calls(zeep_client, "202"))
    [call] = active_calls(zeep_client, "202")
    assert call.id == originate_id                      # ChannelId made the first Uniqueid = Linkedid
    assert getattr(call, "from") == "202" and call.started is not None
    [action] = sent(sim, "Originate")
    assert (action.get("Channel"), action.get("Context"), action.get("Exten")) == ("PJSIP/202", "from-internal", "902")
    state = zeep_client.service.GetExtensionState(extension="202")
    assert state.state in ("ringing", "in_use") and state.callId == originate_id
    assert zeep_client.service.Hangup(callId=originate_id) >= 1
    assert wait_until(lambda: not active_calls(zeep_client, "202"))


def test_click_to_call_events_reach_the_subscriber_when_the_call_is_answered(zeep_client, stack):
    sink = stack[2]
    originate_id = zeep_client.service.ClickToCall(extension="202", number="902")

    def names(accepted):
        return [e.name for e, subs in accepted if e.kind == "normalized" and e.get("CallId") == originate_id
                and subs == ("erp",)]

    assert sink.wait_for(lambda accepted: "CallEnded" in names(accepted))
    seen = names(sink.accepted)
    assert seen[0] == "CallRinging" and "CallAnswered" in seen


@pytest.mark.parametrize("time_scale", [LIVE_CALL_SCALE])
def test_redirect_and_hangup_reach_asterisk_when_the_channel_is_live(zeep_client, sim, tracker, time_scale):
    originate_id = zeep_client.service.ClickToCall(extension="202", number="902")
    assert wait_until(lambda: tracker.call(originate_id) is not None and tracker.call(originate_id).legs)
    channel = tracker.call(originate_id).legs[0].channel
    assert zeep_client.service.Redirect(channel=channel, context="from-internal", exten="903") is True
    assert zeep_client.service.Hangup(channel=channel) == 1
    assert [m.get("Channel") for m in sent(sim, "Redirect", "Hangup")] == [channel, channel]
    assert wait_until(lambda: not active_calls(zeep_client, "202"))


def test_get_extension_state_is_idle_when_nothing_rings(zeep_client, sim):
    state = zeep_client.service.GetExtensionState(extension="203", context="ext-local")
    assert (state.state, state.statusCode, state.callId) == ("idle", 0, None)
    zeep_client.service.GetExtensionState(extension="203", context="ext-local")
    assert len(sent(sim, "ExtensionState")) == 1     # the second answer came from the cache


def test_hangup_faults_with_asterisk_text_when_channel_does_not_exist(zeep_client):
    with pytest.raises(zeep.exceptions.Fault) as info:
        zeep_client.service.Hangup(channel="PJSIP/404-00000001")
    assert info.value.code.endswith("Server.AmiActionFailed") and "No such channel" in info.value.message


def test_redirect_faults_when_channel_does_not_exist(zeep_client, sim):
    with pytest.raises(zeep.exceptions.Fault) as info:
        zeep_client.service.Redirect(channel="PJSIP/404-00000001", context="from-internal", exten="903")
    assert info.value.code.endswith("Server.AmiActionFailed")
    assert len(sent(sim, "Redirect")) == 1


def test_soap12_endpoint_serves_every_call_when_client_uses_bridge12_wsdl(server, http, sim):
    client = zeep.Client(server.url + "/bridge12?wsdl", transport=Transport(session=http, timeout=WAIT_S))
    assert client.service.Ping().servers.server[0].connected is True
    with pytest.raises(zeep.exceptions.Fault) as info:
        client.service.ClickToCall(extension="202\r\nAction: Command", number="902")
    assert "control characters" in info.value.message
    assert sent(sim, "Originate") == []


# --- raw envelopes, as 1C's HTTPConnection sends them --------------------------------------------

CLICK = "<m:ClickToCall><m:extension>202</m:extension><m:number>902</m:number></m:ClickToCall>"


@pytest.mark.parametrize("content_type, extra", [
    ("text/xml; charset=utf-8", {"SOAPAction": '"urn:asterisk-bridge#Bridge:ClickToCall"'}),
    ("text/xml;Charset=UTF-8", {}),
    ("text/xml", {}),
    ("application/soap+xml; charset=utf-8", {}),
])
def test_click_to_call_accepts_hand_written_envelope_when_headers_vary(url, http, sim, content_type, extra):
    body = "\ufeff" + envelope(CLICK, prefix="soap")
    originate_id = result(post(http, url, body, content_type=content_type, **extra)).text
    assert len(originate_id) == 32
    assert [a.action_id for a in sent(sim, "Originate")] == [originate_id]


def test_click_to_call_accepts_soap12_envelope_when_posted_to_bridge12(url, http, sim):
    body = envelope("<m:ClickToCall><extension>202</extension><number>902</number></m:ClickToCall>", soap12=True)
    assert result(post(http, url + "12", body, soap12=True)).text
    assert len(sent(sim, "Originate")) == 1


def test_every_operation_answers_when_called_with_raw_envelopes(url, http, sim):
    ping = result(post(http, url, envelope("<m:Ping/>")))
    assert ping.findtext(f"{B}servers/{B}server/{B}name") == "pbx1"
    originate_id = result(post(http, url, envelope(
        "<m:Originate><m:channel>PJSIP/202</m:channel><m:context>from-internal</m:context>"
        "<m:exten>902</m:exten><m:priority>1</m:priority></m:Originate>"))).text
    assert wait_until(lambda: result(post(http, url, envelope(
        f"<m:GetOriginateStatus><m:originateId>{originate_id}</m:originateId></m:GetOriginateStatus>")))
        .findtext(f"{B}status") == "success")
    state = result(post(http, url, envelope("<m:GetExtensionState><m:extension>205</m:extension>"
                                            "</m:GetExtensionState>")))
    assert state.findtext(f"{B}state") == "idle"
    calls = result(post(http, url, envelope("<m:GetActiveCalls/>")))
    assert calls is not None
    code, text = fault(post(http, url, envelope("<m:Hangup><m:channel>PJSIP/404-1</m:channel></m:Hangup>")))
    assert code.endswith("Server.AmiActionFailed") and "No such channel" in text
    code, _ = fault(post(http, url, envelope("<m:Redirect><m:channel>PJSIP/404-1</m:channel><m:context>"
                                             "from-internal</m:context><m:exten>903</m:exten></m:Redirect>")))
    assert code.endswith("Server.AmiActionFailed")


# --- bad input: a Fault or 4xx, and nothing reaches AMI ------------------------------------------

INJECT = "&#13;&#10;Action: Command&#13;&#10;Command: core stop now&#13;&#10;"
FIELDS = {
    "Originate": ["server", "channel", "context", "exten", "callerId", "account", "variables/variable"],
    "ClickToCall": ["extension", "number", "callerId"],
    "GetExtensionState": ["extension", "context"],
    "GetOriginateStatus": ["originateId"],
    "GetActiveCalls": ["extension"],
    "Hangup": ["channel", "callId", "server"],
    "Redirect": ["channel", "context", "exten", "server"],
}
VALID = {"server": "pbx1", "channel": "PJSIP/202", "context": "from-internal", "exten": "902", "callerId": "202",
         "account": "crm", "variables/variable": "A=1", "extension": "202", "number": "902",
         "originateId": "abc", "callId": "1.2"}


def _body(op: str, bad_field: str) -> str:
    parts = []
    for field in FIELDS[op]:
        value = VALID[field] + (INJECT if field == bad_field else "")
        if "/" in field:
            outer, inner = field.split("/")
            parts.append(f"<m:{outer}><m:{inner}>{value}</m:{inner}></m:{outer}>")
        else:
            parts.append(f"<m:{field}>{value}</m:{field}>")
        if op == "Originate" and field == "exten":
            parts.append("<m:priority>1</m:priority>")
    return f"<m:{op}>{''.join(parts)}</m:{op}>"


@pytest.mark.parametrize("op, field", [(op, f) for op, fields in FIELDS.items() for f in fields])
def test_crlf_injection_is_a_client_fault_when_in_any_string_field(url, http, sim, op, field):
    response = post(http, url, envelope(_body(op, field)))
    assert response.status_code == 500
    code, text = fault(response)
    assert code.endswith("Client.InvalidArgument") and "control characters" in text
    assert sent(sim) == []


@pytest.mark.parametrize("body", [
    "<m:Originate><m:channel>PJSIP/202</m:channel><m:context>from-internal</m:context><m:exten>902</m:exten>"
    "<m:priority>abc</m:priority></m:Originate>",
    "<m:Originate><m:channel>PJSIP/202</m:channel><m:context>from-internal</m:context><m:exten>902</m:exten>"
    "<m:timeoutMs>1e9</m:timeoutMs></m:Originate>",
])
def test_wrong_types_are_a_client_fault_when_a_number_is_not_an_integer(url, http, sim, body):
    code, text = fault(post(http, url, envelope(body)))
    assert code.endswith("Client.InvalidArgument") and "wrong type" in text
    assert sent(sim) == []


def test_unknown_operation_is_a_client_fault_when_not_in_the_wsdl(url, http, sim):
    code, _ = fault(post(http, url, envelope("<m:Command><m:command>core stop now</m:command></m:Command>")))
    assert code.split(":")[-1].startswith("Client.")
    assert sent(sim) == []


def test_disallowed_context_is_refused_when_allow_list_is_set(url, http, sim):
    code, text = fault(post(http, url, envelope(
        "<m:Originate><m:channel>PJSIP/202</m:channel><m:context>default</m:context><m:exten>902</m:exten>"
        "</m:Originate>")))
    assert code.endswith("Client.NotAllowed") and "default" in text
    assert sent(sim) == []


def test_missing_required_field_is_a_client_fault_when_omitted(url, http, sim):
    code, text = fault(post(http, url, envelope("<m:ClickToCall><m:number>902</m:number></m:ClickToCall>")))
    assert code.endswith("Client.InvalidArgument") and "extension" in text
    assert sent(sim) == []


def test_get_extension_state_is_not_found_when_the_extension_has_no_hint(zeep_client, sim):
    # Asterisk 22.10.1 answers Status -1 (StatusText Unknown, Hint empty) for such an extension.
    state = zeep_client.service.GetExtensionState(extension="99999", context="ext-local")
    assert state.state == "not_found" and state.statusCode == -1
