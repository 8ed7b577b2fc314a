"""bridge/outbox/circuit.py and how the dispatcher uses it: the state machine on a hand-driven
clock, then the real Dispatcher over real HTTP to FakeErp (circuit, PushEvents batches, a SOAP
Fault on one event)."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from bridge.erp.envelope import BATCH_SOAP_ACTION
from bridge.errors import DeliveryRejected, DeliveryRetryable
from bridge.outbox import admin
from bridge.outbox.circuit import CLOSED, OPEN, PROBE, Circuit, is_transport_failure
from bridge.outbox.models import PENDING
from bridge.testing.fake_erp import OK, UNAVAILABLE
from bridge.testing.helpers import wait_until

from tests.outbox.conftest import by_key, calls_interleaved, order_problems, subscriber
from tests.outbox.test_dispatcher import Bridge as DispatcherBridge


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def refused() -> DeliveryRetryable:
    return DeliveryRetryable("connection failed to 127.0.0.1:9: Connection refused")


@pytest.mark.parametrize("exc,transport", [
    (refused(), True),
    (DeliveryRetryable("timeout after 1 s (read)"), True),
    (DeliveryRetryable("HTTP 500", status_code=500), True),
    (DeliveryRetryable("HTTP 503", status_code=503, retry_after_s=5), True),
    (DeliveryRetryable("HTTP 429", status_code=429), True),
    (DeliveryRetryable("HTTP 408", status_code=408), True),
    (DeliveryRetryable("HTTP 302 redirect", status_code=302), True),
    (DeliveryRetryable("HTTP 200 is not a SOAP envelope", status_code=200), True),
    (DeliveryRetryable("HTTP 413", status_code=413), False),
    (DeliveryRetryable("HTTP 400", status_code=400), False),
    (DeliveryRejected("SOAP Fault", faultcode="soap:Server", faultstring="bad", status_code=500), False),
])
def test_transport_failures_are_told_from_failures_of_one_row(exc, transport):
    assert is_transport_failure(exc) is transport


def test_circuit_opens_after_three_failures_then_admits_one_probe_at_a_time_capped_by_probe_cap():
    clock, changes = Clock(), []
    circuit = Circuit("erp", probe_cap_s=2.0, probe_base_s=0.5, rng=random.Random(1), clock=clock,
                      on_change=changes.append)
    assert circuit.admit() == CLOSED
    assert not circuit.failed(refused()) and not circuit.failed(refused())
    assert circuit.failed(refused())                                   # the third opens it
    assert circuit.is_open and [c.state for c in changes] == [OPEN]
    waits = []
    for _ in range(8):
        assert circuit.admit() is None                                 # the probe is not due yet
        waits.append(circuit.wait_s())
        clock.now += circuit.wait_s()
        assert circuit.admit() == PROBE
        assert circuit.admit() is None                                 # one probe at a time
        assert not circuit.failed(refused(), probe=True)
    assert all(0 < w <= 2.0 for w in waits) and max(waits) > 1.0       # grows, never past probe_cap
    assert circuit.snapshot().probes == 8


def test_retry_after_is_honoured_up_to_probe_cap_and_an_unused_probe_frees_the_gate():
    clock = Clock()
    circuit = Circuit("erp", probe_cap_s=3.0, probe_base_s=0.1, rng=random.Random(2), clock=clock)
    for _ in range(3):
        circuit.failed(DeliveryRetryable("HTTP 503", status_code=503, retry_after_s=3600))
    assert circuit.wait_s() == pytest.approx(3.0)
    clock.now += 3.0
    assert circuit.admit() == PROBE
    circuit.probe_unused()                                             # no row was due
    assert circuit.admit() == PROBE


def test_any_answer_from_the_erp_closes_the_circuit_and_row_failures_reset_the_count():
    clock, changes = Clock(), []
    circuit = Circuit("erp", probe_cap_s=1.0, clock=clock, on_change=changes.append)
    circuit.failed(refused())
    circuit.failed(refused())
    assert not circuit.answered()                                      # e.g. a SOAP Fault: reachable
    circuit.failed(refused())
    circuit.failed(refused())
    assert not circuit.is_open                                         # the count restarted
    circuit.failed(refused())
    assert circuit.is_open
    clock.now += 1.0
    assert circuit.admit() == PROBE
    assert circuit.answered(probe=True)
    assert circuit.admit() == CLOSED and [c.state for c in changes] == [OPEN, CLOSED]
    assert circuit.snapshot().opened_at is None


# --- the real dispatcher ------------------------------------------------------------------------

class Bridge(DispatcherBridge):
    """test_dispatcher's writer + dispatcher, recording the circuit's transitions."""

    def __init__(self, engine, sub, workers=3):
        self.changes = []
        super().__init__(engine, [sub], workers=workers, on_circuit=self.changes.append)


def held_back(engine, sink, events, poison) -> list[dict]:
    """Wait until every call but the poisoned one is delivered and settled; the rows left pending."""
    others = [e for e in events if e.order_key != poison.order_key]
    assert sink.wait_for_ids([e.event_uuid for e in others], 20)
    held = {e.event_uuid for e in events if e.order_key == poison.order_key}
    assert wait_until(lambda: len(admin.list_rows(engine, status=PENDING, limit=100)) == len(held), 10.0)
    rows = admin.list_rows(engine, status=PENDING, limit=100)
    assert {r["event_uuid"] for r in rows} == held
    assert order_problems(sink.receipts, by_key(others)) == []
    return rows


def test_while_the_erp_answers_503_one_probe_at_a_time_then_everything_in_call_order(engine, sink):
    sub = subscriber("erp", sink.url, probe_cap_s=0.2, retry_base_s=0.05, retry_cap_s=60.0)
    events = calls_interleaved(15, 4)
    sink.retry_after_s = 30                  # rows failed before the circuit opened wait 30 s on their own
    with Bridge(engine, sub, workers=4) as b:
        sink.set_mode(UNAVAILABLE)
        b.accept_all(events)
        assert wait_until(lambda: b.dispatcher.circuits["erp"].is_open, 10.0)
        opened = sum(1 for r in sink.receipts if r.answered == UNAVAILABLE)
        sink.max_in_flight = 0
        assert sink.wait_for(lambda s: sum(r.answered == UNAVAILABLE for r in s.receipts) >= opened + 5, 10.0)
        probing_concurrency = sink.max_in_flight
        # Behind the open circuit only the rows that failed before it opened wait on their own
        # backoff (Retry-After 30 s); closing makes them due too, so all arrive well before that.
        now = datetime.now(timezone.utc)
        waiting = [r for r in admin.list_rows(engine, status=PENDING, limit=1000)
                   if r["next_attempt_at"] > now and not r["locked_by"]]
        sink.set_mode(OK)
        assert sink.wait_for_ids([e.event_uuid for e in events], 20)
    assert probing_concurrency == 1
    assert len(waiting) <= 3 + 4 and all(r["attempts"] == 1 for r in waiting), waiting
    assert [c.state for c in b.changes] == [OPEN, CLOSED]
    assert order_problems(sink.receipts, by_key(events)) == []


def test_a_soap_fault_on_one_event_holds_only_its_call_and_leaves_the_circuit_closed(engine, sink):
    sub = subscriber("erp", sink.url, retry_base_s=30.0, retry_cap_s=60.0)
    events = calls_interleaved(6, 3)
    poison = events[1]                                   # call-1's first event
    sink.reject_ids = {poison.event_uuid}
    with Bridge(engine, sub) as b:
        b.accept_all(events)
        rows = held_back(engine, sink, events, poison)
    assert b.changes == [] and not b.dispatcher.circuits["erp"].is_open
    head = next(r for r in rows if r["event_uuid"] == poison.event_uuid)
    assert head["last_error"].startswith("attempt 1 rejected: SOAP Fault")


def test_batched_subscriber_gets_pushevents_one_event_per_call_in_call_order(engine, sink):
    sub = subscriber("erp", sink.url, batch_max=8, batch_linger_s=0.05)
    events = calls_interleaved(12, 5)
    with Bridge(engine, sub, workers=2) as b:
        b.accept_all(events)
        assert sink.wait_for_ids([e.event_uuid for e in events], 20)
    assert order_problems(sink.receipts, by_key(events)) == []
    assert {r.batch for r in sink.receipts} - {1, 2, 3, 4, 5, 6, 7, 8} == set()
    assert max(r.batch for r in sink.receipts) > 1
    assert all(r.headers["SOAPAction"] == f'"{BATCH_SOAP_ACTION}"' for r in sink.receipts)
    keys = {e.event_uuid: e.order_key for e in events}
    requests: dict[tuple, list[str]] = {}
    for r in sink.receipts:
        requests.setdefault((r.peer, r.received_monotonic), []).append(keys[r.id])
    assert all(len(set(call_keys)) == len(call_keys) for call_keys in requests.values())   # one per call


def test_a_fault_on_a_batch_resends_its_events_one_by_one_so_only_the_refused_one_waits(engine, sink):
    sub = subscriber("erp", sink.url, batch_max=20, batch_linger_s=0.2, retry_base_s=30.0, retry_cap_s=60.0)
    events = calls_interleaved(10, 2)
    poison = events[3]
    sink.reject_ids = {poison.event_uuid}
    with Bridge(engine, sub, workers=1) as b:
        b.accept_all(events)
        held_back(engine, sink, events, poison)
    assert b.changes == []
    refused_alone = [r for r in sink.receipts if r.id == poison.event_uuid and r.batch == 1]
    assert refused_alone and all(r.answered != OK for r in refused_alone)
