"""One dispatcher process for the shared-outbox test: delivers until a line arrives on stdin.

usage: dispatch_worker.py DB_URL SINK_URL    prints "ready", then "delivered N" when told to stop.
"""

from __future__ import annotations

import sys
import threading

from bridge.config import SubscriberConfig
from bridge.erp.transport import ErpTransport
from bridge.outbox import db
from bridge.outbox.dispatcher import Dispatcher


def main(argv: list[str]) -> int:
    engine = db.make_engine(argv[1])
    db.check_schema(engine)
    sub = SubscriberConfig(name="erp", url=argv[2], connect_timeout_s=1.0, read_timeout_s=5.0)
    count, lock = [0], threading.Lock()

    def delivered(row, latency_s):
        with lock:
            count[0] += 1

    dispatcher = Dispatcher(engine, [sub], transport_factory=ErpTransport, workers=2, poll_interval_s=0.02,
                            on_delivered=delivered, batch_rows=20)
    dispatcher.start()
    print("ready", flush=True)
    sys.stdin.readline()
    dispatcher.stop(10)
    print(f"delivered {count[0]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
