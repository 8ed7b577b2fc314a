"""bridge/soap/wsdl.py: the published WSDL has 1C's shape, a valid schema, and matches wsdl/*.wsdl."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from bridge.config import SoapConfig
from bridge import ns
from bridge.soap.wsdl import CHECKED_IN_BASE_URL, operation_names, render_wsdl, strip_locations

ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN = {"1.1": ROOT / "wsdl" / "bridge.wsdl", "1.2": ROOT / "wsdl" / "bridge12.wsdl"}
NS = {"wsdl": ns.WSDL, "xs": ns.XSD, "soapbind": ns.WSDL_SOAP11, "soap12bind": ns.WSDL_SOAP12}
OPERATIONS = ["ClickToCall", "GetActiveCalls", "GetExtensionState", "GetOriginateStatus", "Hangup", "Originate",
              "Ping", "Redirect"]


@pytest.fixture(scope="module")
def wsdl():
    return etree.fromstring(render_wsdl(SoapConfig(), "1.1", CHECKED_IN_BASE_URL).encode())


def test_wsdl_declares_1c_prefixes_and_names_when_rendered(wsdl):
    assert wsdl.nsmap["soapbind"] == ns.WSDL_SOAP11 and wsdl.nsmap["soap12bind"] == ns.WSDL_SOAP12
    assert wsdl.get("name") == "Bridge" and wsdl.get("targetNamespace") == ns.BRIDGE
    assert etree.QName(wsdl[-1]).localname == "service"
    assert [p.get("name") for p in wsdl.findall("wsdl:service/wsdl:port", NS)] == ["BridgeSoap", "BridgeSoap12"]
    assert wsdl.find("wsdl:portType", NS).get("name") == "BridgePortType"
    assert [b.get("name") for b in wsdl.findall("wsdl:binding", NS)] == ["BridgeSoapBinding", "BridgeSoap12Binding"]


def test_wsdl_has_one_qualified_schema_with_wrappers_when_rendered(wsdl):
    schemas = wsdl.findall("wsdl:types/xs:schema", NS)
    assert len(schemas) == 1
    schema = schemas[0]
    assert (schema.get("elementFormDefault"), schema.get("attributeFormDefault")) == ("qualified", "unqualified")
    assert operation_names() == OPERATIONS
    for op in OPERATIONS:
        assert schema.find(f"xs:element[@name='{op}']/xs:complexType/xs:sequence", NS) is not None
        returned = schema.findall(f"xs:element[@name='{op}Response']/xs:complexType/xs:sequence/xs:element", NS)
        assert [e.get("name") for e in returned] == ["return"]


def test_wsdl_messages_have_one_parameters_part_when_rendered(wsdl):
    for op in OPERATIONS:
        for suffix, element in (("RequestMessage", op), ("ResponseMessage", op + "Response")):
            parts = wsdl.findall(f"wsdl:message[@name='{op}{suffix}']/wsdl:part", NS)
            assert [(p.get("name"), p.get("element")) for p in parts] == [("parameters", f"tns:{element}")]


def test_wsdl_bindings_are_document_literal_with_1c_soap_actions_when_rendered(wsdl):
    for prefix in ("soapbind", "soap12bind"):
        for op in OPERATIONS:
            operation = wsdl.find(f"wsdl:binding/wsdl:operation[@name='{op}']/{prefix}:operation", NS)
            assert operation.get("soapAction") == f"urn:asterisk-bridge#Bridge:{op}"
            assert operation.get("style") == "document"
        assert {b.get("use") for b in wsdl.iterfind(f".//{prefix}:body", NS)} == {"literal"}


def test_wsdl_schema_compiles_with_lxml_when_extracted(wsdl):
    schema = etree.XMLSchema(wsdl.find("wsdl:types/xs:schema", NS))
    request = etree.fromstring(f'<m:ClickToCall xmlns:m="{ns.BRIDGE}"><m:extension>202</m:extension>'
                               f'<m:number>902</m:number></m:ClickToCall>')
    assert schema.validate(request)
    wrong = etree.fromstring(f'<m:Originate xmlns:m="{ns.BRIDGE}"><m:channel>x</m:channel>'
                             f'<m:priority>abc</m:priority></m:Originate>')
    assert not schema.validate(wrong)


def test_soap12_wsdl_has_only_the_soap12_port_when_rendered():
    root = etree.fromstring(render_wsdl(SoapConfig(), "1.2", CHECKED_IN_BASE_URL).encode())
    assert [p.get("name") for p in root.findall("wsdl:service/wsdl:port", NS)] == ["BridgeSoap12"]
    assert root.find("wsdl:service/wsdl:port/soap12bind:address", NS).get("location") == \
        CHECKED_IN_BASE_URL + "/bridge12"


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_checked_in_wsdl_matches_render_wsdl_when_regenerated(version):
    assert CHECKED_IN[version].read_text("utf-8") == render_wsdl(SoapConfig(), version, CHECKED_IN_BASE_URL), \
        "regenerate with: python -m bridge.soap.wsdl"


@pytest.mark.parametrize("version, path", [("1.1", "/bridge?wsdl"), ("1.2", "/bridge12?wsdl")])
def test_checked_in_wsdl_matches_served_wsdl_when_addresses_are_ignored(server, http, version, path):
    served = http.get(server.url + path, timeout=5)
    assert served.status_code == 200
    assert strip_locations(served.content) == strip_locations(CHECKED_IN[version].read_bytes())
    assert f"{server.url}/bridge".encode() in served.content


def test_render_wsdl_uses_listen_address_when_no_base_url_is_given():
    text = render_wsdl(SoapConfig(listen="0.0.0.0:8443", path="/pbx", tls_cert="c.pem"), "1.1")
    assert 'location="https://localhost:8443/pbx"' in text and 'location="https://localhost:8443/pbx12"' in text


def test_render_wsdl_refuses_unknown_version():
    with pytest.raises(ValueError):
        render_wsdl(SoapConfig(), "2.0")
