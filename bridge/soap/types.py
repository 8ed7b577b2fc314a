"""The spyne data types of the bridge's SOAP interface (what the WSDL's schema describes)."""

from __future__ import annotations

from spyne import Boolean, ComplexModel, DateTime, Integer, Unicode

from bridge import ns


class _Base(ComplexModel):
    __namespace__ = ns.BRIDGE


class VariableList(_Base):
    """Originate channel variables, one `NAME=value` per `variable` element."""

    variable = Unicode(max_occurs="unbounded")


class OriginateStatus(_Base):
    """pending | success | failure, why, and the resulting channel's ids when known."""

    _type_info = [
        ("originateId", Unicode(min_occurs=1)),
        ("status", Unicode(min_occurs=1)),
        ("reason", Unicode),
        ("reasonCode", Integer),
        ("server", Unicode),
        ("channel", Unicode),
        ("uniqueid", Unicode),
        ("linkedid", Unicode),
    ]


class ExtensionState(_Base):
    """An extension's hint state, and its current call from the call model."""

    _type_info = [
        ("extension", Unicode(min_occurs=1)),
        ("context", Unicode),
        ("state", Unicode(min_occurs=1)),
        ("statusCode", Integer),
        ("callId", Unicode),
        ("otherParty", Unicode),
        ("otherPartyName", Unicode),
    ]


class Call(_Base):
    """One call from the call model."""

    _type_info = [
        ("id", Unicode(min_occurs=1)),
        ("server", Unicode),
        ("from", Unicode),
        ("fromName", Unicode),
        ("to", Unicode),
        ("direction", Unicode),
        ("state", Unicode),
        ("started", DateTime),
        ("answered", DateTime),
    ]


class CallList(_Base):
    call = Call.customize(max_occurs="unbounded")


class AmiServerState(_Base):
    _type_info = [
        ("name", Unicode(min_occurs=1)),
        ("connected", Boolean(min_occurs=1)),
        ("amiVersion", Unicode),
        ("asteriskVersion", Unicode),
    ]


class AmiServerList(_Base):
    server = AmiServerState.customize(max_occurs="unbounded")


class PingResult(_Base):
    _type_info = [
        ("version", Unicode(min_occurs=1)),
        ("servers", AmiServerList),
        ("outboxPending", Integer),
    ]
