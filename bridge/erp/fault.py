"""Recognising a SOAP Fault in the ERP's answer, by parsing the XML (SOAP 1.1 and 1.2)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from lxml import etree

FAULT_SNIFF_BYTES = 64 * 1024   # a Fault sits at the start of the Body; a huge answer is not read to the end
FIELD_MAX_CHARS = 200

# recover: a body cut at FAULT_SNIFF_BYTES still yields its first elements. No entities, no network:
# the answer comes from outside (an ERP or whatever answers at its URL).
# One parser per thread: lxml serialises the threads that share a parser, and every dispatcher
# worker checks every ERP answer (a shared parser was a fifth of worker time with 20 subscribers).
_local_parser = threading.local()


def _parser() -> etree.XMLParser:
    parser = getattr(_local_parser, "parser", None)
    if parser is None:
        parser = _local_parser.parser = etree.XMLParser(recover=True, resolve_entities=False, no_network=True,
                                                        huge_tree=False, remove_comments=True, remove_pis=True)
    return parser


@dataclass(frozen=True)
class SoapFault:
    code: str      # SOAP 1.1 faultcode ("" for SOAP 1.2, whose code is structured)
    text: str      # SOAP 1.1 faultstring, else the first SOAP 1.2 Reason/Text


def _local(element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _child(element, name: str):
    return next((c for c in element if _local(c) == name), None)


def _first_text(fault, name: str) -> str:
    """Text of the first descendant of `fault` called `name` (case-insensitive, any namespace)."""
    for el in fault.iter():
        if _local(el).lower() == name:
            return (el.text or "").strip()[:FIELD_MAX_CHARS]
    return ""


def find_fault(content: bytes) -> SoapFault | None:
    """The Fault in Envelope/Body of `content`, or None when the answer is not a SOAP Fault
    (not XML at all, another document, or an Envelope whose Body holds something else)."""
    head = content[:FAULT_SNIFF_BYTES]
    # A Fault element's name is spelled out in any ASCII-compatible encoding (UTF-8, cp1251 …), so an
    # answer without it needs no parse; UTF-16/32 answers (NUL bytes) always go to the parser.
    if b"Fault" not in head and b"\x00" not in head:
        return None
    try:
        root = etree.fromstring(head, _parser())
    except (etree.XMLSyntaxError, ValueError):
        return None
    if root is None or _local(root) != "Envelope":
        return None
    body = _child(root, "Body")
    fault = _child(body, "Fault") if body is not None else None
    if fault is None:
        return None
    return SoapFault(_first_text(fault, "faultcode"), _first_text(fault, "faultstring") or _first_text(fault, "text"))
