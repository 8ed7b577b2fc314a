"""Two bridge nodes on the real Asterisk 22 (two AMI sessions): the same events get the same ids."""

from __future__ import annotations

import pytest

from bridge.config import AmiConfig, Config, DatabaseConfig, HaConfig, SubscriberConfig
from bridge.outbox.db import upgrade
from bridge.testing.helpers import wait_until

WAIT_S = 30.0


class Tap:
    """Records what the pipeline hands the HA gate (id → name), then passes it on."""

    def __init__(self, sink) -> None:
        self.sink = sink
        self.seen: dict[str, str] = {}
        self.texts: list[str] = []

    def accept(self, event, subscribers) -> None:
        self.seen[event.event_uuid] = event.name
        self.texts.append(event.text)
        self.sink.accept(event, subscribers)


@pytest.mark.asterisk
@pytest.mark.slow
def test_two_nodes_give_asterisk_22_events_the_same_ids_when_both_listen(pg_url, tmp_path, monkeypatch):
    import shutil

    from bridge.runtime import Runtime
    from tests.asterisk import pbx as pbx_module
    from bridge.testing.fake_erp import FakeErp
    from tests.asterisk.conftest import _require_asterisk
    from tests.asterisk.driver import AmiDriver
    from tests.asterisk.pbx import BRIDGE_SECRET, BRIDGE_USER, DRIVER_SECRET, DRIVER_USER, Pbx

    _require_asterisk()
    upgrade(pg_url)
    # What docs/ha.md recommends: Asterisk's own Timestamp in every event, so ids never depend on
    # the nodes' clocks (without it a 60 s clock bucket is mixed in; bridge.events.ids).
    etc = tmp_path / "etc"
    shutil.copytree(pbx_module.ETC, etc)
    manager = etc / "manager.conf"
    manager.write_text(manager.read_text().replace("[general]\n", "[general]\ntimestampevents = yes\n", 1))
    monkeypatch.setattr(pbx_module, "ETC", etc)
    pbx = Pbx().start()
    nodes, taps = [], []
    try:
        with FakeErp() as sink:
            for n in "ab":
                config = Config(database=DatabaseConfig(url=pg_url),
                                ami=(AmiConfig(name="pbx1", port=pbx.ami_port, username=BRIDGE_USER,
                                               secret=BRIDGE_SECRET),),
                                subscribers=(SubscriberConfig(name="erp", url=sink.url, mode="both"),),
                                ha=HaConfig(node_id=f"live-{n}", lease_s=1.0, renew_s=0.2))
                node = Runtime(config, drain_timeout_s=2.0).start()
                nodes.append(node)
            assert wait_until(lambda: all(node.clients[0].connected for node in nodes), WAIT_S)
            for node in nodes:
                taps.append(Tap(node.pipeline.sink))
                node.pipeline.sink = taps[-1]
            driver = AmiDriver(pbx.ami_port, DRIVER_USER, DRIVER_SECRET)
            try:
                # 101 answers, talks 5 s and hangs up (example dialplan [phones]).
                driver.action("Originate", Channel="Local/101@phones", Context="phones", Exten="102",
                              Priority="1", Async="true")
                assert wait_until(lambda: all(list(t.seen.values()).count("CallEnded") >= 1 for t in taps),
                                  WAIT_S)
                wait_until(lambda: False, 1.0)   # the last events reach both nodes
            finally:
                driver.close()
    finally:
        for node in nodes:
            node.stop()
        pbx.stop()
    calls = [{k: v for k, v in t.seen.items() if not v.startswith("Link")} for t in taps]
    assert len(calls[0]) > 10
    assert calls[0] == calls[1]
    assert any("Timestamp" in t for t in taps[0].texts)
