"""Fixtures for the SOAP tests: simulator → real AmiClient → CallTracker → BridgeBackend → cheroot, over HTTP."""

from __future__ import annotations


import pytest
import requests

from bridge.ami.client import AmiClient
from bridge.ami.message import Message
from bridge.testing.simulator import AmiSimulator
from bridge.config import AmiConfig, ClickToCallConfig, SoapConfig, SubscriberConfig
from bridge.events import Pipeline, Router
from bridge import ns
from bridge.soap.app import build_app
from bridge.soap.auth import hash_password
from bridge.soap.backend import BridgeBackend
from bridge.soap.server import SoapServer
from bridge.testing.helpers import WAIT_S, RecordingSink, actions_sent

# WAIT_S (helpers, 10 s) bounds anything a test waits for; 5 s here was tight with 4 workers on a
# loaded 2-core machine, and a passing wait returns at once, so the larger bound costs nothing.
USER, PASSWORD = "1c", "Пароль-1С"
AUTH = (USER, PASSWORD.encode("utf-8"))    # 1C sends Basic credentials as UTF-8; requests needs bytes for that
# Few iterations keep the suite fast; the format and the code path are the production ones.
PASSWORD_HASH = hash_password(PASSWORD, iterations=1_000, salt="test-salt")
ORIGINATE_ACTIONS = ("Originate", "Hangup", "Redirect", "ExtensionState")






@pytest.fixture
def profile():
    return "asterisk20"


@pytest.fixture
def time_scale():
    return 0.0


@pytest.fixture
def sim(profile, time_scale):
    with AmiSimulator(profile, users={"bridge": "secret"}, time_scale=time_scale,
                      originate_outcomes={"999": "busy"}) as simulator:
        yield simulator


@pytest.fixture
def soap_cfg():
    return SoapConfig(listen="127.0.0.1:0", allow=("127.0.0.1/32",), users={USER: PASSWORD_HASH},
                      click_to_call=ClickToCallConfig(channel="PJSIP/{extension}", context="from-internal"),
                      allowed_contexts=("from-internal", "ext-local"), allowed_channels=(r"(PJSIP|SIP|Local)/.+",),
                      max_body_bytes=64 * 1024, threads=8)


@pytest.fixture
def tracker():
    from bridge.calls import CallTracker
    return CallTracker()


@pytest.fixture
def stack(sim, soap_cfg, tracker):
    """(backend, client, sink): the production wiring — the events Pipeline feeds the CallTracker and
    routes normalized events to a subscriber; listeners are attached before the client connects."""
    # No keepalive Ping during a test: the fuzz test counts every action the simulator receives,
    # and on a loaded machine it outlasts the default 10 s ping interval.
    client = AmiClient(AmiConfig("pbx1", sim.host, sim.port, "bridge", "secret", connect_timeout_s=2.0,
                                 reconnect_base_s=0.05, reconnect_cap_s=0.2, ping_interval_s=3600.0))
    backend = BridgeBackend({"pbx1": client}, tracker, soap_cfg=soap_cfg, pending_count=lambda: 7)
    sink = RecordingSink()
    router = Router([SubscriberConfig(name="erp", url="http://erp.example/ws", mode="normalized")])
    Pipeline(tracker, router, sink, clients=[client])
    client.start()
    try:
        assert client.wait_connected(WAIT_S)
        yield backend, client, sink
    finally:
        client.stop()


@pytest.fixture
def backend(stack):
    return stack[0]


@pytest.fixture
def server(backend, soap_cfg):
    with SoapServer(build_app(backend, soap_cfg), "127.0.0.1:0", threads=8) as srv:
        yield srv


@pytest.fixture
def http():
    with requests.Session() as session:
        session.auth = AUTH
        yield session


@pytest.fixture
def url(server):
    return server.url + "/bridge"


@pytest.fixture
def zeep_client(url, http):
    import zeep
    from zeep.transports import Transport
    return zeep.Client(url + "?wsdl", transport=Transport(session=http, timeout=WAIT_S))


def envelope(body: str, soap12: bool = False, prefix: str = "soapenv") -> str:
    env = ns.SOAP12_ENV if soap12 else ns.SOAP11_ENV
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<{prefix}:Envelope xmlns:{prefix}="{env}" '
            f'xmlns:m="{ns.BRIDGE}"><{prefix}:Header/><{prefix}:Body>{body}</{prefix}:Body></{prefix}:Envelope>')


def sent(sim, *names: str) -> list[Message]:
    return actions_sent(sim, *(names or ORIGINATE_ACTIONS))
