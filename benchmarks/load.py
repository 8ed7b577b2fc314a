"""End-to-end load: simulator flood → `python -m bridge run` (child process) → PushEvent sink (child process).

    .venv/bin/python benchmarks/load.py [--loads 200:30,5000:60] [--seconds 60] [--subscribers 20] [--match 0.2]
                                        [--sink-down-seconds 60] [--one-subscriber 1000:30]
                                        [--batched 5000:60 --batch-max 100] [--json FILE]

Three processes, so none shares a GIL with another: this one (AMI simulator + flood generator),
the bridge (the real CLI with a TOML config, SQLite with synchronous=FULL), and the sink
(bridge.testing.fake_erp.FakeErp, HTTP/1.1 keep-alive). 20 subscribers with ROM-style regexes
split the matching share of the stream between them (each matching event goes to exactly one).
Latency is arrival→receipt: the envelope's <time> (set when the bridge read the event off the
AMI socket) to the sink's receipt clock; same host, same wall clock.

Figures per offered load: delivered/s while the flood ran, drain time after it, max outbox
backlog (pending rows, scraped from /metrics every second), p50/p99/p99.9 latency, bridge peak
RSS (VmHWM). `--batched` runs a load again with every subscriber batched (batch_max,
PushEvents), beside the same load unbatched; `--one-subscriber` is the fan-out baseline for
latency. Targets (issue 14): p99 ≤ 250 ms at ~1,000 events/s with 20 subscribers; delivered/s ≥
0.95 × matching/s during a ~5,000 events/s flood with 20 batched subscribers. The sink-down run
keeps the ERP unreachable for the whole run and samples the
bridge's RSS next to the rows piling up on disk: memory must stay flat while the outbox grows.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AMI_SECRET = "load-secret"
SCRAPE_INTERVAL_S = 1.0
DRAIN_TIMEOUT_S = 120.0
_TIME = re.compile(rb"<m:time>([^<]+)</m:time>")


# --- the sink in its own process ---------------------------------------------------------------

def serve_sink(out_path: str) -> int:
    """Child mode: run a FakeErp, print its port, on SIGTERM dump (received_at, arrival) pairs."""
    from bridge.testing.fake_erp import FakeErp

    sink = FakeErp().start()
    print(sink.port, flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        time.sleep(0.1)
    sink.stop()
    pairs = []
    for r in sink.delivered():
        match = _TIME.search(r.body)
        arrival = datetime.fromisoformat(match.group(1).decode().replace("Z", "+00:00")).timestamp()
        pairs.append((r.received_at, arrival, r.id))
    Path(out_path).write_text(json.dumps(pairs))
    return 0


class SinkProcess:
    def __init__(self, tmp: Path) -> None:
        self.out = tmp / "receipts.json"
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve-sink", str(self.out)],
                                     stdout=subprocess.PIPE, text=True, cwd=ROOT)
        self.port = int(self.proc.stdout.readline())

    def receipts(self) -> list[tuple[float, float, str]]:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        return json.loads(self.out.read_text())


# --- the bridge in its own process --------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subscriber_filter(index: int, subscribers: int) -> str:
    """Callers 200…249 (sim_flood) split between subscribers: each matching event goes to one."""
    callers = [str(200 + c) for c in range(50) if c % subscribers == index]
    return f"DialBegin.{{1,}}?CallerIDNum: (?:{'|'.join(callers)})\\r\\n"


BATCH_LINGER = "20ms"


def write_config(tmp: Path, ami_port: int, sink_port: int, metrics_port: int, subscribers: int,
                 batch_max: int = 1) -> Path:
    parts = [f'[database]\nurl = "sqlite:///{tmp / "outbox.db"}"\n',
             f'[[ami]]\nname = "pbx1"\nport = {ami_port}\nusername = "bridge"\nsecret = "${{AMI_SECRET}}"\n',
             f'[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n', '[logging]\nlevel = "WARNING"\n']
    for i in range(subscribers):
        parts.append(f'[[subscriber]]\nname = "erp{i}"\nurl = "http://127.0.0.1:{sink_port}/erp/{i}"\n'
                     f"mode = \"raw\"\nfilter = '{subscriber_filter(i, subscribers)}'\n"
                     + (f'batch_max = {batch_max}\nbatch_linger = "{BATCH_LINGER}"\n' if batch_max > 1 else ""))
    path = tmp / "bridge.toml"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


class BridgeProcess:
    def __init__(self, config: Path, metrics_port: int, log: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
        env["AMI_SECRET"] = AMI_SECRET
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        self.log = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "bridge", "run", "-c", str(config)],
                                     cwd=ROOT, env=env, stdout=self.log, stderr=self.log)

    def status_kb(self, field: str) -> int:
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))

    def scrape(self) -> dict[str, float]:
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return {}
        totals: dict[str, float] = {}
        for line in text.splitlines():
            match = re.match(r"(bridge_\w+)(?:\{[^}]*\})? (\S+)$", line)
            if match:
                totals[match.group(1)] = totals.get(match.group(1), 0.0) + float(match.group(2))
        return totals

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)
        finally:
            self.log.close()


def wait_for(predicate, timeout_s: float, interval_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return False


# --- one run --------------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run_one(rate: float, seconds: float, subscribers: int, match_ratio: float, sink_down: bool = False,
            batch_max: int = 1) -> dict:
    from bridge.testing.simulator import AmiSimulator
    from bridge.outbox.db import upgrade

    with tempfile.TemporaryDirectory() as tmp_name, \
            AmiSimulator("asterisk20", users={"bridge": AMI_SECRET}) as sim:
        tmp = Path(tmp_name)
        upgrade(f"sqlite:///{tmp / 'outbox.db'}")
        sink = None if sink_down else SinkProcess(tmp)
        metrics_port = free_port()
        config = write_config(tmp, sim.port, sink.port if sink else free_port(), metrics_port, subscribers,
                              batch_max)
        bridge = BridgeProcess(config, metrics_port, tmp / "bridge.log")
        try:
            if not sim.wait_logged_in(1, 20.0):
                raise RuntimeError("bridge did not log in: " + (tmp / "bridge.log").read_text()[-2000:])
            return {**measure(sim, bridge, sink, rate, seconds, match_ratio, tmp), "subscribers": subscribers,
                    "batch_max": batch_max}
        finally:
            if bridge.proc.poll() is None:
                bridge.stop()


def measure(sim, bridge: BridgeProcess, sink, rate, seconds, match_ratio, tmp: Path) -> dict:
    count = int(rate * seconds)
    started, wall_start = time.monotonic(), time.time()
    flood = sim.flood(rate, count, match_ratio, block=False, seed=1)
    samples = []                       # (t, pending rows, RSS kB, accepted events)
    while flood.is_alive():
        time.sleep(SCRAPE_INTERVAL_S)
        m = bridge.scrape()
        samples.append((time.monotonic() - started, m.get("bridge_outbox_pending", 0.0),
                        bridge.status_kb("VmRSS"), m.get("bridge_events_accepted_total", 0.0)))
    flood_s, wall_end = time.monotonic() - started, time.time()
    accepted_at_end = bridge.scrape().get("bridge_events_accepted_total", 0.0)
    drain_s = float("nan")
    if sink is not None:
        drained = wait_for(lambda: bridge.scrape().get("bridge_outbox_pending", 1.0) == 0.0, DRAIN_TIMEOUT_S, 0.5)
        drain_s = time.monotonic() - started - flood_s if drained else float("inf")
    final = bridge.scrape()
    peak_rss_kb = bridge.status_kb("VmHWM")
    code = bridge.stop()
    db_bytes = sum(p.stat().st_size for p in tmp.glob("outbox.db*"))
    with sqlite3.connect(tmp / "outbox.db") as conn:
        by_status = dict(conn.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall())
    result = {"offered_per_s": flood.sent / flood_s, "sent": flood.sent, "matched": flood.matched,
              "seconds": flood_s, "accepted": final.get("bridge_events_accepted_total", accepted_at_end),
              "received": final.get("bridge_ami_events_received_total", 0.0),
              "ami_reconnects": final.get("bridge_ami_reconnects_total", 0.0),
              "max_backlog": max((s[1] for s in samples), default=0.0), "peak_rss_mb": peak_rss_kb / 1024,
              "rss_samples_mb": [(round(t, 1), round(kb / 1024, 1), int(p)) for t, p, kb, _ in samples],
              "db_mb": db_bytes / 1e6, "rows_by_status": by_status, "exit_code": code, "sink_down": sink is None,
              "drain_s": drain_s}
    if sink is not None:
        receipts = sink.receipts()
        lat = [(got - arrival) * 1000 for got, arrival, _ in receipts]
        in_flood = sum(1 for got, _, _ in receipts if wall_start <= got <= wall_end)
        result.update({"delivered": len(receipts), "unique_delivered": len({i for _, _, i in receipts}),
                       "p50_ms": percentile(lat, 0.50), "p99_ms": percentile(lat, 0.99),
                       "p999_ms": percentile(lat, 0.999), "max_ms": max(lat, default=float("nan")),
                       "delivered_per_s": in_flood / (wall_end - wall_start)})
    return result


def run(loads=((5000.0, 60.0),), subscribers: int = 20, match_ratio: float = 0.2,
        sink_down_seconds: float = 60.0, sink_down_rate: float = 5000.0,
        one_subscriber: tuple[float, float] | None = None, batched: tuple[float, float] | None = None,
        batch_max: int = 100) -> list[dict]:
    """Every (offered events/s, seconds) load, the same with a single subscriber if asked (the
    baseline that shows what fan-out to many subscribers costs), the batched load if asked (beside
    the same load unbatched, run here too unless among `loads`), then the sink-down run."""
    results = []
    loads = list(loads)
    if batched and all(abs(rate - batched[0]) > 1 for rate, _ in loads):
        loads.append(batched)
    for rate, seconds in loads:
        print(f"load: {rate:,.0f} events/s for {seconds:g} s …", file=sys.stderr, flush=True)
        results.append(run_one(rate, seconds, subscribers, match_ratio))
    if batched:
        rate, seconds = batched
        print(f"load: {rate:,.0f} events/s for {seconds:g} s, batch_max {batch_max} …", file=sys.stderr, flush=True)
        results.append(run_one(rate, seconds, subscribers, match_ratio, batch_max=batch_max))
    if one_subscriber:
        rate, seconds = one_subscriber
        print(f"load: {rate:,.0f} events/s for {seconds:g} s, one subscriber …", file=sys.stderr, flush=True)
        results.append(run_one(rate, seconds, 1, match_ratio))
    if sink_down_seconds > 0:
        print(f"load: sink down, {sink_down_rate:,.0f} events/s for {sink_down_seconds:g} s …",
              file=sys.stderr, flush=True)
        results.append(run_one(sink_down_rate, sink_down_seconds, subscribers, match_ratio, sink_down=True))
    return results


def parse_loads(spec: str, default_seconds: float) -> list[tuple[float, float]]:
    """"200:30,5000:60" → [(200.0, 30.0), (5000.0, 60.0)]; a bare rate runs default_seconds."""
    loads = []
    for item in spec.split(","):
        rate, _, seconds = item.partition(":")
        loads.append((float(rate), float(seconds) if seconds else default_seconds))
    return loads


def print_results(results: list[dict]) -> None:
    one = [r for r in results if r["subscribers"] == 1 and not r["sink_down"]]
    for r in results:
        batched = f", batch_max {r['batch_max']}" if r.get("batch_max", 1) > 1 else ""
        head = (f"offered {r['offered_per_s']:7,.0f}/s for {r['seconds']:.0f} s, {r['subscribers']} subscriber(s)"
                f"{batched}: "
                f"received {r['received']:,.0f}, "
                f"accepted {r['accepted']:,.0f} (matched sent {r['matched']:,}), max backlog {r['max_backlog']:,.0f} "
                f"rows, peak RSS {r['peak_rss_mb']:.0f} MB, AMI reconnects {r['ami_reconnects']:.0f}")
        if r["sink_down"]:
            rss = r["rss_samples_mb"]
            print(f"[sink down] {head}; outbox on disk {r['db_mb']:.1f} MB; RSS over the run "
                  + ", ".join(f"{t:g}s:{mb:g}MB/{p}rows" for t, mb, p in rss[:: max(1, len(rss) // 6)]))
        else:
            matching = r["matched"] / r["seconds"]
            print(f"{head}; delivered {r['delivered']:,} at {r['delivered_per_s']:,.0f}/s, drain {r['drain_s']:.1f} s; "
                  f"latency p50 {r['p50_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms p99.9 {r['p999_ms']:.1f} ms")
            base = min(one, key=lambda u: abs(u["offered_per_s"] - r["offered_per_s"]), default=None)
            print(f"    delivered/s {r['delivered_per_s']:,.0f} vs matching/s {matching:,.0f}: "
                  f"{r['delivered_per_s'] / matching if matching else float('nan'):.3f}x"
                  + (f"; p99 {r['p99_ms']:.1f} ms vs {base['p99_ms']:.1f} ms with 1 subscriber at "
                     f"{base['offered_per_s']:,.0f}/s: {r['p99_ms'] / base['p99_ms']:.2f}x"
                     if base and base is not r and base["p99_ms"] else ""))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve-sink", metavar="OUT", help=argparse.SUPPRESS)
    parser.add_argument("--loads", default="5000", help="comma-separated offered loads, events/s, each "
                        "optionally :seconds (e.g. 200:30,5000:60)")
    parser.add_argument("--seconds", type=float, default=60.0, help="for loads given without :seconds")
    parser.add_argument("--subscribers", type=int, default=20)
    parser.add_argument("--match", type=float, default=0.2)
    parser.add_argument("--sink-down-seconds", type=float, default=60.0, help="0 skips the sink-down run")
    parser.add_argument("--one-subscriber", metavar="RATE:SECONDS",
                        help="also run this load with a single subscriber (same-run fan-out baseline)")
    parser.add_argument("--batched", metavar="RATE:SECONDS",
                        help="also run this load with every subscriber batched (PushEvents), beside it unbatched")
    parser.add_argument("--batch-max", type=int, default=100, help="batch_max of the --batched run")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--json-stdout", action="store_true", help="also print one LOAD-JSON line (run.py)")
    args = parser.parse_args(argv)
    if args.serve_sink:
        return serve_sink(args.serve_sink)
    one = parse_loads(args.one_subscriber, args.seconds)[0] if args.one_subscriber else None
    batched = parse_loads(args.batched, args.seconds)[0] if args.batched else None
    results = run(parse_loads(args.loads, args.seconds), args.subscribers, args.match, args.sink_down_seconds,
                  one_subscriber=one, batched=batched, batch_max=args.batch_max)
    print_results(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.json_stdout:
        print("LOAD-JSON " + json.dumps(results), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
