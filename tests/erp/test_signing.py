"""bridge/erp/signing.py: Standard Webhooks signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac

from bridge.erp import signing


def test_signature_is_hmac_sha256_of_id_timestamp_body_when_plain_secret():
    body = "<x>тест</x>".encode()
    expected = base64.b64encode(hmac.new(b"s3cret", b"msg_1.1700000000." + body, hashlib.sha256).digest())
    assert signing.sign("s3cret", "msg_1", 1700000000, body) == "v1," + expected.decode()


def test_whsec_secret_is_base64_decoded_when_standard_form():
    key = b"\x01\x02binary key"
    secret = "whsec_" + base64.b64encode(key).decode()
    expected = base64.b64encode(hmac.new(key, b"id.5.b", hashlib.sha256).digest()).decode()
    assert signing.sign(secret, "id", 5, b"b") == "v1," + expected


def test_verify_rejects_when_body_changed():
    sig = signing.sign("k", "id", 1, b"body")
    assert signing.verify("k", "id", 1, b"body", "v1,bogus " + sig)
    assert not signing.verify("k", "id", 1, b"body!", sig)
