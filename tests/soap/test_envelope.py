"""bridge/soap/envelope.py: hardened parsing and 1C-friendly normalisation, unit and over real HTTP."""

from __future__ import annotations

import io

import pytest
from lxml import etree

from bridge import ns
from bridge.soap.envelope import BadEnvelope, RequestTooLarge, charset_of, parse, read_body

from .conftest import envelope, sent

CLICK = "<m:ClickToCall><m:extension>202</m:extension><m:number>902</m:number></m:ClickToCall>"

XXE = (f'<?xml version="1.0"?>\n<!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
       f'<s:Envelope xmlns:s="{ns.SOAP11_ENV}"><s:Body><m:ClickToCall xmlns:m="{ns.BRIDGE}">'
       f'<m:extension>&x;</m:extension><m:number>902</m:number></m:ClickToCall></s:Body></s:Envelope>')
LAUGHS = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
          + "".join(f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">' for i in range(1, 10))
          + f']>\n<s:Envelope xmlns:s="{ns.SOAP11_ENV}"><s:Body><m:ClickToCall xmlns:m="{ns.BRIDGE}">'
          f'<m:extension>&lol9;</m:extension><m:number>1</m:number></m:ClickToCall></s:Body></s:Envelope>')


def test_parse_accepts_bom_and_any_prefix_when_envelope_is_hand_written():
    body = b"\xef\xbb\xbf" + envelope(CLICK, prefix="SOAP-ENV").encode()
    parsed = parse(body, "text/xml")
    assert not parsed.soap12 and parsed.root.find(f".//{{{ns.BRIDGE}}}extension").text == "202"


def test_parse_qualifies_children_when_1c_wrote_them_without_namespace():
    body = envelope('<m:ClickToCall><extension>202</extension><number>902</number></m:ClickToCall>')
    parsed = parse(body.encode(), None)
    assert parsed.root.find(f".//{{{ns.BRIDGE}}}number").text == "902"


def test_parse_puts_operation_in_our_namespace_when_written_without_any():
    body = envelope("<ClickToCall><extension>202</extension><number>902</number></ClickToCall>")
    parsed = parse(body.encode(), None)
    assert parsed.root.find(f".//{{{ns.BRIDGE}}}ClickToCall/{{{ns.BRIDGE}}}number").text == "902"


def test_parse_detects_soap12_when_envelope_namespace_is_soap12():
    assert parse(envelope(CLICK, soap12=True).encode(), "application/soap+xml").soap12


def test_parse_decodes_header_charset_when_body_has_no_xml_declaration():
    body = envelope(CLICK.replace("902", "Иван")).split("\n", 1)[1].encode("cp1251")
    parsed = parse(body, 'text/xml; CHARSET="windows-1251"')
    assert parsed.root.find(f".//{{{ns.BRIDGE}}}number").text == "Иван"


@pytest.mark.parametrize("header, expected", [("text/xml; charset=UTF-8", "utf-8"), ("text/xml;Charset=utf-8", "utf-8"),
                                              ("application/soap+xml", None), (None, None)])
def test_charset_of_reads_any_case_when_present(header, expected):
    assert charset_of(header) == expected


@pytest.mark.parametrize("body", [XXE, LAUGHS])
def test_parse_refuses_doctype_when_entities_are_declared(body):
    with pytest.raises(BadEnvelope) as info:
        parse(body.encode(), "text/xml")
    assert info.value.code == "Client.MalformedXml"


@pytest.mark.parametrize("body, code", [(b"", "Client.MalformedXml"), (b"<a><b></a>", "Client.MalformedXml"),
                                        (b"<html/>", "Client.MalformedEnvelope"),
                                        (envelope("").encode(), "Client.MalformedEnvelope")])
def test_parse_refuses_with_stable_code_when_body_is_not_an_envelope(body, code):
    with pytest.raises(BadEnvelope) as info:
        parse(body, "text/xml")
    assert info.value.code == code


def test_read_body_refuses_when_chunked_body_exceeds_limit():
    with pytest.raises(RequestTooLarge):
        read_body({"wsgi.input": io.BytesIO(b"x" * 101)}, 100)
    assert read_body({"wsgi.input": io.BytesIO(b"x" * 100)}, 100) == b"x" * 100


def _fault(response) -> tuple[str, str]:
    root = etree.fromstring(response.content)
    return root.findtext(".//faultcode"), root.findtext(".//faultstring")


@pytest.mark.parametrize("body", [XXE, LAUGHS, "<s:Envelope", "not xml at all"])
def test_http_answers_fault_and_sends_nothing_when_xml_is_hostile_or_broken(url, http, sim, body):
    response = http.post(url, data=body.encode(), headers={"Content-Type": "text/xml"}, timeout=5)
    assert response.status_code == 400
    code, text = _fault(response)
    assert code.endswith("Client.MalformedXml") and text
    assert "root:" not in response.text                       # /etc/passwd never echoed
    assert sent(sim) == []


def test_http_answers_413_and_sends_nothing_when_body_is_too_large(url, http, sim, soap_cfg):
    padding = "<!--" + "x" * soap_cfg.max_body_bytes + "-->"
    response = http.post(url, data=(envelope(CLICK) + padding).encode(), headers={"Content-Type": "text/xml"},
                         timeout=5)
    assert response.status_code == 413
    assert sent(sim) == []


def test_http_answers_413_when_chunked_body_is_too_large(url, http, sim, soap_cfg):
    chunks = iter([envelope(CLICK).encode(), b" " * (soap_cfg.max_body_bytes + 10)])
    response = http.post(url, data=chunks, headers={"Content-Type": "text/xml"}, timeout=5)
    assert response.status_code == 413
    assert sent(sim) == []
