"""Backlog drain: deliveries/s of the real Dispatcher emptying 1k, 10k and 100k pending rows.

    .venv/bin/python benchmarks/drain.py [--quick] [--sizes 1000,10000,100000] [--shapes a,b]
        [--db sqlite,postgresql] [--pg URL] [--workers 2] [--batch-max N]

Issue 14: the claim must not slow down with the backlog. Each run fills a fresh database with
pending rows through queries.insert_batch (the ingest's own insert, in bulk: the AMI path is not
what is measured), then starts the Dispatcher against a keep-alive sink in another process (so it
does not share our GIL) and times it until every row is delivered. Shapes, per call interleaved
the way a PBX emits them: (a) 5,000 calls × 20 events at 100k, (b) 50 calls × 2,000 events at
100k; smaller backlogs keep the number of calls and shorten the chains. Peer, same run, same
sink: a bare `requests.post` loop on as many threads as the dispatcher has workers, no database.
Targets: ≥ 1,000 deliveries/s single-event on SQLite and PostgreSQL; the 100k rate ≥ 0.8 × the 1k
rate; with --batch-max 100 (subscriber batch_max), ≥ 10,000 events/s.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402  (the peer's bare POST loop)

from bridge.config import SubscriberConfig  # noqa: E402
from bridge.erp.envelope import build_envelope  # noqa: E402
from bridge.erp.transport import ErpTransport  # noqa: E402
from bridge.events.model import RAW, BridgeEvent  # noqa: E402
from bridge.outbox import admin, db, queries  # noqa: E402
from bridge.outbox.dispatcher import Dispatcher  # noqa: E402

SHAPES = {"a": 5000, "b": 50}          # calls per backlog (chains), at every size
FILL_CHUNK_ROWS = 5000                  # rows per fill transaction
PEER_SECONDS = 3.0
OK_BODY = (b'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope '
           b'xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
           b'<m:%sResponse xmlns:m="urn:asterisk-bridge:events"><m:return>true</m:return>'
           b'</m:%sResponse></soap:Body></soap:Envelope>')


# --- the sink: a minimal HTTP/1.1 keep-alive server, one thread per connection -------------------

def serve_sink() -> None:
    """`drain.py --sink`: print the URL, answer every POST with a valid PushEvent(s) response."""
    server = socket.create_server(("127.0.0.1", 0))
    print(f"http://127.0.0.1:{server.getsockname()[1]}/erp", flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()  # parent gone
    while True:
        conn, _ = server.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_serve_connection, args=(conn,), daemon=True).start()


def _serve_connection(conn: socket.socket) -> None:
    buf = b""
    answers = {op: b"HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s"
               % (len(OK_BODY % (op, op)), OK_BODY % (op, op)) for op in (b"PushEvent", b"PushEvents")}
    with conn:
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, buf = buf.split(b"\r\n\r\n", 1)
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buf) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            body, buf = buf[:length], buf[length:]
            conn.sendall(answers[b"PushEvents" if b"PushEvents" in body[:2000] else b"PushEvent"])


def start_sink() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, __file__, "--sink"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    return proc, proc.stdout.readline().strip()


# --- the backlog ---------------------------------------------------------------------------------

def template_payload() -> tuple[str, str]:
    """One real PushEvent envelope and the id inside it: each row gets it with its own id."""
    headers = (("Event", "Newstate"), ("Privilege", "call,all"), ("Channel", "PJSIP/202-00000001"),
               ("ChannelState", "5"), ("ChannelStateDesc", "Ringing"), ("CallerIDNum", "202"),
               ("CallerIDName", "Оператор-202"), ("ConnectedLineNum", "902"), ("Exten", "902"),
               ("Context", "from-internal"), ("Uniqueid", "1764000000.1"), ("Linkedid", "1764000000.1"))
    event = BridgeEvent(server="pbx1", name="Newstate", kind=RAW, headers=headers, text="",
                        order_key="1764000000.1")
    return build_envelope(event), event.event_uuid


def fill(engine, n: int, calls: int, subscribers: list[str]) -> float:
    """Insert `n` pending rows: min(calls, n) calls, their events interleaved, each event to every
    subscriber (n / len(subscribers) events); returns seconds taken."""
    payload, template_id = template_payload()
    calls = min(calls, n)
    now = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    chunk: list[dict] = []
    events = n // len(subscribers)
    for i in range(events):
        step, call = divmod(i, calls)
        uuid = f"{call:08d}-0000-4000-8000-{step:012d}"
        chunk.extend({"event_uuid": uuid, "subscriber": subscriber, "server": "pbx1", "event_name": "Newstate",
                      "order_key": f"1764000000.{call}", "payload": payload.replace(template_id, uuid),
                      "status": "pending", "attempts": 0, "next_attempt_at": now, "event_time": now,
                      "created_at": now, "last_error": None} for subscriber in subscribers)
        if len(chunk) >= FILL_CHUNK_ROWS or i == events - 1:
            with engine.begin() as conn:
                queries.insert_batch(conn, chunk)
            chunk = []
    return time.perf_counter() - t0


def fresh_db(kind: str, pg_url: str | None, tmp: str, name: str) -> str:
    if kind == "sqlite":
        url = f"sqlite:///{tmp}/{name}.db"
    else:
        import psycopg

        dbname = f"bridge_drain_{os.getpid()}_{name}"
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
            conn.execute(f'CREATE DATABASE "{dbname}"')
        CREATED_PG.append(dbname)
        url = pg_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + "/" + dbname
    db.upgrade(url)
    return url


CREATED_PG: list[str] = []


def drop_pg(pg_url: str) -> None:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        for dbname in CREATED_PG:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


# --- the measurements ----------------------------------------------------------------------------

@dataclasses.dataclass
class Drained:
    rate: float                 # deliveries (events) per second, start to empty
    cpu_ms: float               # this process's CPU time per delivery (dispatcher threads; the sink is elsewhere)
    transactions: int           # dispatcher write transactions (claims and settles, shared or not)


def drain(url: str, n: int, sink_url: str, workers: int, batch_max: int | None, subscribers: int = 1,
          shared: bool = True) -> Drained:
    """The real Dispatcher from start until nothing is pending. `shared=False` turns off the
    sharing of write transactions between workers (WriteTurns), for the fan-out comparison."""
    engine = db.make_engine(url)
    subs = [SubscriberConfig(name=name, url=sink_url) for name in subscriber_names(subscribers)]
    if batch_max is not None:
        subs = [dataclasses.replace(sub, batch_max=batch_max) for sub in subs]
    done, count, lock = threading.Event(), [0], threading.Lock()

    def delivered(_row, _latency_s):
        with lock:
            count[0] += 1
            if count[0] >= n:
                done.set()

    dispatcher = Dispatcher(engine, subs, workers=workers, transport_factory=ErpTransport, on_delivered=delivered)
    dispatcher.turns.shared = shared and dispatcher.turns.shared
    t0, cpu0 = time.perf_counter(), time.process_time()
    dispatcher.start()
    done.wait(3600)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    dispatcher.stop(10)
    left = sum(r["pending"] for r in admin.stats(engine))
    engine.dispose()
    if left or count[0] < n:
        raise SystemExit(f"drain incomplete: {count[0]} of {n} delivered, {left} pending")
    return Drained(n / seconds, cpu * 1000 / n, dispatcher.turns.transactions)


def subscriber_names(count: int) -> list[str]:
    return ["erp"] if count == 1 else [f"erp{i:02d}" for i in range(count)]


def peer_rate(sink_url: str, threads: int) -> tuple[float, float]:
    """A bare keep-alive requests.post loop of one envelope on `threads` threads, no database:
    requests/s and CPU ms per request."""
    body = template_payload()[0].encode()
    total = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + PEER_SECONDS

    def loop():
        session, sent = requests.Session(), 0
        while time.perf_counter() < stop_at:
            session.post(sink_url, data=body, headers={"Content-Type": "text/xml; charset=utf-8"},
                         timeout=5).raise_for_status()
            sent += 1
        with lock:
            total[0] += sent

    t0, cpu0 = time.perf_counter(), time.process_time()
    pool = [threading.Thread(target=loop) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return total[0] / (time.perf_counter() - t0), (time.process_time() - cpu0) * 1000 / max(1, total[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--shapes", default="a,b")
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--pg", default=os.environ.get("BRIDGE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"),
                        help="a PostgreSQL server URL whose user may CREATE DATABASE (scratch bridge_drain_* "
                             "databases are created and dropped)")
    parser.add_argument("--workers", type=int, default=2, help="dispatcher workers (and peer threads)")
    parser.add_argument("--batch-max", type=int, help="the subscriber's batch_max (PushEvents batches)")
    parser.add_argument("--fanout", type=int, default=20, metavar="N",
                        help="also drain one backlog fanned out to N subscribers, with and without shared "
                             "write transactions, beside the same events for 1 subscriber (0: skip)")
    parser.add_argument("--fanout-rows", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="backlogs of 1k and 10k only")
    args = parser.parse_args()
    if args.sink:
        serve_sink()
        return 0
    if args.quick:
        args.sizes = "1000,10000"
    if args.batch_max is not None and "batch_max" not in {f.name for f in dataclasses.fields(SubscriberConfig)}:
        parser.error("--batch-max needs subscriber batching (SubscriberConfig.batch_max), not in this version")
    import logging

    logging.basicConfig(level=logging.WARNING)
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = args.db.split(",")
    if "postgresql" in kinds and not pg_reachable(args.pg):
        print(f"postgresql: unreachable at {args.pg}, not measured")
        kinds.remove("postgresql")
    mode = f"batch_max={args.batch_max}" if args.batch_max else "single-event"
    unit = "events/s" if args.batch_max else "deliveries/s"
    proc, sink_url = start_sink()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for kind in kinds:
                for shape in args.shapes.split(","):
                    rates, peers = {}, {}
                    for n in sizes:
                        url = fresh_db(kind, args.pg, tmp, f"{shape}{n}")
                        engine = db.make_engine(url)
                        fill_s = fill(engine, n, SHAPES[shape], ["erp"])
                        engine.dispose()
                        got = drain(url, n, sink_url, args.workers, args.batch_max)
                        rates[n] = got.rate
                        peer, peer_cpu = peer_rate(sink_url, args.workers)
                        peers[n] = peer
                        calls = min(SHAPES[shape], n)
                        print(f"drain {kind:<10} shape {shape} {n:>7,} rows ({calls:,} calls x {n // calls:,}) "
                              f"{mode}  {got.rate:9,.0f} {unit}   peer requests.post x{args.workers} "
                              f"{peer:7,.0f}/s   ratio {got.rate / peer:5.2f}x   cpu {got.cpu_ms:5.3f} ms/delivery "
                              f"(peer {peer_cpu:5.3f} ms/request)   (fill {fill_s:4.1f} s, "
                              f"{got.transactions:,} transactions)", flush=True)
                    small, big = min(sizes), max(sizes)
                    if big != small:
                        # The peer moves with the machine's load (other jobs on 2 cores): the rate
                        # ratio divided by the peers' ratio is what the backlog's depth costs.
                        steady = (rates[big] / peers[big]) / (rates[small] / peers[small])
                        print(f"scaling {kind:<10} shape {shape} {big:,} rows at {rates[big] / rates[small]:4.2f}x "
                              f"the {small:,}-row rate   target >= 0.80x   (peer-normalised {steady:4.2f}x)",
                              flush=True)
                if args.fanout > 1:
                    fanout(kind, args, tmp, sink_url)
    finally:
        proc.stdin.close()
        proc.wait(5)
        if CREATED_PG:
            drop_pg(args.pg)
    return 0


def fanout(kind: str, args, tmp: str, sink_url: str) -> None:
    """Item 4: the same events for 1 subscriber, then fanned out to N, with and without shared
    write transactions: database work (transactions, CPU) per delivery must not grow N-fold."""
    n, subs = args.fanout_rows, args.fanout
    runs = {}
    for label, count, shared in (("1 subscriber", 1, True), ("unshared", subs, False), ("shared", subs, True)):
        rows = n // subs if count == 1 else n
        url = fresh_db(kind, args.pg, tmp, f"fan{count}{label[0]}")
        engine = db.make_engine(url)
        fill(engine, rows, SHAPES["a"], subscriber_names(count))
        engine.dispose()
        runs[label] = got = drain(url, rows, sink_url, args.workers, args.batch_max, count, shared)
        print(f"fanout {kind:<10} {label:<12} {count:>2} subscriber(s) {rows:>7,} rows  {got.rate:9,.0f} deliveries/s  "
              f"cpu {got.cpu_ms:5.3f} ms/delivery  {got.transactions:,} write transactions "
              f"({got.transactions / rows:5.3f}/delivery)", flush=True)
    one, off, on = runs["1 subscriber"], runs["unshared"], runs["shared"]
    print(f"fanout {kind:<10} {subs} subscribers shared: {on.rate:,.0f} deliveries/s = {on.rate / off.rate:4.2f}x "
          f"unshared, {on.rate / one.rate:4.2f}x one subscriber; transactions/delivery {on.transactions / n:5.3f} "
          f"vs unshared {off.transactions / n:5.3f}", flush=True)


def pg_reachable(url: str) -> bool:
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=3).close()
        return True
    except psycopg.OperationalError:
        return False


if __name__ == "__main__":
    sys.exit(main())
