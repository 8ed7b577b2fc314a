"""Reading a SOAP request safely: body size limit, hardened XML parse, and 1C-friendly normalisation.

1C's HTTPConnection users write envelopes by hand, so we accept any namespace prefix, a UTF-8
BOM, any case of `charset`, no SOAPAction, `text/xml` or `application/soap+xml`, and the
SOAP version is taken from the envelope's own namespace rather than the URL. Children of the
operation element written without a namespace (`<m:ClickToCall><extension>…`), and an
operation element without one, are put in `urn:asterisk-bridge`: that is what the schema
(elementFormDefault="qualified") means anyway, and this endpoint serves nothing else.

The parser never resolves entities, never touches the network and keeps libxml2's size
guards (huge_tree=False); a DOCTYPE is refused outright since SOAP 1.1 §3 and 1.2 §5 forbid
one, which closes XXE and billion-laughs before any entity could be seen.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from lxml import etree

from bridge import ns

UTF8_BOM = codecs.BOM_UTF8
READ_CHUNK_BYTES = 64 * 1024
PROLOG_SCAN_BYTES = 4096       # a DOCTYPE further in is still caught from the parsed docinfo


class RequestTooLarge(Exception):
    """The body is larger than `[soap] max_body_bytes`."""


class BadEnvelope(Exception):
    """The body is not a SOAP envelope we will read; `.code` is the fault code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Envelope:
    root: etree._Element
    soap12: bool


def read_body(environ: dict, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes whether or not Content-Length is set."""
    length_text = environ.get("CONTENT_LENGTH") or ""
    stream = environ["wsgi.input"]
    if length_text.strip():
        try:
            length = int(length_text)
        except ValueError:
            raise BadEnvelope("Client.BadRequest", "Content-Length is not a number") from None
        if length > limit:
            raise RequestTooLarge()
        return stream.read(length) if length > 0 else b""
    # Chunked or unknown length: read at most limit + 1 bytes to tell "too large" apart.
    chunks, total = [], 0
    while total <= limit:
        chunk = stream.read(min(READ_CHUNK_BYTES, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > limit:
        raise RequestTooLarge()
    return b"".join(chunks)


def charset_of(content_type: str | None) -> str | None:
    """`charset` parameter of a Content-Type, any case, quoted or not; None when absent."""
    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip("\"'").lower() or None
    return None


def _parser(encoding: str | None) -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False,
                           dtd_validation=False, remove_pis=True, remove_comments=True,
                           encoding=encoding)


def parse(body: bytes, content_type: str | None) -> Envelope:
    """Parse and normalise an envelope, or raise BadEnvelope with a stable fault code."""
    if body.startswith(UTF8_BOM):
        body = body[len(UTF8_BOM):]
    body = body.lstrip()
    if not body:
        raise BadEnvelope("Client.MalformedXml", "the request body is empty")
    if b"<!DOCTYPE" in body[:PROLOG_SCAN_BYTES].upper():
        raise BadEnvelope("Client.MalformedXml", "DOCTYPE declarations are not allowed in SOAP")
    charset = charset_of(content_type)
    # An XML declaration names the encoding itself; the header charset is only a fallback.
    encoding = None if body.startswith(b"<?xml") or charset in (None, "utf-8", "utf8") else charset
    try:
        root = etree.fromstring(body, _parser(encoding))
    except (etree.XMLSyntaxError, LookupError, ValueError) as exc:
        raise BadEnvelope("Client.MalformedXml", f"the request is not well-formed XML: {exc}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise BadEnvelope("Client.MalformedXml", "DOCTYPE declarations are not allowed in SOAP")
    return Envelope(root, _check_envelope(root))


def _check_envelope(root: etree._Element) -> bool:
    qname = etree.QName(root)
    if qname.localname != "Envelope" or qname.namespace not in (ns.SOAP11_ENV, ns.SOAP12_ENV):
        raise BadEnvelope("Client.MalformedEnvelope",
                          f"the root element must be a SOAP 1.1 or 1.2 Envelope, not {root.tag}")
    soap12 = qname.namespace == ns.SOAP12_ENV
    body = root.find(f"{{{qname.namespace}}}Body")
    if body is None or len(body) == 0:
        raise BadEnvelope("Client.MalformedEnvelope", "the Envelope has no Body or the Body is empty")
    operation = body[0]
    namespace = etree.QName(operation).namespace
    if namespace is None:
        # `<ClickToCall>` with no namespace at all: there is only one service here, so it is ours.
        operation.tag = f"{{{ns.BRIDGE}}}{operation.tag}"
        namespace = ns.BRIDGE
    if namespace == ns.BRIDGE:
        _qualify(operation)
    return soap12


def _qualify(operation: etree._Element) -> None:
    for element in operation.iterdescendants():
        if isinstance(element.tag, str) and not element.tag.startswith("{"):
            element.tag = f"{{{ns.BRIDGE}}}{element.tag}"


def serialize(envelope: Envelope) -> bytes:
    return etree.tostring(envelope.root, encoding="UTF-8", xml_declaration=True)
