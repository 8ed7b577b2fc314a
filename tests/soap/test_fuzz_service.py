"""Fuzzing the SOAP endpoint over real HTTP: mutated envelopes never get a traceback, never reach AMI."""

from __future__ import annotations

import pytest

import re
from xml.sax.saxutils import escape as xml_escape

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from lxml import etree

from bridge import ns
from tests.soap.conftest import WAIT_S, envelope

pytestmark = pytest.mark.slow  # hundreds of mutated envelopes over HTTP

# The server is shared by all examples (a fresh stack per example would cost seconds each);
# every check compares before/after, so accumulated state does not matter.
FUZZ = settings(max_examples=400, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
AMI_WRITES = {"originate", "hangup", "redirect", "command", "setvar", "atxfer", "blindtransfer"}
# What the bridge itself ever sends: anything else arriving at AMI came from an injection.
OURS = {"login", "challenge", "filter", "events", "coresettings", "coreshowchannels", "ping", "logoff",
        "originate", "hangup", "redirect", "extensionstate"}

BODIES = [
    "<m:Originate><m:channel>PJSIP/202</m:channel><m:context>from-internal</m:context><m:exten>902</m:exten>"
    "<m:priority>1</m:priority><m:callerId>Иван &lt;202&gt;</m:callerId>"
    "<m:variables><m:variable>A=1</m:variable></m:variables></m:Originate>",
    "<m:ClickToCall><m:extension>202</m:extension><m:number>902</m:number></m:ClickToCall>",
    "<m:GetExtensionState><m:extension>205</m:extension></m:GetExtensionState>",
    "<m:Redirect><m:channel>PJSIP/404-1</m:channel><m:context>from-internal</m:context><m:exten>903</m:exten>"
    "</m:Redirect>",
    "<m:Hangup><m:channel>PJSIP/404-1</m:channel></m:Hangup>",
    "<m:GetActiveCalls><m:extension>202</m:extension></m:GetActiveCalls>",
]
NASTY = st.sampled_from([
    "&#13;&#10;Action: Command&#13;&#10;Command: core stop now&#13;&#10;", "\r\nAction: Hangup\r\n",
    '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>', "&b;",
    '<!DOCTYPE x SYSTEM "file:///etc/passwd">', "<![CDATA[\x00]]>", "&#0;", "&#x1;", "\ufeff", "]]>",
    "<m:extension>", "</m:Body>", "xmlns:m=\"urn:other\"", "A" * 70_000, "\u202e", "Оператор",
])
TEXT = st.one_of(NASTY, st.text(max_size=30), st.binary(max_size=30).map(lambda b: b.decode("latin-1")))


@st.composite
def mutated(draw) -> tuple[bytes, str]:
    body = draw(st.sampled_from(BODIES))
    soap12 = draw(st.booleans())
    values = list(re.finditer(r">([^<>]+)<", body))
    for _ in range(draw(st.integers(0, 2))):            # well-formed: a field's value replaced
        if not values:
            break
        match = draw(st.sampled_from(values))
        body = body[:match.start(1)] + xml_escape(draw(TEXT)) + body[match.end(1):]
        values = list(re.finditer(r">([^<>]+)<", body))
    text = envelope(body, soap12=soap12)
    if draw(st.booleans()):
        return text.encode("utf-8"), "application/soap+xml; charset=utf-8" if soap12 else "text/xml; charset=utf-8"
    for _ in range(draw(st.integers(0, 3))):            # structural: splice text somewhere
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 20))
        text = text[:at] + draw(TEXT) + text[at + cut:]
    data = text.encode("utf-8")
    for _ in range(draw(st.integers(0, 3))):            # byte level: flips, truncation, invalid UTF-8
        at = draw(st.integers(0, max(0, len(data) - 1)))
        kind = draw(st.sampled_from(["flip", "truncate", "insert"]))
        if kind == "flip" and data:
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
        elif kind == "truncate":
            data = data[:at]
        else:
            data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    ctype = draw(st.sampled_from(["application/soap+xml; charset=utf-8" if soap12 else "text/xml; charset=utf-8",
                                  "text/xml", "text/plain", "application/soap+xml; charset=cp1251"]))
    return data, ctype


def requested(sim) -> list:
    """Actions the simulator received, but the AMI client's own keepalive Pings (one can fall in
    any request's window on a loaded machine)."""
    return [m for m in list(sim.received_actions) if (m.get("Action") or "").lower() != "ping"]


def writes(sim) -> int:
    return sum(1 for m in list(sim.received_actions) if (m.get("Action") or "").lower() in AMI_WRITES)


def fault_code(content: bytes) -> str | None:
    try:
        root = etree.fromstring(content)
    except etree.XMLSyntaxError:
        return None
    code = root.findtext(".//faultcode")
    if code is None:
        code = ".".join(e.text or "" for e in root.iter(f"{{{ns.SOAP12_ENV}}}Value")) or None
    return code


@FUZZ
@given(mutated())
def test_no_traceback_and_no_ami_write_when_envelope_is_mutated(url, http, sim, case):
    data, ctype = case
    before, actions_before = writes(sim), len(requested(sim))
    response = http.post(url, data=data, headers={"Content-Type": ctype}, timeout=WAIT_S)
    text = response.content.decode("utf-8", "replace")
    event(f"HTTP {response.status_code}")       # --hypothesis-show-statistics: the mix of answers
    assert "Traceback" not in text and 'File "/' not in text, text[:500]
    assert response.status_code in (200, 400, 405, 411, 413, 415, 500), (response.status_code, text[:300])
    if response.status_code == 500:
        code = fault_code(response.content)
        assert code is not None, f"HTTP 500 without a SOAP Fault: {text[:300]}"
    else:
        code = None
    if response.status_code != 200 and (response.status_code < 500 or "Client" in code or "Sender" in code):
        # Refused as the caller's fault: nothing may have gone to AMI for it.
        assert len(requested(sim)) == actions_before, [m.as_dict() for m in requested(sim)[actions_before:]]
        assert writes(sim) == before
    for msg in list(sim.received_actions):
        assert len(msg.get_all("Action")) == 1, msg.as_dict()        # no injected second action
        assert (msg.get("Action") or "").lower() in OURS, msg.as_dict()
    ping = http.post(url, data=envelope("<m:Ping/>").encode(), headers={"Content-Type": "text/xml"}, timeout=WAIT_S)
    assert ping.status_code == 200 and b"pbx1" in ping.content      # the server survived it

