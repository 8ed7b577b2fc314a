"""The PushEvent and PushEvents SOAP 1.1 envelopes we POST to subscribers (contract: wsdl/events.wsdl)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from bridge.events.model import BridgeEvent
from bridge import ns
from bridge.errors import BridgeError
from bridge.xmltext import is_plain, xml_text

OPERATION = "PushEvent"
SOAP_ACTION = f"{ns.EVENTS}#Events:{OPERATION}"   # 1C style: "<tns>#<Service>:<Operation>"
BATCH_OPERATION = "PushEvents"
BATCH_SOAP_ACTION = f"{ns.EVENTS}#Events:{BATCH_OPERATION}"
CONTENT_TYPE = "text/xml; charset=utf-8"

# Normalized call fields in the order events.wsdl declares them (the call model's header names).
CALL_FIELDS = ("CallId", "Linkedid", "Extension", "CallerIDNum", "CallerIDName", "CalleeNum",
               "Direction", "State", "CallState", "Queue", "AnsweredBy", "Reason", "Cause", "CauseTxt",
               "Duration", "Billsec", "HangupBy", "StartTime", "AnswerTime", "EndTime", "OriginateId")
_CALL_FIELDS_LOWER = {f.lower(): f for f in CALL_FIELDS}
# xs:dateTime in the schema: an unknown time is left out rather than sent empty (invalid).
_TIME_FIELDS = frozenset({"StartTime", "AnswerTime", "EndTime"})

_HEAD = ('<?xml version="1.0" encoding="UTF-8"?>'
         f'<soap:Envelope xmlns:soap="{ns.SOAP11_ENV}"><soap:Body><m:{OPERATION} xmlns:m="{ns.EVENTS}">')
_TAIL = f"</m:{OPERATION}></soap:Body></soap:Envelope>"
_BATCH_HEAD = ('<?xml version="1.0" encoding="UTF-8"?>'
               f'<soap:Envelope xmlns:soap="{ns.SOAP11_ENV}"><soap:Body>'
               f'<m:{BATCH_OPERATION} xmlns:m="{ns.EVENTS}"><m:events>')
_BATCH_TAIL = f"</m:events></m:{BATCH_OPERATION}></soap:Body></soap:Envelope>"
# Batch ids are name-based UUIDs of the events' ids: the same batch re-sent carries the same id.
_BATCH_NAMESPACE = uuid.UUID("5d0c3a52-3f7e-4d8e-9a55-0b1c2d3e4f50")


class EnvelopeFormatError(BridgeError):
    """A stored payload is not a PushEvent envelope this version built (cannot be batched)."""


def format_time(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def call_fields(event: BridgeEvent) -> list[tuple[str, str]]:
    """The normalized call fields present in `event.call`, in schema order, by canonical name."""
    if not event.call:
        return []
    found: dict[str, str] = {}
    for key, value in event.call.items():
        canonical = _CALL_FIELDS_LOWER.get(str(key).lower())
        if canonical is not None and value is not None:
            if canonical in _TIME_FIELDS and not value:
                continue
            found[canonical] = str(value)
    return [(f, found[f]) for f in CALL_FIELDS if f in found]


def build_envelope(event: BridgeEvent) -> str:
    """The PushEvent envelope for `event`: exactly the bytes (UTF-8) stored in outbox.payload and sent."""
    parts = [_HEAD,
             f"<m:id>{xml_text(event.event_uuid)}</m:id>",
             f"<m:server>{xml_text(event.server)}</m:server>",
             f"<m:name>{xml_text(event.name)}</m:name>",
             f"<m:kind>{xml_text(event.kind)}</m:kind>",
             f"<m:time>{format_time(event.time)}</m:time>",
             f"<m:orderKey>{xml_text(event.order_key)}</m:orderKey>"]
    fields = call_fields(event)
    if fields:
        parts.append("<m:call>")
        parts.extend(f"<m:{name}>{xml_text(value)}</m:{name}>" for name, value in fields)
        parts.append("</m:call>")
    parts.append("<m:headers>")
    try:  # one scan for the common case instead of two per header
        plain = is_plain("".join(k + v for k, v in event.headers))
    except TypeError:  # a non-str header value: take the careful path
        plain = None
    if plain:
        parts.extend(f'<m:header name="{k}">{v}</m:header>' for k, v in event.headers)
    else:
        parts.extend(f'<m:header name="{xml_text(k)}">{xml_text(v)}</m:header>' for k, v in event.headers)
    parts.append("</m:headers>")
    parts.append(_TAIL)
    return "".join(parts)


def build_batch(payloads: list[str]) -> str:
    """The PushEvents envelope carrying the events of `payloads` (PushEvent envelopes exactly as
    build_envelope made them and the outbox stored them), in the given order: each PushEvent's
    fields become one <m:event>. No XML is parsed: the stored envelopes have a fixed frame."""
    parts = [_BATCH_HEAD]
    for payload in payloads:
        if not (payload.startswith(_HEAD) and payload.endswith(_TAIL)):
            raise EnvelopeFormatError("stored payload is not a PushEvent envelope built by this version")
        parts.append("<m:event>")
        parts.append(payload[len(_HEAD):len(payload) - len(_TAIL)])
        parts.append("</m:event>")
    parts.append(_BATCH_TAIL)
    return "".join(parts)


def batch_id(event_ids: list[str]) -> str:
    """The id of a PushEvents request (Idempotency-Key, webhook-id): the same events, the same id."""
    return str(uuid.uuid5(_BATCH_NAMESPACE, "\n".join(event_ids)))


def parse_envelope_id(payload: str | bytes) -> str | None:
    """The `id` of a PushEvent envelope (the first event's in a PushEvents one), or None."""
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    m = re.search(r"<(?:\w+:)?id>([^<]*)</(?:\w+:)?id>", text)
    return m.group(1) if m else None


_SECRET_HEADER = re.compile(r'(<m:header name="[^"]*(?:secret|password|passwd|token|authorization)[^"]*">)'
                            r"[^<]*(</m:header>)", re.IGNORECASE)


def redact(payload: str) -> str:
    """The envelope with secret-looking header values masked, for DEBUG logs."""
    return _SECRET_HEADER.sub(r"\1***\2", payload)
