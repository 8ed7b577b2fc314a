"""Bridge errors → SOAP Faults with stable codes and English text; fault envelopes for the HTTP layer."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator
from xml.sax.saxutils import escape

from spyne.model.fault import Fault

from bridge.errors import (AmiActionError, AmiConnectionError, AmiEncodeError, AmiError, BridgeError,
                           SoapRequestError)
from bridge import ns
from bridge.xmltext import visible

log = logging.getLogger(__name__)

# Stable fault codes a 1C developer can branch on (ИнформацияОбОшибке().Описание carries the text).
INVALID_ARGUMENT = "Client.InvalidArgument"
MALFORMED_XML = "Client.MalformedXml"
NOT_FOUND = "Client.NotFound"
AMI_UNAVAILABLE = "Server.AmiUnavailable"
AMI_REFUSED = "Server.AmiActionFailed"
INTERNAL = "Server.InternalError"


def fault_for(exc: BaseException) -> Fault:
    """The Fault a caller sees for `exc`; never includes secrets (AMI texts carry none), and its
    text is XML-safe (an Asterisk message may carry any byte)."""
    fault = _fault_for(exc)
    fault.faultstring = visible(str(fault.faultstring))
    return fault


def _fault_for(exc: BaseException) -> Fault:
    if isinstance(exc, SoapRequestError):
        return Fault(faultcode=exc.faultcode, faultstring=exc.message)
    if isinstance(exc, AmiConnectionError):
        return Fault(faultcode=AMI_UNAVAILABLE,
                     faultstring=f"Asterisk is not reachable right now: {exc.message}")
    if isinstance(exc, AmiActionError):
        return Fault(faultcode=AMI_REFUSED, faultstring=f"Asterisk refused the action: {exc.message}")
    if isinstance(exc, AmiEncodeError):
        # Validation should have caught this; AMI encoding is the second line of defence.
        return Fault(faultcode=INVALID_ARGUMENT, faultstring=exc.message)
    if isinstance(exc, (AmiError, BridgeError)):
        return Fault(faultcode="Server." + type(exc).__name__, faultstring=exc.message)
    return Fault(faultcode=INTERNAL, faultstring="internal error; see the bridge log")


@contextmanager
def translated() -> Iterator[None]:
    """Run an operation body; any error leaves as a Fault (unexpected ones logged with traceback)."""
    try:
        yield
    except Fault:
        raise
    except BridgeError as exc:
        log.info("SOAP operation failed: %s", exc.message)
        raise fault_for(exc) from exc
    except Exception as exc:  # the operation boundary: a bug must become a Fault, not a 500 page
        log.exception("SOAP operation crashed")
        raise fault_for(exc) from exc


def fault_envelope(soap12: bool, code: str, message: str) -> bytes:
    """A Fault envelope for errors found before spyne runs (malformed XML, DOCTYPE, …)."""
    text = escape(visible(message))
    if not soap12:
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<soap:Envelope xmlns:soap="{ns.SOAP11_ENV}">'
                f"<soap:Body><soap:Fault><faultcode>soap:{escape(code)}</faultcode>"
                f"<faultstring>{text}</faultstring></soap:Fault></soap:Body></soap:Envelope>").encode()
    top, _, sub = code.partition(".")
    value = "soap:Sender" if top == "Client" else "soap:Receiver"
    subcode = f"<soap:Subcode><soap:Value>{escape(sub)}</soap:Value></soap:Subcode>" if sub else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<soap:Envelope xmlns:soap="{ns.SOAP12_ENV}">'
            f"<soap:Body><soap:Fault><soap:Code><soap:Value>{value}</soap:Value>{subcode}</soap:Code>"
            f'<soap:Reason><soap:Text xml:lang="en">{text}</soap:Text></soap:Reason>'
            f"</soap:Fault></soap:Body></soap:Envelope>").encode()
