"""bridge/soap/auth.py: password hashes, Basic auth and the CIDR allow-list, unit and over real HTTP."""

from __future__ import annotations

import base64
import logging

import pytest
import requests

from bridge.config import SoapConfig
from bridge.soap.app import build_app
from bridge.soap.auth import (AccessGuard, BasicAuthenticator, NetworkAllowList, hash_password, parse_basic,
                              verify_password)
from bridge.soap.server import SoapServer

from .conftest import AUTH, PASSWORD, USER, envelope, sent


def test_hash_password_verifies_only_the_same_password_when_hashed():
    stored = hash_password("Пароль", iterations=1_000)
    assert stored.startswith("pbkdf2_sha256$1000$")
    assert verify_password("Пароль", stored)
    assert not verify_password("пароль", stored)


def test_hash_password_uses_a_fresh_salt_when_none_is_given():
    assert hash_password("x", iterations=1_000) != hash_password("x", iterations=1_000)


def test_verify_password_compares_plain_text_when_value_is_not_a_hash():
    assert verify_password("secret", "secret") and not verify_password("secret", "Secret")


def test_verify_password_refuses_when_hash_is_malformed():
    assert not verify_password("x", "pbkdf2_sha256$notanumber$salt$AAAA")
    assert not verify_password("x", "pbkdf2_sha256$1000$salt$%%%")


def test_parse_basic_reads_utf8_credentials_when_password_has_colons():
    token = base64.b64encode("Иван:a:b".encode()).decode()
    assert parse_basic(f"Basic {token}") == ("Иван", "a:b")
    assert parse_basic("Bearer abc") is None and parse_basic("Basic !!!") is None


def test_authenticator_refuses_unknown_user_and_accepts_known_one():
    auth = BasicAuthenticator({"1c": hash_password("pw", iterations=1_000)})
    assert auth.check("1c", "pw") and auth.check("1c", "pw")       # second time from the cache
    assert not auth.check("1c", "PW") and not auth.check("2c", "pw")


@pytest.mark.parametrize("address, allowed", [
    ("10.1.2.3", True), ("127.0.0.1", False), ("::ffff:10.0.0.7", True), ("::1", False), ("", False),
    ("garbage", False),
])
def test_allow_list_matches_cidr_when_address_is_v4_or_mapped_v6(address, allowed):
    assert NetworkAllowList(["10.0.0.0/8"]).allows(address) is allowed


def test_allow_list_allows_everyone_when_empty():
    assert NetworkAllowList([]).allows("203.0.113.9")


def test_wsdl_is_refused_with_401_when_credentials_are_missing(url):
    response = requests.get(url + "?wsdl", timeout=5)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert b"definitions" not in response.content


def test_originate_is_refused_with_401_when_password_is_wrong(url, sim):
    body = envelope("<m:ClickToCall><m:extension>202</m:extension><m:number>902</m:number></m:ClickToCall>")
    response = requests.post(url, data=body.encode(), auth=(USER, (PASSWORD + "x").encode()),
                             headers={"Content-Type": "text/xml"}, timeout=5)
    assert response.status_code == 401
    assert sent(sim, "Originate") == []


def test_request_is_refused_with_403_when_client_network_is_not_allowed(backend, soap_cfg, sim):
    from dataclasses import replace
    cfg = replace(soap_cfg, allow=("10.0.0.0/8",))
    with SoapServer(build_app(backend, cfg), "127.0.0.1:0") as srv:
        wsdl = requests.get(srv.url + "/bridge?wsdl", auth=AUTH, timeout=5)
        call = requests.post(srv.url + "/bridge", auth=AUTH, headers={"Content-Type": "text/xml"},
                             data=envelope("<m:ClickToCall><m:extension>202</m:extension>"
                                           "<m:number>902</m:number></m:ClickToCall>").encode(), timeout=5)
    assert wsdl.status_code == 403 and b"definitions" not in wsdl.content
    assert call.status_code == 403
    assert sent(sim, "Originate") == []


def test_password_never_reaches_the_log_when_login_fails(url, caplog):
    caplog.set_level(logging.DEBUG)
    requests.get(url + "?wsdl", auth=(USER, "Сверхсекретный-пароль".encode()), timeout=5)
    assert "Сверхсекретный" not in caplog.text
    assert "bad credentials" in caplog.text


def test_guard_runs_the_app_when_auth_is_disabled():
    calls = []

    def app(environ, start_response):
        calls.append(environ.get("REMOTE_USER"))
        start_response("200 OK", [])
        return [b"ok"]

    guard = AccessGuard(app, NetworkAllowList(SoapConfig().allow), BasicAuthenticator({}))
    assert guard({"REMOTE_ADDR": "127.0.0.1"}, lambda *a: None) == [b"ok"] and calls == [None]
