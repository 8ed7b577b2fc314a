"""The outbound SOAP client towards the ERP: the PushEvent envelope, Standard Webhooks signing, and
the HTTP transport that POSTs it and maps SOAP Faults and HTTP failures to typed delivery errors.

runtime.py hands `build_envelope` to the OutboxWriter and `ErpTransport` to the Dispatcher; the
outbox itself knows neither (it stores and delivers opaque payloads).
"""

from bridge.erp.envelope import build_envelope, parse_envelope_id
from bridge.erp.transport import ErpTransport

__all__ = ["ErpTransport", "build_envelope", "parse_envelope_id"]
