"""ARI against AMI over TCP, both reading the same real Asterisk 22 (the only ARI there is here).

    .venv/bin/python benchmarks/ari.py [--quick] [--rate 50] [--seconds 10] [--flood 20000]

Latency: event → ERP. A channel runs `[bench] rate` (benchmarks/ari-etc): it sets BENCHT to
Asterisk's wall clock every 1/rate s; each set is a VarSet over AMI and a ChannelVarset over ARI.
A whole bridge (client, call model, filters, SQLite outbox, dispatcher, SOAP POST to a fake ERP)
delivers those raw events; latency = ERP receipt time − BENCHT (same host, same clock). One
bridge per transport, both running at once on the same variable sets, so the machine's other
load falls on both alike.
Throughput: `[bench] flood` sets a variable `flood` times as fast as the dialplan runs, while an
AMI client and an ARI client both listen; each reports the events/s it read from the first event
of the flood to the last (Asterisk's own pace bounds both).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bridge.ami.actions import Action  # noqa: E402
from bridge.ami.client import AmiClient  # noqa: E402
from bridge.ari.client import AriClient  # noqa: E402
from bridge.config import Config, DatabaseConfig, SubscriberConfig  # noqa: E402
from tests.ari.live.pbx import Pbx, asterisk_dir  # noqa: E402
from tests.ari.live.stack import ami_config  # noqa: E402

_VALUE = re.compile(rb'<m:header name="[Vv]alue">([0-9]+\.[0-9]+)</m:header>')


def originate(pbx_client, exten: str, count: int, gap_s: float = 0.0) -> None:
    variables = [f"COUNT={count}"] + ([f"GAP={gap_s:.4f}"] if gap_s else [])
    pbx_client.send_action(Action.build("Originate", Channel="Local/401@phones", Context="bench", Exten=exten,
                                        Priority=1, Variable=variables, Async=True)).result(10)


class _LinkLag:
    """A listener beside the pipeline: Asterisk's clock (BENCHT) → the event in the reader's hands,
    the link's own share of the latency (the rest is the outbox path both transports share)."""

    def __init__(self, name_key: str, value_key: str) -> None:
        self.name_key, self.value_key = name_key, value_key
        self.lags: list[float] = []

    def on_event(self, server, message) -> None:
        if message.get(self.name_key) == "BENCHT":
            self.lags.append((time.time() - float(message.get(self.value_key))) * 1000.0)

    def on_connected(self, server, banner) -> None:
        pass

    def on_disconnected(self, server, reason) -> None:
        pass


def latency_run(pbx: Pbx, rate: float, seconds: float) -> list[dict]:
    """Both bridges at once, each with its own outbox and ERP sink, reading the same variable sets:
    whatever else loads the machine loads both alike (one after the other, a neighbour's burst
    during one run made either look 10x slower in turn: 139 vs 14 ms, then 66 vs 218 ms)."""
    from bridge.runtime import Runtime
    from bridge.testing.fake_erp import FakeErp

    count = int(rate * seconds)
    kinds = ("tcp", "ari")
    with tempfile.TemporaryDirectory() as tmp, FakeErp() as tcp_sink, FakeErp() as ari_sink:
        sinks = dict(zip(kinds, (tcp_sink, ari_sink)))
        runtimes = {}
        lags = {"tcp": _LinkLag("Variable", "Value"), "ari": _LinkLag("variable", "value")}
        driver = AmiClient(ami_config(pbx, "tcp"))
        try:
            for kind in kinds:
                config = Config(database=DatabaseConfig(url=f"sqlite:///{tmp}/{kind}.db", batch_max_delay_s=0.005),
                                ami=(ami_config(pbx, kind, ping_interval_s=10.0, ping_timeout_s=5.0),),
                                subscribers=(SubscriberConfig(name="erp", url=sinks[kind].url, mode="raw",
                                                              events=("VarSet", "ChannelVarset"),
                                                              headers={"Variable": "BENCHT"}),))
                runtimes[kind] = Runtime(config, auto_upgrade=True, drain_timeout_s=2.0).start()
                runtimes[kind].clients[0].add_listener(lags[kind])     # before the calls start
            driver.start()
            assert all(r.clients[0].wait_connected(10) for r in runtimes.values()) and driver.wait_connected(10)
            time.sleep(0.5)                       # the resync after login is over
            originate(driver, "rate", count, 1.0 / rate)
            for sink in sinks.values():
                sink.wait_for(lambda s: len(s.delivered()) >= count, seconds * 3 + 30)
        finally:
            driver.stop()
            for runtime in runtimes.values():
                runtime.stop()
        results = []
        for kind in kinds:
            lat = sorted((r.received_at - float(m.group(1))) * 1000.0
                         for r in sinks[kind].delivered() if (m := _VALUE.search(r.body)))
            link = sorted(lags[kind].lags)
            results.append({"kind": kind, "sent": count, "received": len(lat), "p50": _pct(lat, 50),
                            "p99": _pct(lat, 99), "max": lat[-1] if lat else float("nan"),
                            "link_p50": _pct(link, 50), "link_p99": _pct(link, 99)})
    return results


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=1000, method="inclusive")[int(p * 10) - 1] if len(values) > 1 else values[0]


class _Counter:
    """A listener that times the flood's variable sets (BENCHF) as they arrive."""

    def __init__(self, name_key: str) -> None:
        self.key = name_key
        self.count = 0
        self.first = self.last = 0.0
        self.lock = threading.Lock()

    def on_event(self, server, message) -> None:
        if message.get(self.key) == "BENCHF":
            now = time.monotonic()
            with self.lock:
                self.first = self.first or now
                self.last = now
                self.count += 1

    def on_connected(self, server, banner) -> None:
        pass

    def on_disconnected(self, server, reason) -> None:
        pass


def flood_run(pbx: Pbx, count: int) -> dict:
    ami, ari = AmiClient(ami_config(pbx, "tcp")), AriClient(ami_config(pbx, "ari", ping_interval_s=10.0))
    counters = {"tcp": _Counter("Variable"), "ari": _Counter("variable")}
    ami.add_listener(counters["tcp"])
    ari.add_listener(counters["ari"])
    for client in (ami, ari):
        client.start()
    try:
        assert ami.wait_connected(10) and ari.wait_connected(10)
        time.sleep(0.5)
        originate(ami, "flood", count)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and min(c.count for c in counters.values()) < count:
            time.sleep(0.05)
    finally:
        ami.stop()
        ari.stop()
    out = {}
    for kind, c in counters.items():
        span = c.last - c.first
        out[kind] = {"events": c.count, "per_s": c.count / span if span > 0 else float("nan")}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--flood", type=int, default=5000)
    args = parser.parse_args()
    seconds, flood = (4.0, 3000) if args.quick else (args.seconds, args.flood)
    home = asterisk_dir()
    if home is None:
        print("no shared Asterisk (../shared/asterisk or BRIDGE_ASTERISK_DIR): nothing measured")
        return 1
    pbx = Pbx(home, overlay=Path(__file__).resolve().parent / "ari-etc").start()
    try:
        runs = latency_run(pbx, args.rate, seconds)
        floods = flood_run(pbx, flood)
    finally:
        pbx.stop()
    print(f"event → ERP latency at {args.rate:g} events/s for {seconds:g} s (real Asterisk 22, whole bridge):")
    for r in runs:
        label = "AMI over TCP (baseline)" if r["kind"] == "tcp" else "ARI WebSocket (ours)"
        print(f"  {label:<26} p50 {r['p50']:.1f} ms  p99 {r['p99']:.1f} ms  max {r['max']:.1f} ms  "
              f"({r['received']}/{r['sent']} delivered)")
    tcp, ari = runs
    print(f"  ARI / TCP: p50 {ari['p50'] / tcp['p50']:.2f}x  p99 {ari['p99'] / tcp['p99']:.2f}x")
    print("  of which the link (Asterisk's clock → event in the reader, before the outbox):")
    for r in runs:
        label = "AMI over TCP (baseline)" if r["kind"] == "tcp" else "ARI WebSocket (ours)"
        print(f"    {label:<24} p50 {r['link_p50']:.1f} ms  p99 {r['link_p99']:.1f} ms")
    print(f"sustained read rate, one flood of {flood} variable sets seen by both clients at once:")
    print(f"  AMI over TCP (baseline)    {floods['tcp']['per_s']:,.0f} events/s ({floods['tcp']['events']} read)")
    print(f"  ARI WebSocket (ours)       {floods['ari']['per_s']:,.0f} events/s ({floods['ari']['events']} read)")
    print(f"  ARI / TCP: {floods['ari']['per_s'] / floods['tcp']['per_s']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
