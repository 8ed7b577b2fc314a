"""Outbox figures: ingest events/s, deliveries/s, arrival→sink latency; each next to a same-run baseline.

    .venv/bin/python benchmarks/outbox.py [--pg URL] [--events 50000] [--quick]

Targets (issue 4, this 2-core machine): ingest ≥ 20,000 events/s on SQLite with synchronous
(FULL) commits; ≥ 1,000 deliveries/s to a local keep-alive sink; p99 ≤ 100 ms from an event's
arrival to the sink's receipt at 200 events/s. The sink runs in a separate process for the
throughput figure (so it does not share our GIL) and in-process for the latency figure (to read
its receipt clock; 200 requests/s barely touch it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402  (the baseline's bare POST loop)

from bridge.config import SubscriberConfig  # noqa: E402
from bridge.events.model import RAW, BridgeEvent  # noqa: E402
from bridge.erp.transport import ErpTransport  # noqa: E402
from bridge.outbox import admin, db, queries  # noqa: E402
from bridge.outbox.dispatcher import Dispatcher  # noqa: E402
from bridge.erp.envelope import build_envelope  # noqa: E402
from bridge.outbox.ingest import OutboxWriter, outbox_rows  # noqa: E402
from bridge.testing.fake_erp import FakeErp  # noqa: E402


def event(i: int, calls: int = 500) -> BridgeEvent:
    call = f"1764000000.{i % calls}"
    headers = (("Event", "Newstate"), ("Privilege", "call,all"), ("Channel", f"PJSIP/202-{i:08x}"),
               ("ChannelState", "5"), ("ChannelStateDesc", "Ringing"), ("CallerIDNum", "202"),
               ("CallerIDName", "Оператор-202"), ("ConnectedLineNum", "902"), ("Exten", "902"),
               ("Context", "from-internal"), ("Uniqueid", f"{call}{i}"), ("Linkedid", call))
    return BridgeEvent(server="pbx1", name="Newstate", kind=RAW, headers=headers, text="", order_key=call,
                       received_monotonic=time.monotonic())


def fresh_db(url: str | None, tmp: str, name: str) -> str:
    """A new empty database: a SQLite file in `tmp`, or a new PostgreSQL database next to `url`."""
    if url is None:
        url = f"sqlite:///{tmp}/{name}.db"
    else:
        import psycopg

        dbname = f"bridge_bench_{os.getpid()}_{name}"
        admin_url = url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
            conn.execute(f'CREATE DATABASE "{dbname}"')
        CREATED_PG.append((admin_url, dbname))
        url = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + "/" + dbname
    db.upgrade(url)
    return url


CREATED_PG: list[tuple[str, str]] = []


def drop_pg_databases() -> None:
    import psycopg

    for admin_url, dbname in CREATED_PG:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def bench_ingest(url: str, n: int) -> tuple[float, float]:
    engine = db.make_engine(url)
    events = [event(i) for i in range(n)]
    writer = OutboxWriter(engine, envelope_builder=build_envelope, queue_max_events=n + 1)
    writer.start()
    t0 = time.perf_counter()
    for e in events:
        writer.accept(e, ["erp"])
    writer.stop(flush=True, timeout_s=300)
    ours = writer.stats.committed / (time.perf_counter() - t0)
    # Baseline: what a naive bridge does, one transaction (one fsync) per event.
    base_n = max(500, n // 25)
    t0 = time.perf_counter()
    now = datetime.now(timezone.utc)
    for e in [event(i) for i in range(base_n)]:
        with engine.begin() as conn:
            queries.insert_batch(conn, outbox_rows(e, ["naive"], build_envelope(e), now))
    naive = base_n / (time.perf_counter() - t0)
    engine.dispose()
    return ours, naive


def start_sink_process() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "bridge.testing.fake_erp", "--quiet"], stdout=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
    return proc, proc.stdout.readline().strip()


def bench_delivery(url: str, n: int, workers: int) -> tuple[float, float]:
    proc, sink_url = start_sink_process()
    try:
        engine = db.make_engine(url)
        now = datetime.now(timezone.utc)
        with engine.begin() as conn:
            queries.insert_batch(conn, [r for e in (event(i, calls=2000) for i in range(n))
                                        for r in outbox_rows(e, ["erp"], build_envelope(e), now)])
        sub = SubscriberConfig(name="erp", url=sink_url)
        done = threading.Event()
        count = [0]

        def delivered(row, latency_s):
            count[0] += 1
            if count[0] >= n:
                done.set()

        dispatcher = Dispatcher(engine, [sub], transport_factory=ErpTransport, workers=workers, on_delivered=delivered)
        t0 = time.perf_counter()
        dispatcher.start()
        done.wait(600)
        ours = count[0] / (time.perf_counter() - t0)
        dispatcher.stop(5)
        assert sum(r["pending"] for r in admin.stats(engine)) == 0
        # Baseline: a bare keep-alive requests.post loop of the same envelope, no database at all.
        body = build_envelope(event(0)).encode()
        session = requests.Session()
        base_n = max(500, n // 5)
        t0 = time.perf_counter()
        for _ in range(base_n):
            session.post(sink_url, data=body, headers={"Content-Type": "text/xml"}, timeout=5).raise_for_status()
        bare = base_n / (time.perf_counter() - t0)
        engine.dispose()
        return ours, bare
    finally:
        proc.terminate()
        proc.wait(5)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def bench_latency(url: str, rate: float, seconds: float) -> tuple[list[float], list[float]]:
    engine = db.make_engine(url)
    with FakeErp() as sink:
        sent: dict[str, float] = {}
        sub = SubscriberConfig(name="erp", url=sink.url)
        dispatcher = Dispatcher(engine, [sub], transport_factory=ErpTransport, workers=2)
        writer = OutboxWriter(engine, envelope_builder=build_envelope,
                              on_commit=lambda events, rows, subs: dispatcher.notify())
        dispatcher.start()
        writer.start()
        n = int(rate * seconds)
        t0 = time.monotonic()
        for i in range(n):
            target = t0 + i / rate
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            e = event(i, calls=50)
            sent[e.event_uuid] = e.received_monotonic
            writer.accept(e, ["erp"])
        sink.wait_for(lambda s: len(s.delivered_ids()) >= n, 60)
        writer.stop()
        dispatcher.stop(5)
        ours = [(r.received_monotonic - sent[r.id]) * 1000 for r in sink.delivered() if r.id in sent]
        # Baseline: POST straight from the arrival thread (no durability), same rate and sink.
        sink.receipts.clear()
        session = requests.Session()
        direct: list[float] = []
        t0 = time.monotonic()
        for i in range(n):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            e = event(i)
            session.post(sink.url, data=build_envelope(e).encode(), timeout=5)
            direct.append((sink.receipts[-1].received_monotonic - e.received_monotonic) * 1000)
    engine.dispose()
    return ours, direct


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", metavar="URL", help="also measure PostgreSQL: a server URL whose user may "
                        "CREATE DATABASE (scratch databases bridge_bench_* are created and dropped)")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--latency-seconds", type=float, default=15.0)
    parser.add_argument("--quick", action="store_true", help="small runs (smoke test of the script)")
    args = parser.parse_args()
    if args.quick:
        args.events, args.deliveries, args.latency_seconds = 5000, 1000, 3.0
    import logging

    logging.basicConfig(level=logging.WARNING)
    backends = [("sqlite", None)] + ([("postgresql", args.pg)] if args.pg else [])
    with tempfile.TemporaryDirectory() as tmp:
        try:
            run_all(backends, tmp, args)
        finally:
            drop_pg_databases()
    return 0


def run_all(backends, tmp: str, args) -> None:
    for name, url in backends:
        print(f"== {name} ==")
        ours, naive = bench_ingest(fresh_db(url, tmp, "ingest"), args.events)
        print(f"ingest   {ours:10,.0f} events/s committed (group commit)   baseline one-commit-per-event "
              f"{naive:8,.0f}/s   ratio {ours / naive:6.1f}x   target ≥ 20,000/s")
        ours, bare = bench_delivery(fresh_db(url, tmp, "deliver"), args.deliveries, args.workers)
        print(f"deliver  {ours:10,.0f} deliveries/s (claim+POST+settle)     baseline bare requests.post loop "
              f"{bare:8,.0f}/s   ratio {ours / bare:6.2f}x   target ≥ 1,000/s")
        lat, direct = bench_latency(fresh_db(url, tmp, "latency"), 200.0, args.latency_seconds)
        print(f"latency  p50 {statistics.median(lat):6.1f} ms  p99 {pct(lat, 0.99):6.1f} ms  max {max(lat):6.1f} ms "
              f"at 200 events/s (n={len(lat)})   baseline direct POST p50 {statistics.median(direct):5.1f} ms "
              f"p99 {pct(direct, 0.99):5.1f} ms   p99 ratio {pct(lat, 0.99) / pct(direct, 0.99):5.1f}x   "
              f"target p99 ≤ 100 ms")


if __name__ == "__main__":
    sys.exit(main())
