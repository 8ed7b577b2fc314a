"""The WSDL we publish, rebuilt around spyne's schema in the shape a 1C server gives its own services.

1C's WS-reference importer is sure to digest what 1C itself publishes (design.md, "The WSDL
shape 1C publishes"), so we keep spyne's XML Schema for the types and write the rest
ourselves: wrapper elements with anonymous types, `OpRequestMessage`/`OpResponseMessage` with
one part `parameters`, `BridgePortType`, `BridgeSoapBinding`/`BridgeSoap12Binding` with
soapAction `urn:asterisk-bridge#Bridge:Op`, and `service` last. Only element names, not
message or binding names, travel on the wire, so spyne still accepts what a client built
from this WSDL sends. The output is canonical (sorted) so the checked-in copies are stable.

`wsdl/bridge.wsdl` carries both bindings and ports, as 1C's own WSDLs do; `wsdl/bridge12.wsdl`
carries only the SOAP 1.2 ones, so tools that take the first port talk SOAP 1.2.
"""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

from lxml import etree
from spyne import Application
from spyne.interface.wsdl import Wsdl11
from spyne.protocol.soap import Soap11

from bridge.config import SoapConfig
from bridge import ns
from bridge.soap.service import SERVICE_NAME, BridgeService

# The checked-in wsdl/*.wsdl use this base address: what `listen = "127.0.0.1:8080"` serves,
# spelled as a host name so it is obviously "change me" without being a placeholder.
CHECKED_IN_BASE_URL = "http://localhost:8080"
SOAP_HTTP_TRANSPORT = "http://schemas.xmlsoap.org/soap/http"
VERSIONS = ("1.1", "1.2")

_NSMAP = {
    "wsdl": ns.WSDL, "soapbind": ns.WSDL_SOAP11, "soap12bind": ns.WSDL_SOAP12,
    "xs": ns.XSD, "tns": ns.BRIDGE,
}
_schema_lock = threading.Lock()
_schema_cache: dict[str, bytes] = {}


def _w(tag: str) -> str:
    return f"{{{ns.WSDL}}}{tag}"


def _xs(tag: str) -> str:
    return f"{{{ns.XSD}}}{tag}"


def operation_names() -> list[str]:
    return sorted(BridgeService.public_methods)


def _spyne_schema() -> etree._Element:
    """spyne's xs:schema for our types (built once per process; the interface is static)."""
    with _schema_lock:
        if "schema" not in _schema_cache:
            app = Application([BridgeService], tns=ns.BRIDGE, name=SERVICE_NAME,
                              in_protocol=Soap11(), out_protocol=Soap11())
            doc = Wsdl11(app.interface)
            doc.build_interface_document(CHECKED_IN_BASE_URL + "/bridge")
            root = etree.fromstring(doc.get_interface_document())
            schemas = root.findall(f"{_w('types')}/{_xs('schema')}")
            if len(schemas) != 1:
                raise RuntimeError(f"spyne produced {len(schemas)} schemas; all types must be in {ns.BRIDGE}")
            _schema_cache["schema"] = etree.tostring(schemas[0])
        return etree.fromstring(_schema_cache["schema"])


def _shape_schema(spyne_schema: etree._Element, ops: list[str]) -> etree._Element:
    """One schema, 1C style: wrapper elements with inline types, named types sorted, no stray elements."""
    wrappers = {name for op in ops for name in (op, op + "Response")}
    types = {t.get("name"): t for t in spyne_schema.findall(_xs("complexType"))}
    schema = etree.Element(_xs("schema"), nsmap={"xs": ns.XSD, "tns": ns.BRIDGE})
    schema.set("targetNamespace", ns.BRIDGE)
    schema.set("elementFormDefault", "qualified")
    schema.set("attributeFormDefault", "unqualified")
    for name in sorted(set(types) - wrappers):
        schema.append(_copy(types[name]))
    for op in ops:
        for name in (op, op + "Response"):
            element = etree.SubElement(schema, _xs("element"), name=name)
            body = _copy(types[name])
            del body.attrib["name"]
            if len(body) == 0:
                etree.SubElement(body, _xs("sequence"))
            element.append(body)
    return schema


def _copy(element: etree._Element) -> etree._Element:
    return etree.fromstring(etree.tostring(element))


def _messages_and_port_type(root: etree._Element, ops: list[str]) -> None:
    for op in ops:
        for suffix, element in (("RequestMessage", op), ("ResponseMessage", op + "Response")):
            message = etree.SubElement(root, _w("message"), name=op + suffix)
            etree.SubElement(message, _w("part"), name="parameters", element=f"tns:{element}")
    port_type = etree.SubElement(root, _w("portType"), name=SERVICE_NAME + "PortType")
    for op in ops:
        operation = etree.SubElement(port_type, _w("operation"), name=op)
        etree.SubElement(operation, _w("input"), message=f"tns:{op}RequestMessage")
        etree.SubElement(operation, _w("output"), message=f"tns:{op}ResponseMessage")


def _binding(root: etree._Element, ops: list[str], soap_ns: str, name: str) -> None:
    binding = etree.SubElement(root, _w("binding"), name=name, type=f"tns:{SERVICE_NAME}PortType")
    etree.SubElement(binding, f"{{{soap_ns}}}binding", style="document", transport=SOAP_HTTP_TRANSPORT)
    for op in ops:
        operation = etree.SubElement(binding, _w("operation"), name=op)
        etree.SubElement(operation, f"{{{soap_ns}}}operation", style="document",
                         soapAction=f"{ns.BRIDGE}#{SERVICE_NAME}:{op}")
        for direction in ("input", "output"):
            etree.SubElement(etree.SubElement(operation, _w(direction)), f"{{{soap_ns}}}body", use="literal")


def build_wsdl(location11: str, location12: str, version: str = "1.1") -> bytes:
    """The WSDL document: both bindings for "1.1" (served at path), SOAP 1.2 only for "1.2"."""
    if version not in VERSIONS:
        raise ValueError(f"WSDL version must be one of {VERSIONS}, not {version!r}")
    ops = operation_names()
    root = etree.Element(_w("definitions"), nsmap=_NSMAP, name=SERVICE_NAME, targetNamespace=ns.BRIDGE)
    etree.SubElement(root, _w("types")).append(_shape_schema(_spyne_schema(), ops))
    _messages_and_port_type(root, ops)
    ports = [("Soap12", ns.WSDL_SOAP12, location12)]
    if version == "1.1":
        ports.insert(0, ("Soap", ns.WSDL_SOAP11, location11))
    for suffix, soap_ns, _ in ports:
        _binding(root, ops, soap_ns, f"{SERVICE_NAME}{suffix}Binding")
    service = etree.SubElement(root, _w("service"), name=SERVICE_NAME)
    for suffix, soap_ns, location in ports:
        port = etree.SubElement(service, _w("port"), name=SERVICE_NAME + suffix,
                                binding=f"tns:{SERVICE_NAME}{suffix}Binding")
        etree.SubElement(port, f"{{{soap_ns}}}address", location=location)
    etree.cleanup_namespaces(root, top_nsmap=_NSMAP, keep_ns_prefixes=list(_NSMAP))
    text = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    # Like 1C, the schema declares its own prefixes too, so a tool that lifts it out of the WSDL
    # (1C's XDTO import, lxml.etree.XMLSchema) still resolves `tns:` in type="…" attributes.
    # lxml never repeats a declaration its parent has, so this one is added to the text.
    return text.replace(b"<xs:schema ", f'<xs:schema xmlns:xs="{ns.XSD}" xmlns:tns="{ns.BRIDGE}" '.encode(), 1)


def base_url_for(soap_cfg: SoapConfig) -> str:
    """http(s)://host:port from `[soap] listen`; a wildcard address becomes localhost."""
    host, _, port = soap_cfg.listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "localhost"
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if soap_cfg.tls_cert else "http"
    return f"{scheme}://{host}:{port}"


def render_wsdl(soap_cfg: SoapConfig, version: str = "1.1", base_url: str | None = None) -> str:
    """The WSDL text `asterisk-bridge wsdl` prints; version "1.1" (both bindings) or "1.2"."""
    base = (base_url or base_url_for(soap_cfg)).rstrip("/")
    return build_wsdl(base + soap_cfg.path, base + soap_cfg.path + "12", version).decode("utf-8")


def strip_locations(wsdl: bytes | str) -> bytes:
    """The WSDL with every address location blanked: for comparing copies served from anywhere."""
    root = etree.fromstring(wsdl.encode("utf-8") if isinstance(wsdl, str) else wsdl)
    for address in root.iter(f"{{{ns.WSDL_SOAP11}}}address", f"{{{ns.WSDL_SOAP12}}}address"):
        address.set("location", urlsplit(address.get("location")).path)
    return etree.tostring(root)


def main() -> int:
    """`python -m bridge.soap.wsdl`: regenerate wsdl/bridge.wsdl and wsdl/bridge12.wsdl in the cwd."""
    from pathlib import Path
    for version, name in (("1.1", "bridge.wsdl"), ("1.2", "bridge12.wsdl")):
        Path("wsdl", name).write_text(render_wsdl(SoapConfig(), version, CHECKED_IN_BASE_URL), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
