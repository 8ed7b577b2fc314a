"""Filtering cost: parse + filter with 50 subscribers, each with its own regex, on a 200k-event stream.

Usage: python benchmarks/filter.py [--events 200000] [--profile asterisk11] [--runs 3] [--subscribers 50]

The stream mixes whole calls from bridge.testing.scenarios (callees 901…950, so every subscriber
has traffic) with the simulator's flood noise (Newexten, VarSet, DeviceStateChange; UTF-8 and
cp1251 caller names). Subscribers use ROM-Asterisk-style regexes, one extension each
(`Dial.{1,}?Begin.{1,}?9NN|Bridge.{1,}?9NN|Hangup.{1,}?9NN`) plus a few other shapes.

Same run, same bytes, best of N, one core:
  parse only            AmiParser alone (the ceiling for anything that parses)
  parse + naive filter  every subscriber's SubscriberFilter.matches on every event (50 searches)
  parse + Router        Router.route: cached name plan + one literal-prefilter pass
  parse + Router + call model   the pipeline's work minus the sink
Both filter paths must deliver the same (event, subscriber) pairs, or the script fails.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bridge.ami.message import Message  # noqa: E402
from bridge.ami.protocol import AmiParser  # noqa: E402
from bridge.testing.scenarios import call_events  # noqa: E402
from bridge.testing.sim_flood import noise_event  # noqa: E402
from bridge.testing.sim_session import encode_message  # noqa: E402
from bridge.calls import CALL_EVENT_NAMES, CallTracker  # noqa: E402
from bridge.config import SubscriberConfig  # noqa: E402
from bridge.events import Router  # noqa: E402
from bridge.events.pipeline import _RawView  # noqa: E402

CHUNK_BYTES = 64 * 1024
BANNER = b"Asterisk Call Manager/1.3\r\n"
CALL_SHARE = 0.02   # a call (7–34 events) this often, else one noise event: ~25 % call events
SCENARIO_MIX = ("answered", "answered", "noanswer", "busy", "queue", "blind-transfer", "caller-hangup-ringing")


def subscribers(count: int) -> list[SubscriberConfig]:
    subs = []
    for i in range(count):
        ext = str(901 + i % 50)
        shape = i % 10
        if shape < 7:
            pattern = f"Dial.{{1,}}?Begin.{{1,}}?{ext}|Bridge.{{1,}}?{ext}|Hangup.{{1,}}?{ext}"
        elif shape == 7:
            pattern = f"Dial.*?(Destination|DestChannel): [A-Z]+/{ext}-"
        elif shape == 8:
            pattern = f"Event: Hangup\r\n.*?{ext}"
        else:
            pattern = f"SIP/{ext}-"
        subs.append(SubscriberConfig(f"erp{i:02d}", "http://erp.example/ws", mode="raw", filter=pattern))
    return subs


def stream(profile: str, total: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    out = [BANNER]
    produced = seq = noise_n = 0
    while produced < total:
        if rng.random() < CALL_SHARE:
            seq += 1
            steps = call_events(profile, rng.choice(SCENARIO_MIX), seq=seq % 30000, time_scale=0,
                                caller=str(200 + seq % 60), callee=str(901 + seq % 50),
                                start=1764230000 + seq // 30000)
            for step in steps[: total - produced]:
                out.append(encode_message(step.headers))
            produced += min(len(steps), total - produced)
        else:
            noise_n += 1
            out.append(encode_message(noise_event(profile, noise_n, rng)))
            produced += 1
    return b"".join(out)


def parse(data: bytes):
    parser = AmiParser()
    for start in range(0, len(data), CHUNK_BYTES):
        parser.feed(data[start:start + CHUNK_BYTES])
        for msg in parser:
            if isinstance(msg, Message):
                yield msg


def run_parse(data: bytes, _router, _filters) -> tuple[int, int]:
    n = 0
    for _ in parse(data):
        n += 1
    return n, 0


def run_naive(data: bytes, _router, filters) -> tuple[int, int]:
    n = hits = 0
    for msg in parse(data):
        n += 1
        view = _RawView(msg)
        hits += sum(1 for f in filters if f.matches(view))
    return n, hits


def run_router(data: bytes, router, _filters) -> tuple[int, int]:
    n = hits = 0
    route = router.route
    for msg in parse(data):
        n += 1
        hits += len(route(_RawView(msg)))
    return n, hits


def run_pipeline(data: bytes, router, _filters) -> tuple[int, int]:
    n = hits = 0
    route = router.route
    tracker = CallTracker()
    for msg in parse(data):
        n += 1
        hits += len(route(_RawView(msg)))
        for event in tracker.feed("pbx1", msg):
            hits += len(route(event))
        if n % 20000 == 0:
            tracker.expire()
    return n, hits


def best(fn, data, router, filters, runs: int) -> tuple[float, int, int]:
    times, result = [], (0, 0)
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn(data, router, filters)
        times.append(time.perf_counter() - t0)
    return min(times), result[0], result[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--profile", default="asterisk11", choices=("asterisk11", "asterisk20"))
    ap.add_argument("--subscribers", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)

    data = stream(args.profile, args.events)
    router = Router(subscribers(args.subscribers), needed_events=CALL_EVENT_NAMES)
    filters = router.filters
    print(f"stream: {args.events} events, {len(data) / 1e6:.1f} MB, profile {args.profile}; "
          f"{args.subscribers} subscribers, {sum(1 for f in filters if f.literal)} with a prefilter literal")
    rows = [("parse only", run_parse), ("parse + naive filter", run_naive),
            ("parse + Router", run_router), ("parse + Router + call model", run_pipeline)]
    results = {}
    for label, fn in rows:
        seconds, n, hits = best(fn, data, router, filters, args.runs)
        results[label] = (seconds, n, hits)
        print(f"{label:30s} {n / seconds:>10,.0f} events/s  ({seconds:.2f} s, {hits} deliveries)")
    parse_s = results["parse only"][0]
    naive_s, _, naive_hits = results["parse + naive filter"]
    router_s, _, router_hits = results["parse + Router"]
    if naive_hits != router_hits:
        print(f"MISMATCH: naive delivered {naive_hits}, Router {router_hits}")
        return 1
    filter_only = max(router_s - parse_s, 1e-9)
    print(f"Router vs naive (parse+filter): {naive_s / router_s:.1f}x faster; "
          f"Router at {router_s / parse_s:.2f}x the parse-only time; "
          f"filtering alone {args.events / filter_only:,.0f} events/s "
          f"vs naive {args.events / max(naive_s - parse_s, 1e-9):,.0f} events/s")
    target = 100_000
    rate = args.events / router_s
    print(f"target parse+filter >= {target:,} events/s: {'met' if rate >= target else 'NOT met'} ({rate:,.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
