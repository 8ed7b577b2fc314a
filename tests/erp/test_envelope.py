"""bridge/erp/envelope.py + wsdl/events.wsdl: the envelope validates and a zeep client reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from bridge.events.model import NORMALIZED, BridgeEvent
from bridge.erp.envelope import build_envelope, redact
from bridge import ns

from tests.outbox.conftest import make_event

WSDL = Path(__file__).resolve().parents[2] / "wsdl" / "events.wsdl"


@pytest.fixture(scope="module")
def schema():
    wsdl = etree.parse(str(WSDL))
    xsd = wsdl.find(f"{{{ns.WSDL}}}types/{{{ns.XSD}}}schema")
    return etree.XMLSchema(xsd)


@pytest.fixture(scope="module")
def push_event_input():
    import zeep

    client = zeep.Client(str(WSDL))
    return client.wsdl.bindings[f"{{{ns.EVENTS}}}EventsSoapBinding"]._operations["PushEvent"].input


def body_element(envelope: str):
    root = etree.fromstring(envelope.encode("utf-8"))
    assert root.tag == f"{{{ns.SOAP11_ENV}}}Envelope"
    return root.find(f"{{{ns.SOAP11_ENV}}}Body")[0]


def test_envelope_validates_against_events_wsdl_schema_when_raw_event(schema):
    schema.assertValid(body_element(build_envelope(make_event("1700000000.1", 0))))


def test_envelope_carries_call_fields_and_headers_when_normalized(schema, push_event_input):
    e = BridgeEvent(server="pbx1", name="CallEnded", kind=NORMALIZED,
                    headers=(("CallId", "17.1"), ("Reason", "answered"), ("CallerIDName", "Оператор-202")),
                    text="", order_key="17.1",
                    call={"callid": "17.1", "Billsec": "12", "Extension": "202", "NotInSchema": "x"})
    env = build_envelope(e)
    schema.assertValid(body_element(env))
    parsed = push_event_input.deserialize(etree.fromstring(env.encode()))
    assert parsed.id == e.event_uuid and parsed.server == "pbx1" and parsed.name == "CallEnded"
    assert (parsed.call.CallId, parsed.call.Extension, parsed.call.Billsec) == ("17.1", "202", "12")
    assert [(h["name"], h["_value_1"]) for h in parsed.headers.header] == list(e.headers)


def test_control_characters_are_escaped_when_ami_value_cannot_be_xml(schema, push_event_input):
    e = make_event("1.1", 0)
    e = BridgeEvent(server="p\x00bx", name="Weird", kind="raw",
                    headers=(("Na\x01me", "a\x00b\x1b<&>\"'\r\nz\ud800\ufffe"),), text="", order_key="1.1")
    env = build_envelope(e)
    schema.assertValid(body_element(env))
    parsed = push_event_input.deserialize(etree.fromstring(env.encode()))
    assert parsed.server == "p\\x00bx"
    assert parsed.headers.header[0]["name"] == "Na\\x01me"
    assert parsed.headers.header[0]["_value_1"] == "a\\x00b\\x1b<&>\"'\r\nz\\ud800\\ufffe"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1, max_size=20), st.text(max_size=50)), max_size=8), st.text())
def test_envelope_is_always_well_formed_and_valid_when_any_text(headers, server):
    wsdl = etree.parse(str(WSDL))
    xsd = etree.XMLSchema(wsdl.find(f"{{{ns.WSDL}}}types/{{{ns.XSD}}}schema"))
    e = BridgeEvent(server=server, name="X", kind="raw", headers=tuple(headers), text="", order_key="k")
    body = body_element(build_envelope(e))
    xsd.assertValid(body)
    assert len(body.find(f"{{{ns.EVENTS}}}headers")) == len(headers)


def test_redact_masks_secret_looking_headers_when_logging():
    e = BridgeEvent(server="pbx", name="UserEvent", kind="raw",
                    headers=(("Secret", "hunter2"), ("AuthToken", "abc"), ("Exten", "202")), text="",
                    order_key="k")
    out = redact(build_envelope(e))
    assert "hunter2" not in out and "abc<" not in out and ">202<" in out


def test_originate_id_reaches_the_call_element_when_the_bridge_placed_the_call(schema, push_event_input):
    # A ClickToCall/Originate call: 1C matches its click to the call by the id it was returned.
    e = BridgeEvent(server="pbx1", name="CallRinging", kind=NORMALIZED,
                    headers=(("CallId", "abc"), ("Extension", "601"), ("OriginateId", "abc")),
                    text="", order_key="abc", call={"CallId": "abc", "Extension": "601", "OriginateId": "abc"})
    env = build_envelope(e)
    schema.assertValid(body_element(env))
    assert push_event_input.deserialize(etree.fromstring(env.encode())).call.OriginateId == "abc"
