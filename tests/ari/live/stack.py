"""Bridges of the live ARI suite: a client of either transport feeding its own call model and sink."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.ami.client import AmiClient
from bridge.ari.client import AriClient
from bridge.calls import CallTracker
from bridge.config import AmiConfig, SubscriberConfig
from bridge.events import Pipeline, Router
from bridge.testing.helpers import RecordingListener, RecordingSink
from tests.ari.live.pbx import AMI_SECRET, AMI_USER, ARI_SECRET, ARI_USER, Pbx

# The story of a call as the ERP reads it; ids, channel names and clock times vary between runs.
STORY_FIELDS = ("Extension", "State", "CallState", "CallerIDNum", "CallerIDName", "CalleeNum", "Direction",
                "Reason", "Cause", "AnsweredBy", "HangupBy", "Queue", "TransferType", "TransferTarget")


def ami_config(pbx: Pbx, transport: str, **overrides) -> AmiConfig:
    fast = dict(connect_timeout_s=3.0, reconnect_base_s=0.1, reconnect_cap_s=0.5, ping_interval_s=1.0,
                ping_timeout_s=1.0)
    fast.update(overrides)
    if transport == "ari":
        return AmiConfig(**{"name": "pbx", "transport": "ari", "url": pbx.ari_url, "username": ARI_USER,
                            "secret": ARI_SECRET, **fast})
    return AmiConfig(**{"name": "pbx", "port": pbx.ami_port, "username": AMI_USER, "secret": AMI_SECRET, **fast})


@dataclass
class Bridge:
    client: object
    tracker: CallTracker
    sink: RecordingSink
    notices: RecordingListener

    def start(self, timeout_s: float = 10.0) -> None:
        """Connected and resynced: notices run in order, so ours comes after the pipeline's resync."""
        self.client.start()
        assert self.notices.wait_for(lambda r: r.connected, timeout_s), self.client.stats.last_error

    def stories(self) -> dict[str, list[tuple]]:
        """CallId → [(event name, *STORY_FIELDS)] in the order the subscriber got them."""
        out: dict[str, list[tuple]] = {}
        for event in self.sink.normalized():
            out.setdefault(event.get("CallId"), []).append(
                (event.name, *(event.get(f) or "" for f in STORY_FIELDS)))
        return out

    def call_ended(self, call_id: str) -> bool:
        return any(e.name == "CallEnded" and e.get("CallState") == "ended" for e in self.sink.normalized(call_id))


def bridge_for(pbx: Pbx, transport: str, mode: str = "normalized", **overrides) -> Bridge:
    cfg = ami_config(pbx, transport, **overrides)
    client = AriClient(cfg) if transport == "ari" else AmiClient(cfg)
    tracker, sink, notices = CallTracker(), RecordingSink(), RecordingListener()
    Pipeline(tracker, Router([SubscriberConfig(name="erp", url="http://erp.example/ws", mode=mode)]), sink,
             clients=[client])
    client.add_listener(notices)
    return Bridge(client, tracker, sink, notices)
