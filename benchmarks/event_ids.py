"""Cost of deterministic event ids on the AMI reader thread: Pipeline.on_event with them vs random ids.

Usage: python benchmarks/event_ids.py [--events 200000] [--runs 3]

The same parsed stream as benchmarks/filter.py (calls among noise, 50 regex subscribers) goes
through the real Pipeline (call model, Router) into a sink that only counts; once with the
deterministic ids HA needs (bridge.events.ids: a blake2b per event, an occurrence counter) and
once with the random version-4 ids used before (the baseline). Best of N runs; the ratio is what
HA costs at the reader thread, whose time is what limits ingest.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from filter import parse, stream, subscribers  # noqa: E402

from bridge.calls import CALL_EVENT_NAMES, CallTracker  # noqa: E402
from bridge.events import Pipeline, Router  # noqa: E402
from bridge.events.ids import EventIds  # noqa: E402
from bridge.events.model import new_event_uuid  # noqa: E402


class RandomIds:
    """The baseline: what the pipeline did before HA (a random id per event)."""

    def raw_key(self, server: str, text: str) -> bytes:
        return b""

    @staticmethod
    def spell(_key: bytes) -> str:
        return new_event_uuid()


class CountingSink:
    def __init__(self) -> None:
        self.accepted = 0

    def accept(self, event, subscribers) -> None:
        self.accepted += 1


def run(messages, router, ids) -> tuple[float, int]:
    sink = CountingSink()
    pipeline = Pipeline(CallTracker(), router, sink, ids=ids)
    t0 = time.perf_counter()
    for msg in messages:
        pipeline.on_event("pbx1", msg)
    return time.perf_counter() - t0, sink.accepted


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    messages = list(parse(stream("asterisk20", args.events)))
    router = Router(subscribers(50), needed_events=CALL_EVENT_NAMES)
    best = {}
    for _ in range(args.runs):   # interleaved, so both see the same machine load
        for label, ids in (("random ids (before)", RandomIds), ("deterministic ids", EventIds)):
            seconds, accepted = run(messages, router, ids())
            if label not in best or seconds < best[label][0]:
                best[label] = (seconds, accepted)
    for label, (seconds, accepted) in best.items():
        print(f"{label:22s} {len(messages) / seconds:>10,.0f} events/s  ({seconds:.2f} s, {accepted} accepted)")
    ratio = best["deterministic ids"][0] / best["random ids (before)"][0]
    print(f"deterministic ids cost {ratio:.2f}x the reader thread's pipeline time of random ids")
    return 0


if __name__ == "__main__":
    sys.exit(main())
