"""Chaos: a long ERP outage under steady traffic, then recovery (issue 14, circuit breaker).

The real Runtime (AMI simulator stream → pipeline → SQLite outbox → dispatcher) delivers over real
HTTP to FakeErp, which first refuses connections (its port is closed), then accepts but never
answers (timeouts), then answers 503 with Retry-After, each for a third of the outage. Then it
recovers. What must hold:
- while the ERP is down, the subscriber's circuit is open: /healthz says "degraded" with the
  reason, /metrics has bridge_subscriber_circuit_open 1, `outbox stats` counts rows held back as
  unreachable, and requests go out one at a time (probes);
- after the recovery, the first delivery arrives within probe_cap + 1 s, then the whole backlog
  arrives, per call in order, nothing lost (the audit);
- a SOAP Fault on one event at recovery holds back only that event's call and does not open the
  circuit again.
Short in `make test` (an 8 s outage); BRIDGE_CHAOS_FULL=1 (`make chaos`) runs 60 s at twice the rate.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from bridge.config import MetricsConfig
from bridge.testing import fake_erp as sink_modes
from bridge.testing.helpers import wait_until
from tests.chaos.audit import audit, outbox_rows
from tests.chaos.rig import DRAIN_TIMEOUT_S, Rig, scale

PROBE_CAP_S = 1.0
BATCHING = [("single", {}), ("batched", {"batch_max": 50, "batch_linger_s": 0.02})]


class OutageRig(Rig):
    """The chaos rig with /metrics and /healthz on a free loopback port."""

    def config(self):
        from dataclasses import replace

        return replace(super().config(), metrics=MetricsConfig(listen="127.0.0.1:0"))

    def get(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.runtime.health_server.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


def outbox_stats(db_url: str) -> dict:
    from bridge.outbox import admin
    from bridge.outbox.db import make_engine

    engine = make_engine(db_url)
    try:
        return next(r for r in admin.stats(engine) if r["subscriber"] == "erp")
    finally:
        engine.dispose()


def undelivered(db_url: str, poisoned: set[str]) -> str:
    left = [r for r in outbox_rows(db_url) if r["status"] != "delivered" and r["event_uuid"] not in poisoned]
    sample = [(r["id"], r["status"], r["attempts"], str(r["next_attempt_at"]), r["locked_by"], r["last_error"])
              for r in left[:5]]
    return f"the backlog of the other calls did not drain: {len(left)} rows left, first {sample}"


def circuit_gauge(metrics_text: str) -> str | None:
    line = next((ln for ln in metrics_text.splitlines()
                 if ln.startswith('bridge_subscriber_circuit_open{subscriber="erp"}')), None)
    return line.rsplit(" ", 1)[-1] if line else None


@pytest.mark.parametrize("name,batch_kw", BATCHING, ids=[b[0] for b in BATCHING])
def test_after_an_outage_the_backlog_arrives_in_order_and_the_first_delivery_within_probe_cap(
        tmp_path, name, batch_kw):
    outage_s = scale(8.0, 60.0)
    sub_kw = {"probe_cap_s": PROBE_CAP_S, "connect_timeout_s": 0.5, "read_timeout_s": 0.5,
              # per-row backoff alone would leave a call's head up to 30 s behind the recovery
              "retry_base_s": 0.5, "retry_cap_s": 30.0, **batch_kw}
    with OutageRig(tmp_path, f"sqlite:///{tmp_path / 'outbox.db'}", rate_per_s=scale(500, 1000),
                   sub_kw=sub_kw) as rig:
        sink = rig.sink
        sink.hang_s, sink.retry_after_s = 2.0, 1
        assert wait_until(lambda: len(sink.delivered()) > 20, 15.0), "nothing delivered before the outage"

        sink.refuse()                                            # 1. connection refused
        assert wait_until(lambda: rig.runtime.dispatcher.circuits["erp"].is_open, 15.0), "circuit never opened"
        time.sleep(outage_s / 3)
        status, health = rig.get("/healthz")
        _, metrics = rig.get("/metrics")
        during = outbox_stats(rig.db_url)
        sink.set_mode(sink_modes.HANG)                           # 2. accepted, never answered: timeouts
        sink.start()
        time.sleep(outage_s / 3)
        sink.set_mode(sink_modes.UNAVAILABLE)                    # 3. 503 with Retry-After
        time.sleep(0.2)                                          # hung handlers of phase 2 return
        sink.max_in_flight = 0
        time.sleep(outage_s / 3)
        probes_at_once = sink.max_in_flight

        # A SOAP Fault for the head of one call with later events waiting.
        pending = [r for r in outbox_rows(rig.db_url) if r["status"] == "pending"]
        by_call: dict[str, list] = {}
        for row in pending:
            by_call.setdefault(row["order_key"], []).append(row)
        poison_call, poison_rows = max(by_call.items(), key=lambda kv: len(kv[1]))
        sink.reject_ids = {poison_rows[0]["event_uuid"]}
        backlog = len(pending)
        before = len(sink.receipts)
        recovered = time.monotonic()
        sink.set_mode(sink_modes.OK)                             # 4. the ERP is back
        assert sink.wait_for(lambda s: any(r.answered == sink_modes.OK for r in s.receipts[before:]), 30.0)
        first = next(r for r in sink.receipts[before:] if r.answered == sink_modes.OK)
        first_delivery_s = first.received_monotonic - recovered
        rig.stream.stop()

        # Everything else drains while the poisoned call waits; the circuit stays closed.
        poisoned = {r["event_uuid"] for r in outbox_rows(rig.db_url) if r["order_key"] == poison_call}
        drained_others = wait_until(lambda: {r["event_uuid"] for r in outbox_rows(rig.db_url)
                                             if r["status"] != "delivered"} <= poisoned, DRAIN_TIMEOUT_S, 0.5)
        assert drained_others, undelivered(rig.db_url, poisoned)
        drained_s = time.monotonic() - recovered
        assert not rig.runtime.dispatcher.circuits["erp"].is_open
        status_after, health_after = rig.get("/healthz")
        _, metrics_after = rig.get("/metrics")
        sink.reject_ids = set()
        drained = rig.drain()
        faults = (f"{outage_s:g}s refused/timeout/503, backlog {backlog}, first delivery {first_delivery_s:.2f}s "
                  f"after recovery, drained in {drained_s:.1f}s, 1 faulty event")
        result = audit(f"outage ({name})", faults, rig.db_url, sink, rig.stream, expect_all_offered=True)
    assert drained, result.problems
    assert result.lost == 0 and not result.problems, result.problems
    assert status == 200 and json.loads(health)["status"] == "degraded", health
    assert "subscriber erp: ERP unreachable" in json.loads(health)["degraded"][0]
    assert circuit_gauge(metrics) == "1.0" and circuit_gauge(metrics_after) == "0.0"
    assert status_after == 200 and json.loads(health_after)["status"] == "ok", health_after
    assert during["pending"] > 0 and during["unreachable"] > 0, during          # `outbox stats` during the outage
    assert probes_at_once == 1
    assert backlog > 100
    assert first_delivery_s <= PROBE_CAP_S + 1.0, faults
    assert any(r.id == poison_rows[0]["event_uuid"] and r.answered == sink_modes.FAULT for r in sink.receipts)
