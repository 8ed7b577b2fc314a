"""examples/1c and wsdl/events.xsd: what the dispatcher sends validates against what 1C imports."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from lxml import etree

from bridge.cli import main
from bridge.erp.envelope import build_batch, build_envelope
from bridge import ns

ROOT = Path(__file__).parent.parent.parent
XSD = ROOT / "wsdl" / "events.xsd"
WSDL = ROOT / "wsdl" / "events.wsdl"
EXAMPLES = ROOT / "examples" / "1c"
PROFILES = ("asterisk11", "asterisk20")
SCENARIOS = ("answered", "noanswer", "busy", "caller-hangup-ringing", "queue", "blind-transfer", "originate")


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD)))


def push_event(envelope: str | bytes) -> etree._Element:
    root = etree.fromstring(envelope.encode("utf-8") if isinstance(envelope, str) else envelope)
    body = root.find(f"{{{ns.SOAP11_ENV}}}Body")
    return body[0]


def test_events_xsd_is_the_schema_inside_events_wsdl():
    inline = etree.parse(str(WSDL)).find(f"{{{ns.WSDL}}}types/{{{ns.XSD}}}schema")
    standalone = etree.parse(str(XSD)).getroot()

    def shape(el):
        return [(e.tag, sorted(e.attrib.items())) for e in el.iter() if isinstance(e.tag, str)] + \
               [(e.text or "").strip() for e in el.iter(f"{{{ns.XSD}}}documentation")]

    assert shape(inline) == shape(standalone)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_envelope_of_a_simulated_call_validates_against_events_xsd(schema, profile, scenario):
    from tests.calls.support import play

    _, events = play(profile, scenario)
    assert events
    for event in events:
        schema.assertValid(push_event(build_envelope(event)))


def test_call_fields_reach_the_envelope_with_times_and_originate_id(schema):
    from tests.calls.support import play

    _, events = play("asterisk20", "answered")
    ended = [e for e in events if e.name == "CallEnded" and dict(e.headers)["CallState"] == "ended"][-1]
    ended = replace(ended, call={**ended.call, "OriginateId": "11e46781ed5e4b73a1af95285d67e9d9"})
    call = push_event(build_envelope(ended)).find(f"{{{ns.EVENTS}}}call")
    schema.assertValid(push_event(build_envelope(ended)))
    fields = {etree.QName(el).localname: el.text for el in call}
    assert fields["CallState"] == "ended" and fields["OriginateId"] == "11e46781ed5e4b73a1af95285d67e9d9"
    assert list(fields)[-1] == "OriginateId"                     # the schema's order
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", fields["EndTime"])
    assert "StartTime" in fields and fields["HangupBy"] in ("caller", "callee", None)


def test_raw_events_and_the_checked_in_sample_validate(schema):
    from tests.outbox.conftest import make_event

    schema.assertValid(push_event(build_envelope(make_event("1700000000.1", 0))))
    sample = (EXAMPLES / "PushEvent-CallRinging.xml").read_bytes()
    schema.assertValid(push_event(sample))


def test_an_envelope_with_an_empty_time_field_leaves_it_out(schema):
    from tests.calls.support import play

    ringing = play("asterisk20", "answered")[1][0]
    emptied = replace(ringing, call={**ringing.call, "StartTime": ""})
    schema.assertValid(push_event(build_envelope(emptied)))


def test_bsl_handler_takes_the_parameters_of_the_xsd_in_order():
    module = (EXAMPLES / "WebService.AsteriskEvents.Module.bsl").read_text(encoding="utf-8")
    params = re.search(r"Функция PushEvent\(([^)]*)\)", module).group(1)
    xsd = etree.parse(str(XSD))
    assert xsd.find(f"{{{ns.XSD}}}element[@name='PushEvent']").get("type") == "tns:Event"
    event_type = xsd.find(f"{{{ns.XSD}}}complexType[@name='Event']")
    expected = [e.get("name") for e in event_type.iter(f"{{{ns.XSD}}}element")]
    assert [p.strip() for p in params.split(",")] == expected
    assert "ИдСобытия" in module and "БлокировкаДанных" in module   # idempotent by id
    batch = xsd.find(f"{{{ns.XSD}}}element[@name='PushEvents']")
    assert [e.get("name") for e in batch.iter(f"{{{ns.XSD}}}element")][1:] == ["events"]
    assert re.search(r"Функция PushEvents\(events\)", module)
    assert "Для Каждого Событие Из events.event Цикл" in module      # the batch, event by event


def test_every_batch_of_simulated_calls_and_the_checked_in_batch_sample_validate(schema):
    from tests.calls.support import play

    events = [e for scenario in SCENARIOS for e in play("asterisk20", scenario)[1]]
    batch = push_event(build_batch([build_envelope(e) for e in events]))
    schema.assertValid(batch)
    ids = [el.text for el in batch.iter(f"{{{ns.EVENTS}}}id")]
    assert ids == [e.event_uuid for e in events]                   # every event, in the given order
    sample = push_event((EXAMPLES / "PushEvents-batch.xml").read_bytes())
    schema.assertValid(sample)
    assert etree.QName(sample).localname == "PushEvents" and len(sample[0]) == 2


@pytest.mark.parametrize("args,path", [(["--events"], WSDL), (["--events", "--xsd"], XSD), (["--xsd"], XSD)])
def test_wsdl_events_prints_the_files_shipped_in_the_package(capsys, args, path):
    assert main(["wsdl", *args]) == 0
    assert capsys.readouterr().out == path.read_text(encoding="utf-8")
