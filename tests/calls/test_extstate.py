"""bridge/calls/extstate.py: hint states asked from AMI once, then kept by events (real client + simulator)."""

from __future__ import annotations

import pytest

from bridge.ami.client import AmiClient
from bridge.config import AmiConfig
from bridge.ami.message import Message
from bridge.errors import AmiConnectionError
from bridge.calls.extstate import ExtensionStateCache, device_resource, state_name

from bridge.testing.helpers import WAIT_S, actions_sent as sent
from bridge.testing.simulator import AmiSimulator


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sim():
    with AmiSimulator("asterisk20", users={"bridge": "secret"}, time_scale=0.0) as simulator:
        yield simulator


@pytest.fixture
def client(sim):
    ami = AmiClient(AmiConfig("pbx1", sim.host, sim.port, "bridge", "secret", connect_timeout_s=2.0))
    ami.start()
    assert ami.wait_connected(WAIT_S)
    yield ami
    ami.stop()


def test_lookup_asks_asterisk_once_when_repeated_within_ttl(client, sim):
    clock = Clock()
    cache = ExtensionStateCache(clock=clock, ttl_s=2.0)
    assert cache.lookup(client, "202", "from-internal").state == "idle"
    cache.lookup(client, "202", "from-internal")
    assert len(sent(sim, "ExtensionState")) == 1 and (cache.hits, cache.misses) == (1, 1)
    clock.now += 2.5
    cache.lookup(client, "202", "from-internal")
    assert len(sent(sim, "ExtensionState")) == 2


def test_extension_status_event_updates_the_cache_when_asterisk_reports_a_change(client, sim):
    cache = ExtensionStateCache()
    cache.lookup(client, "202", "from-internal")
    cache.on_event("pbx1", Message.from_pairs([("Event", "ExtensionStatus"), ("Exten", "202"),
                                               ("Context", "from-internal"), ("Status", "8")]))
    assert cache.lookup(client, "202", "from-internal").state == "ringing"
    assert len(sent(sim, "ExtensionState")) == 1


def test_channel_event_makes_the_next_lookup_ask_asterisk_when_the_device_is_involved(client, sim):
    cache = ExtensionStateCache()
    cache.lookup(client, "202", "from-internal")
    cache.on_event("pbx1", Message.from_pairs([("Event", "Newstate"), ("Channel", "PJSIP/202-0000001a")]))
    cache.lookup(client, "202", "from-internal")
    assert len(sent(sim, "ExtensionState")) == 2


def test_disconnect_forgets_states_when_the_link_drops(client, sim):
    cache = ExtensionStateCache()
    cache.lookup(client, "202", "from-internal")
    cache.on_disconnected("pbx1", "gone")
    cache.lookup(client, "202", "from-internal")
    assert len(sent(sim, "ExtensionState")) == 2


def test_lookup_raises_connection_error_when_client_is_offline():
    offline = AmiClient(AmiConfig("pbx1", "127.0.0.1", 9, "bridge", "secret"))
    with pytest.raises(AmiConnectionError):
        ExtensionStateCache().lookup(offline, "202", "from-internal")


@pytest.mark.parametrize("channel, expected", [("PJSIP/202-0000001a", "202"), ("SIP/202-00000c1f", "202"),
                                               ("Local/202@from-internal-00000001;1", "202"),
                                               ("PJSIP/trunk-provider-0000001b", "trunk-provider"),
                                               ("PJSIP/202", "202"), (None, None), ("garbage", None)])
def test_device_resource_strips_the_channel_suffix_when_present(channel, expected):
    assert device_resource(channel) == expected


def test_state_name_maps_asterisk_codes_when_known():
    assert [state_name(c) for c in (0, 1, 2, 4, 8, 9, 16, -1, None, 99)] == [
        "idle", "in_use", "busy", "unavailable", "ringing", "ringing", "on_hold", "not_found", "unknown", "unknown"]
