"""The chaos rig: simulator + stream → real bridge (Runtime in-process) → FakeErp, with knobs."""

from __future__ import annotations

import os
from pathlib import Path

from bridge.config import AmiConfig, Config, DatabaseConfig, SubscriberConfig
from bridge.testing.helpers import wait_until

from tests.chaos.stream import EventStream, SimHolder

FULL = os.environ.get("BRIDGE_CHAOS_FULL") == "1"
AMI_SECRET = "chaos-secret-4d1e"
FILTER = "ChaosMatch: 1"
# Longer than a dispatcher lease (connect 1 s + read 1 s + dispatcher.LEASE_MARGIN_S 60 s), so a
# row whose lease outlived a fault is still waited for; passing runs drain in a second or two.
DRAIN_TIMEOUT_S = 180.0 if FULL else 90.0
POLL_S = 0.05


def scale(short, full):
    """The short value inside `make test`, the full one under `make chaos` (BRIDGE_CHAOS_FULL=1)."""
    return full if FULL else short


def newest_session(sim) -> int:
    """The number of the simulator's newest AMI session (0: none yet)."""
    return max((s.number for s in sim.sessions), default=0)


def logged_in_after(sim, number: int) -> bool:
    """A session newer than `number` has logged in: a (re)started bridge is listening."""
    return any(s.number > number and s.logged_in for s in sim.sessions)


def ami_config(port: int, **kw) -> AmiConfig:
    kw.setdefault("reconnect_base_s", 0.1)
    kw.setdefault("reconnect_cap_s", 0.5)
    return AmiConfig(name="pbx1", port=port, username="bridge", secret=AMI_SECRET, **kw)


def subscriber_config(url: str, **kw) -> SubscriberConfig:
    kw.setdefault("retry_base_s", 0.05)
    kw.setdefault("retry_cap_s", 0.5)
    kw.setdefault("connect_timeout_s", 1.0)
    kw.setdefault("read_timeout_s", 1.0)
    return SubscriberConfig(name="erp", url=url, mode="raw", filter=FILTER, **kw)


def new_simulator(port: int = 0):
    from bridge.testing.simulator import AmiSimulator

    return AmiSimulator("asterisk20", port=port, users={"bridge": AMI_SECRET}).start()


class Rig:
    """One bridge under test. Use as a context manager; `finish()` drains, then audit."""

    def __init__(self, tmp_path: Path, db_url: str, *, rate_per_s: float = 500.0, seed: int = 0,
                 ami_kw: dict | None = None, sub_kw: dict | None = None, timestamps: bool = False) -> None:
        from bridge.testing.fake_erp import FakeErp

        self.tmp_path, self.db_url = tmp_path, db_url
        self.ami_kw, self.sub_kw = ami_kw or {}, sub_kw or {}
        self.sink = FakeErp()
        self.holder = SimHolder()
        self.stream = EventStream(self.holder, rate_per_s, seed=seed, timestamps=timestamps)
        self.runtime = None
        self.port = 0

    def __enter__(self) -> "Rig":
        from bridge.outbox.db import upgrade

        upgrade(self.db_url)
        sim = new_simulator()
        self.port = sim.port
        self.holder.swap(sim)
        self.sink.start()
        self.start_bridge()
        self.stream.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stream.stop()
        self.stop_bridge()
        if self.holder.current is not None:
            self.holder.current.stop()
        self.sink.stop()

    @property
    def sim(self):
        return self.holder.current

    def config(self) -> Config:
        return Config(database=DatabaseConfig(url=self.db_url),
                      ami=(ami_config(self.port, **self.ami_kw),),
                      subscribers=(subscriber_config(self.sink.url, **self.sub_kw),))

    def start_bridge(self) -> None:
        from bridge.runtime import Runtime

        self.runtime = Runtime(self.config(), drain_timeout_s=1.0).start()
        assert self.runtime.clients[0].wait_connected(10.0), "bridge never logged in to the simulator"

    def stop_bridge(self) -> None:
        if self.runtime is not None:
            self.runtime.stop()
            self.runtime = None

    @property
    def client(self):
        return self.runtime.clients[0]

    def kill_sim(self) -> None:
        sim, self.holder.current = self.holder.current, None
        sim.stop()

    def restart_sim(self) -> None:
        self.holder.swap(new_simulator(self.port))

    def check_link_receives(self, count: int = 20) -> list[int]:
        """After a link fault: once logged in again, newly emitted matching events are accepted."""
        assert wait_until(lambda: self.client.connected and self.sim.logged_in_count() > 0, 15.0), \
            "the AMI link did not come back"
        self.stream.stop()
        seqs = self.stream.emit_now(count)
        return seqs

    def drain(self, expect_seqs=None) -> bool:
        """Stop emitting; wait until the events in `expect_seqs` (ChaosSeq; default: every matching
        event offered on a live link) are committed, every committed row is delivered, and the sink
        has them all. Without the first condition, events still in flight (socket, writer queue)
        would be committed after the check and look lost to the audit."""
        self.stream.stop()
        expected = set(self.stream.matched_offered if expect_seqs is None else expect_seqs)
        return wait_until(lambda: self._drained(expected), DRAIN_TIMEOUT_S, 0.2)

    def _drained(self, expected: set[int]) -> bool:
        from tests.chaos.audit import outbox_rows, seq_of

        rows = outbox_rows(self.db_url)
        return (expected <= {seq_of(r["payload"]) for r in rows}
                and all(r["status"] == "delivered" for r in rows)
                and {r["event_uuid"] for r in rows} <= self.sink.delivered_ids())
