"""bridge/erp/transport.py against a real local HTTP sink: outcomes, headers, timeouts, secrets."""

from __future__ import annotations

import base64
import time

import pytest

from bridge.config import SubscriberConfig
from bridge.errors import DeliveryRejected, DeliveryRetryable
from bridge.erp import signing
from bridge.erp.envelope import build_envelope
from bridge.testing.fake_erp import ERROR_500, FAULT, HANG, RESET, THROTTLE, UNAVAILABLE, FakeErp
from bridge.erp.transport import ErpTransport, parse_retry_after

from tests.outbox.conftest import make_event


@pytest.fixture
def sink():
    with FakeErp(hang_s=5) as s:
        yield s


def transport(url, **kw):
    kw.setdefault("connect_timeout_s", 1.0)
    kw.setdefault("read_timeout_s", 0.3)
    return ErpTransport(SubscriberConfig(name="erp", url=url, **kw))


def push(t, event=None):
    event = event or make_event("1.1", 0)
    t.push_event(event.event_uuid, build_envelope(event))
    return event


def test_push_delivers_with_idempotency_key_when_sink_answers_200(sink):
    e = push(transport(sink.url))
    (r,) = sink.receipts
    assert r.id == e.event_uuid and r.headers["Idempotency-Key"] == e.event_uuid
    assert r.headers["Content-Type"].startswith("text/xml")
    assert r.headers["SOAPAction"] == '"urn:asterisk-bridge:events#Events:PushEvent"'
    assert "webhook-signature" not in {k.lower() for k in r.headers}


def test_push_reuses_one_connection_when_keep_alive(sink):
    t = transport(sink.url)
    for _ in range(5):
        push(t)
    assert len({r.peer for r in sink.receipts}) == 1


def test_push_signs_with_standard_webhooks_headers_when_secret_configured(sink):
    t = transport(sink.url, signing_secret="topsecret")
    e = push(t)
    h = {k.lower(): v for k, v in sink.receipts[0].headers.items()}
    assert h["webhook-id"] == e.event_uuid
    assert abs(int(h["webhook-timestamp"]) - time.time()) < 60
    assert signing.verify("topsecret", e.event_uuid, int(h["webhook-timestamp"]), sink.receipts[0].body,
                          h["webhook-signature"])


def test_push_sends_basic_auth_when_username_configured(sink):
    push(transport(sink.url, username="bridge", password="pw"))
    assert sink.receipts[0].headers["Authorization"] == "Basic " + base64.b64encode(b"bridge:pw").decode()


@pytest.mark.parametrize("mode", [ERROR_500, RESET])
def test_push_raises_retryable_when_sink_fails(sink, mode):
    sink.set_mode(mode)
    with pytest.raises(DeliveryRetryable):
        push(transport(sink.url))


def test_push_raises_rejected_with_faultcode_when_sink_answers_soap_fault(sink):
    sink.set_mode(FAULT)
    with pytest.raises(DeliveryRejected) as info:
        push(transport(sink.url))
    assert info.value.faultcode == "soap:Server" and info.value.faultstring == "sink refuses the event"


@pytest.mark.parametrize("mode", [THROTTLE, UNAVAILABLE])
def test_push_reports_retry_after_when_sink_throttles(sink, mode):
    sink.retry_after_s = 7
    sink.set_mode(mode)
    with pytest.raises(DeliveryRetryable) as info:
        push(transport(sink.url))
    assert info.value.retry_after_s == 7 and info.value.status_code in (429, 503)


def test_push_times_out_when_sink_hangs(sink):
    sink.set_mode(HANG)
    with pytest.raises(DeliveryRetryable, match="timeout"):
        push(transport(sink.url, read_timeout_s=0.2))


def test_push_raises_retryable_without_secrets_when_connection_refused(sink):
    url = sink.url.replace("http://", "http://user:hunter2@")
    sink.stop()
    with pytest.raises(DeliveryRetryable) as info:
        push(transport(url, password="hunter2"))
    assert "hunter2" not in str(info.value) and "refused" in str(info.value)


def test_tls_verification_is_on_by_default_and_ca_file_is_used_when_given(monkeypatch):
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    assert transport("https://erp.example/ws").session.verify is True
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/env-bundle.pem")
    assert transport("https://erp.example/ws").session.verify == "/etc/env-bundle.pem"
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    assert transport("https://erp.example/ws", ca_file="/etc/ca.pem").session.verify == "/etc/ca.pem"
    assert transport("https://erp.example/ws", verify_tls=False).session.verify is False
    t = transport("https://erp.example/ws", proxy="http://proxy:3128")
    assert t.session.proxies == {"http": "http://proxy:3128", "https": "http://proxy:3128"}


def test_environment_is_read_once_when_transport_is_built(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://envproxy:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    t = transport("http://erp.example/ws")
    # Not re-read per POST (requests' trust_env costs stat() calls on every request) …
    assert t.session.trust_env is False
    # … but what the environment said at start still applies.
    assert t.session.proxies.get("http") == "http://envproxy:3128"


def test_parse_retry_after_accepts_seconds_and_http_dates():
    assert parse_retry_after("120", 0) == 120
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == 10
    assert parse_retry_after("soon", 0) is None and parse_retry_after(None, 0) is None


def test_debug_log_redacts_credentials_signature_and_secret_headers(sink, caplog):
    import logging

    from bridge.events.model import BridgeEvent

    e = BridgeEvent(server="pbx1", name="UserEvent", kind="raw",
                    headers=(("Secret", "ami-hunter2"), ("Exten", "202")), text="", order_key="k")
    t = transport(sink.url, username="bridge", password="http-hunter2", signing_secret="sign-hunter2")
    with caplog.at_level(logging.DEBUG, logger="bridge.erp.transport"):
        push(t, e)
    text = caplog.text
    assert "POST" in text and "Exten" in text
    assert "hunter2" not in text and "webhook-signature': '***'" in text
