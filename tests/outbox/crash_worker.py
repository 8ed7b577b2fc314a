"""A bridge process for the crash test: floods the outbox with call events and delivers them to a sink.

usage: crash_worker.py DB_URL SINK_URL RUN [--drain]
Ingest mode never exits by itself (the test SIGKILLs it); --drain ingests nothing and exits 0 once
no row is pending. Calls `call-0` … continue across runs, so one call's events span crashes.
"""

from __future__ import annotations

import sys
import time

from bridge.config import SubscriberConfig
from bridge.events.model import RAW, BridgeEvent
from bridge.erp.envelope import build_envelope
from bridge.erp.transport import ErpTransport
from bridge.outbox import admin, db
from bridge.outbox.dispatcher import Dispatcher
from bridge.outbox.ingest import OutboxWriter

CALLS = 40
EVENTS_PER_S = 400
DRAIN_TIMEOUT_S = 60.0


def main(argv: list[str]) -> int:
    db_url, sink_url, run = argv[1], argv[2], int(argv[3])
    drain = "--drain" in argv
    engine = db.make_engine(db_url)
    db.check_schema(engine)
    sub = SubscriberConfig(name="erp", url=sink_url, connect_timeout_s=1.0, read_timeout_s=2.0,
                           retry_base_s=0.01, retry_cap_s=0.1)
    dispatcher = Dispatcher(engine, [sub], transport_factory=ErpTransport, workers=2, poll_interval_s=0.05)
    writer = OutboxWriter(engine, envelope_builder=build_envelope,
                          on_commit=lambda events, rows, subs: dispatcher.notify())
    dispatcher.start()
    writer.start()
    print("ready", flush=True)
    if drain:
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            if sum(r["pending"] for r in admin.stats(engine)) == 0:
                dispatcher.stop(5)
                return 0
            time.sleep(0.05)
        return 1
    n = 0
    started = time.monotonic()
    while True:
        call = n % CALLS
        headers = (("Event", "Newstate"), ("Linkedid", f"call-{call}"), ("Run", str(run)), ("N", str(n)))
        writer.accept(BridgeEvent(server="pbx1", name="Newstate", kind=RAW, headers=headers, text="",
                                  order_key=f"call-{call}"), ["erp"])
        n += 1
        ahead = n / EVENTS_PER_S - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
