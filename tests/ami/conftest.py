"""Fixtures for the AMI tests: a simulator per test, clients that stop themselves, a recording listener."""

from __future__ import annotations

import threading
import time

import pytest

from bridge.ami.client import AmiClient
from bridge.ami.protocol import Action, Banner, Message
from bridge.ami.simulator import AmiSimulator

WAIT_S = 5.0  # upper bound for anything a test waits for; passing runs take milliseconds


class Recorder:
    """An AmiListener that keeps everything it is told and lets tests wait for it."""

    def __init__(self) -> None:
        self.events: list[Message] = []
        self.connected: list[Banner] = []
        self.disconnected: list[str] = []
        self._cond = threading.Condition()

    def on_event(self, server: str, message: Message) -> None:
        with self._cond:
            self.events.append(message)
            self._cond.notify_all()

    def on_connected(self, server: str, banner: Banner) -> None:
        with self._cond:
            self.connected.append(banner)
            self._cond.notify_all()

    def on_disconnected(self, server: str, reason: str) -> None:
        with self._cond:
            self.disconnected.append(reason)
            self._cond.notify_all()

    def wait_for(self, predicate, timeout_s: float = WAIT_S) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout_s)

    def named(self, event: str) -> list[Message]:
        with self._cond:
            return [m for m in self.events if m.event == event]


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

    def make(**kw) -> tuple[AmiClient, Recorder]:
        options = dict(username="bridge", secret="s3cret-Пароль", reconnect_base_s=0.05, reconnect_cap_s=0.2,
                       connect_timeout_s=2.0)
        options.update(kw)
        client = AmiClient("pbx", options.pop("host", sim.host), options.pop("port", sim.port), **options)
        recorder = Recorder()
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


def wait_until(predicate, timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True
