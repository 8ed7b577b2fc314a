"""What fencing costs PostgreSQL ingest: the OutboxWriter with the HA commit guard vs without.

Usage: python benchmarks/ha_ingest.py [--pg URL] [--events 30000] [--runs 2]

The guard re-reads this node's lease rows (SELECT … FOR SHARE) inside every insert transaction,
one round trip per committed batch. Both variants insert the same events into a fresh database of
the same server in the same run (interleaved); the figure is events committed per second.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402

from bridge.erp.envelope import build_envelope  # noqa: E402
from bridge.events.model import RAW, BridgeEvent  # noqa: E402
from bridge.ha import lease  # noqa: E402
from bridge.outbox.db import make_engine, upgrade  # noqa: E402
from bridge.outbox.ingest import OutboxWriter  # noqa: E402

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def events(n: int) -> list[BridgeEvent]:
    out = []
    for i in range(n):
        headers = (("Event", "Newstate"), ("Privilege", "call,all"), ("Uniqueid", f"1.{i}"),
                   ("Linkedid", f"1.{i // 10}"), ("CallerIDName", "Оператор-202"))
        out.append(BridgeEvent(server="pbx1", name="Newstate", kind=RAW, headers=headers,
                               text="\r\n".join(f"{k}: {v}" for k, v in headers), order_key=f"1.{i // 10}"))
    return out


def run(admin: str, batch: list[BridgeEvent], guarded: bool) -> float:
    name = f"bench_ha_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + "/" + name
    try:
        upgrade(url)
        engine = make_engine(url)
        guard = None
        if guarded:
            with engine.begin() as conn:
                held = {"pbx1": lease.acquire(conn, "pbx1", "bench", 600.0)}
            guard = lambda conn, servers: lease.guard(conn, "bench", held, servers)  # noqa: E731
        writer = OutboxWriter(engine, envelope_builder=build_envelope, commit_guard=guard)
        writer.start()
        t0 = time.perf_counter()
        for event in batch:
            writer.accept(event, ["erp"])
        writer.stop(flush=True, timeout_s=None)
        seconds = time.perf_counter() - t0
        engine.dispose()
        assert writer.stats.committed == len(batch)
        return len(batch) / seconds
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg", default=ADMIN_URL)
    ap.add_argument("--events", type=int, default=30_000)
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args(argv)
    batch = events(args.events)
    best = {False: 0.0, True: 0.0}
    for _ in range(args.runs):
        for guarded in (False, True):
            best[guarded] = max(best[guarded], run(args.pg, batch, guarded))
    print(f"PostgreSQL ingest without guard {best[False]:>10,.0f} events/s")
    print(f"PostgreSQL ingest with HA guard {best[True]:>10,.0f} events/s")
    print(f"fenced ingest at {best[True] / best[False]:.2f}x the unfenced rate (best of {args.runs}, same run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
