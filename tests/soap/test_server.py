"""bridge/soap/server.py: cheroot serving the app, over plain HTTP and TLS, and the routes around SOAP."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import requests

from bridge.errors import ConfigError
from bridge.soap.app import build_app
from bridge.soap.server import SoapServer, parse_listen

from .conftest import AUTH, WAIT_S


@pytest.fixture
def cert_pair(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    return str(cert), str(key)


def test_server_speaks_tls_when_cert_and_key_are_given(backend, soap_cfg, cert_pair):
    cert, key = cert_pair
    with SoapServer(build_app(backend, soap_cfg), "127.0.0.1:0", cert, key) as srv:
        assert srv.url.startswith("https://")
        response = requests.get(srv.url + "/bridge?wsdl", auth=AUTH, verify=cert, timeout=WAIT_S)
        assert response.status_code == 200 and b"BridgeSoap12" in response.content
        assert f"https://127.0.0.1:{srv.port}/bridge".encode() in response.content
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(srv.url.replace("https", "http") + "/bridge?wsdl", timeout=WAIT_S)


def test_server_refuses_config_when_only_the_certificate_is_given(backend, soap_cfg):
    with pytest.raises(ConfigError):
        SoapServer(build_app(backend, soap_cfg), "127.0.0.1:0", tls_cert="cert.pem")


@pytest.mark.parametrize("listen, expected", [("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:0", ("::1", 0)),
                                              (":8080", ("0.0.0.0", 8080))])
def test_parse_listen_splits_host_and_port_when_valid(listen, expected):
    assert parse_listen(listen) == expected


def test_parse_listen_refuses_when_port_is_missing():
    with pytest.raises(ConfigError):
        parse_listen("localhost")


def test_routes_answer_404_and_405_when_not_a_soap_request(server, http):
    assert http.get(server.url + "/other", timeout=WAIT_S).status_code == 404
    assert http.get(server.url + "/bridge", timeout=WAIT_S).status_code == 405
    assert http.put(server.url + "/bridge", data=b"x", timeout=WAIT_S).status_code == 405
    assert http.get(server.url + "/bridge?WSDL", timeout=WAIT_S).status_code == 200
