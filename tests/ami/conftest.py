"""Fixtures for the AMI tests: a simulator per test, clients that stop themselves, a recording listener."""

from __future__ import annotations


import pytest

from bridge.ami.client import AmiClient
from bridge.config import AmiConfig
from bridge.ami.actions import Action
from bridge.testing.helpers import WAIT_S, RecordingListener
from bridge.testing.simulator import AmiSimulator

# WAIT_S (helpers, 10 s) bounds anything a test waits for; 5 s here was tight with 4 workers on a
# loaded 2-core machine, and a passing wait returns at once, so the larger bound costs nothing.
CLIENT_OPTIONS = ("filters", "max_line", "max_message", "ssl_context", "rng")  # AmiClient arguments, not settings




@pytest.fixture(params=["asterisk20"])
def profile(request):
    return request.param


@pytest.fixture
def sim(profile):
    with AmiSimulator(profile, users={"bridge": "s3cret-Пароль"}, time_scale=0.0) as simulator:
        yield simulator


@pytest.fixture
def make_client(sim):
    clients: list[AmiClient] = []

    def make(**kw) -> tuple[AmiClient, RecordingListener]:
        settings = dict(host=sim.host, port=sim.port, username="bridge", secret="s3cret-Пароль",
                        reconnect_base_s=0.05, reconnect_cap_s=0.2, connect_timeout_s=2.0)
        options = {k: kw.pop(k) for k in CLIENT_OPTIONS if k in kw}
        settings.update(kw)
        client = AmiClient(AmiConfig("pbx", **settings), **options)
        recorder = RecordingListener()
        client.add_listener(recorder)
        clients.append(client)
        client.start()
        return client, recorder

    yield make
    for client in clients:
        client.stop()


def barrier(client: AmiClient) -> None:
    """Everything the simulator sent before this returns has been read and dispatched (one socket, in order)."""
    client.send_action(Action.build("Ping")).result(WAIT_S)


