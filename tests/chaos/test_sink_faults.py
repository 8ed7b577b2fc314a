"""Chaos: the ERP sink is slow, answers 500, answers a SOAP Fault, hangs, or resets the connection."""

from __future__ import annotations

import time

import pytest

from bridge.testing import fake_erp as sink_modes
from tests.chaos.audit import audit
from tests.chaos.rig import Rig, scale

# (sink mode, how it is injected); the AMI link stays up, so every offered matching event must be accepted.
FAULTS = [
    ("slow", None),
    ("500", sink_modes.ERROR_500),
    ("soap fault", sink_modes.FAULT),
    ("hang", sink_modes.HANG),
    ("reset", sink_modes.RESET),
]


# Delivery as PushEvent (one event per request, the default) and as PushEvents batches.
BATCHING = [("single", {}), ("batched", {"batch_max": 20, "batch_linger_s": 0.01})]


@pytest.mark.parametrize("batching,batch_kw", BATCHING, ids=[b[0] for b in BATCHING])
@pytest.mark.parametrize("name,mode", FAULTS, ids=[f[0].replace(" ", "-") for f in FAULTS])
def test_every_accepted_event_delivered_in_order_when_sink_misbehaves(tmp_path, name, mode, batching, batch_kw):
    episodes = scale(2, 6)
    fault_s, healthy_s = scale(1.0, 4.0), scale(0.5, 2.0)
    # A short read timeout makes a hanging ERP cost ~0.5 s per attempt instead of 30 s; a short
    # probe_cap lets the circuit these faults open try again as often as the per-row backoff did.
    sub_kw = {"read_timeout_s": 0.5, "probe_cap_s": 0.5, **batch_kw}
    with Rig(tmp_path, f"sqlite:///{tmp_path / 'outbox.db'}", rate_per_s=scale(500, 1000), sub_kw=sub_kw) as rig:
        rig.sink.hang_s = 2.0
        for _ in range(episodes):
            time.sleep(healthy_s)
            if mode is None:
                rig.sink.delay_s = 0.05                # 50 ms per answer: slower than the offered load
            else:
                rig.sink.set_mode(mode)
            time.sleep(fault_s)
            rig.sink.delay_s = 0.0
            rig.sink.set_mode(sink_modes.OK)
        failed = sum(1 for r in rig.sink.receipts if r.answered != sink_modes.OK)
        drained = rig.drain()
        faults = f"{episodes}x {fault_s:g}s {name}" + (f", {failed} failed POSTs" if mode else "")
        result = audit(f"sink {name} ({batching})", faults, rig.db_url, rig.sink, rig.stream, expect_all_offered=True)
    assert drained, result.problems
    assert result.lost == 0 and not result.problems, result.problems
    assert mode is None or failed > 0, "the fault was never hit"
