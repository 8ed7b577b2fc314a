"""AJAM against AMI over TCP and against the 10 s polling loop the hand-made integrations run.

    .venv/bin/python benchmarks/ajam.py [--quick] [--rate 50] [--seconds 20] [--poll-seconds 40]
                                        [--flood 100000] [--asterisk]

Latency: event → ERP, i.e. from the moment the simulator emits an event (its `BenchT` header,
wall clock) to the moment the ERP sink receives its PushEvent (same host, same clock), through
the whole bridge (client, call model, filters, SQLite outbox, dispatcher, SOAP POST), at `rate`
events/s, for three links to the same simulator, one after another in this process:
  tcp      AMI over TCP (AmiClient)
  ajam     AJAM, WaitEvent long poll (AjamClient, cookie session)
  polling  AJAM read the way the seed's scripts do: `WaitEvent` with Timeout 0 every 10 s
Throughput: `flood` events emitted as fast as the simulator can, counted at the client's
listener, once over TCP and once over AJAM: events/s from the first to the last.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bridge.ami import ajam_wire, names  # noqa: E402
from bridge.ami.ajam import AjamClient, _Poller  # noqa: E402
from bridge.ami.client import AmiClient  # noqa: E402
from bridge.testing.simulator import AmiSimulator  # noqa: E402
from bridge.config import AmiConfig, Config, DatabaseConfig, SubscriberConfig  # noqa: E402

SECRET = "bench-ajam-secret"
POLL_INTERVAL_S = 10.0
_BENCH_T = re.compile(rb'<m:header name="BenchT">([0-9.]+)</m:header>')
_TIME = re.compile(rb"<m:time>([^<]+)</m:time>")


class _PollingPoller(_Poller):
    """The seed's approach: every POLL_INTERVAL_S, fetch what queued with WaitEvent Timeout=0."""

    def _poll(self) -> str:
        client = self.client
        fields = [(names.ACTION, ajam_wire.WAIT_EVENT), ("Timeout", "0")]
        while not client._stop.wait(POLL_INTERVAL_S):
            result = ajam_wire.wait_event_result(client._http.post(fields, 10.0, poll=True))
            for event in result.events:
                client._dispatch(event)
        return "client stopped"


class PollingClient(AjamClient):
    poller_class = _PollingPoller


def ami_config(kind: str, sim: AmiSimulator) -> AmiConfig:
    common = dict(name=kind, username="bridge", secret=SECRET, reconnect_base_s=0.1, reconnect_cap_s=1.0)
    if kind == "tcp":
        return AmiConfig(port=sim.port, **common)
    return AmiConfig(transport="http", url=sim.ajam.url, wait_timeout_s=20.0, **common)


def latency_run(kind: str, rate: float, seconds: float) -> dict:
    """Emit `rate` events/s for `seconds` through the whole bridge; event → sink receipt, in ms."""
    import bridge.ami.transports as transports
    from bridge.testing.fake_erp import FakeErp
    from bridge.runtime import Runtime

    with tempfile.TemporaryDirectory() as tmp, \
            AmiSimulator("asterisk20", users={"bridge": SECRET}, http_port=0) as sim, FakeErp() as sink:
        config = Config(database=DatabaseConfig(url=f"sqlite:///{tmp}/outbox.db", batch_max_delay_s=0.005),
                        ami=(ami_config(kind, sim),),
                        subscribers=(SubscriberConfig(name="erp", url=sink.url, mode="raw", filter="BenchT"),))
        original = transports.client_from_config
        if kind == "polling":
            transports.client_from_config = lambda cfg, filters=(): PollingClient.from_config(cfg, filters)
        try:
            runtime = Runtime(config, auto_upgrade=True, drain_timeout_s=2.0).start()
        finally:
            transports.client_from_config = original
        try:
            assert runtime.clients[0].wait_connected(10), runtime.clients[0].stats.last_error
            count = int(rate * seconds)
            started = time.monotonic()
            for seq in range(count):
                delay = started + seq / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                uid = f"1800000000.{seq}"
                sim.emit([("Event", "UserEvent"), ("Privilege", "user,all"), ("UserEvent", "bench"),
                          ("Uniqueid", uid), ("Linkedid", uid), ("Seq", str(seq)), ("BenchT", f"{time.time():.6f}")])
            sink.wait_for(lambda s: len(s.delivered()) >= count, POLL_INTERVAL_S + 30)
        finally:
            runtime.stop()
        lat, link = [], []
        for receipt in sink.delivered():
            emitted, arrived = _BENCH_T.search(receipt.body), _TIME.search(receipt.body)
            if emitted:
                lat.append((receipt.received_at - float(emitted.group(1))) * 1000.0)
                if arrived:  # the envelope's <time>: when the bridge read the event off its link
                    when = datetime.fromisoformat(arrived.group(1).decode().replace("Z", "+00:00"))
                    link.append((when.timestamp() - float(emitted.group(1))) * 1000.0)
        lat.sort()
        link.sort()
    return {"kind": kind, "sent": count, "received": len(lat), "p50": _pct(lat, 50), "p99": _pct(lat, 99),
            "max": lat[-1] if lat else float("nan"), "link_p50": _pct(link, 50), "link_p99": _pct(link, 99)}


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=1000, method="inclusive")[int(p * 10) - 1] if len(values) > 1 else values[0]


class _Counter:
    def __init__(self, total: int) -> None:
        self.total, self.count = total, 0
        self.first = self.last = 0.0
        self.done = threading.Event()

    def on_event(self, server, message) -> None:
        if message.event != "UserEvent":
            return
        now = time.monotonic()
        if self.count == 0:
            self.first = now
        self.count += 1
        self.last = now
        if self.count >= self.total:
            self.done.set()


def throughput_run(kind: str, total: int) -> dict:
    """`total` events emitted back to back; events/s the client's listener saw, first to last."""
    with AmiSimulator("asterisk20", users={"bridge": SECRET}, http_port=0) as sim:
        client = AmiClient(ami_config(kind, sim)) if kind == "tcp" else AjamClient(ami_config(kind, sim))
        counter = _Counter(total)
        client.add_listener(counter)
        client.start()
        try:
            assert client.wait_connected(10)
            payload = [("Event", "UserEvent"), ("Privilege", "user,all"), ("UserEvent", "flood"),
                       ("CallerIDName", "Оператор-202"), ("Channel", "PJSIP/202-00000001"),
                       ("Uniqueid", "1800000000.1"), ("Linkedid", "1800000000.1")]
            emitted_at = time.monotonic()
            for _ in range(total):
                sim.emit(payload)
            emit_s = time.monotonic() - emitted_at
            counter.done.wait(120)
        finally:
            client.stop()
    span = counter.last - counter.first
    return {"kind": kind, "events": counter.count, "rate": counter.count / span if span > 0 else float("nan"),
            "emit_rate": total / emit_s if emit_s > 0 else float("nan")}


def asterisk_link_run(rate: float, seconds: float) -> list[dict]:
    """On the real Asterisk 22 (tests/ajam_live's etc/): UserEvents sent by a driver link at `rate`,
    read at once by an AmiClient and two AjamClients (cookie, digest); sent → listener, in ms."""
    from tests.ajam_live.pbx import BRIDGE_SECRET, BRIDGE_USER, DRIVER_SECRET, DRIVER_USER, Pbx
    from bridge.ami.actions import Action

    class Stamps:
        def __init__(self) -> None:
            self.lat: list[float] = []

        def on_event(self, server, message) -> None:
            sent = message.get("BenchT")
            if message.event == "UserEvent" and sent:
                self.lat.append((time.time() - float(sent)) * 1000.0)

    pbx = Pbx(httptimeout_s=60)
    try:
        pbx.start()
        login = dict(username=BRIDGE_USER, secret=BRIDGE_SECRET)
        clients = {"tcp": AmiClient(AmiConfig("tcp", port=pbx.ami_port, **login)),
                   "cookie": AjamClient(AmiConfig("cookie", transport="http", url=pbx.ajam_url, **login)),
                   "digest": AjamClient(AmiConfig("digest", transport="http", url=pbx.ajam_url, auth="digest",
                                                  **login))}
        stamps = {name: Stamps() for name in clients}
        driver = AmiClient(AmiConfig("driver", port=pbx.ami_port, username=DRIVER_USER, secret=DRIVER_SECRET,
                                     events="off"))
        for name, client in clients.items():
            client.add_listener(stamps[name])
        for client in (*clients.values(), driver):
            client.start()
        try:
            assert all(c.wait_connected(10) for c in (*clients.values(), driver))
            started, count = time.monotonic(), int(rate * seconds)
            for seq in range(count):
                delay = started + seq / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                driver.send_action(Action.build("UserEvent", UserEvent="bench", BenchT=f"{time.time():.6f}"))
            time.sleep(2.0)
        finally:
            for client in (*clients.values(), driver):
                client.stop()
    finally:
        pbx.stop()
    out = []
    for name, st in stamps.items():
        lat = sorted(st.lat)
        out.append({"kind": name, "sent": count, "received": len(lat), "p50": _pct(lat, 50), "p99": _pct(lat, 99)})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--poll-seconds", type=float, default=None)
    parser.add_argument("--flood", type=int, default=None)
    parser.add_argument("--asterisk", action="store_true",
                        help="also measure the link alone on the real Asterisk 22 (../shared/asterisk)")
    args = parser.parse_args(argv)
    seconds = args.seconds or (10.0 if args.quick else 30.0)
    poll_seconds = args.poll_seconds or (30.0 if args.quick else 60.0)
    flood = args.flood or (20_000 if args.quick else 100_000)
    print(f"event → ERP latency at {args.rate:g} events/s (simulator emit → sink receipt, whole bridge, SQLite)")
    runs = [latency_run("tcp", args.rate, seconds), latency_run("ajam", args.rate, seconds),
            latency_run("polling", args.rate, poll_seconds)]
    for r in runs:
        print(f"latency {r['kind']:<8} p50 {r['p50']:,.1f} ms  p99 {r['p99']:,.1f} ms  max {r['max']:,.1f} ms  "
              f"({r['received']} of {r['sent']} delivered; emit → bridge read p50 {r['link_p50']:,.1f} ms "
              f"p99 {r['link_p99']:,.1f} ms)")
    print(f"throughput: {flood:,} events emitted back to back, counted at the client's listener")
    for kind in ("tcp", "ajam"):
        r = throughput_run(kind, flood)
        print(f"throughput {kind:<4} {r['rate']:,.0f} events/s  ({r['events']:,} of {flood:,} received; "
              f"simulator emitted at {r['emit_rate']:,.0f}/s)")
    if args.asterisk:
        print(f"real Asterisk 22: UserEvent sent by a driver → read by each client, {args.rate:g}/s")
        for r in asterisk_link_run(args.rate, seconds):
            print(f"asterisk {r['kind']:<6} p50 {r['p50']:,.2f} ms  p99 {r['p99']:,.2f} ms  "
                  f"({r['received']} of {r['sent']} read)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
