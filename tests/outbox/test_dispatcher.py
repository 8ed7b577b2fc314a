"""bridge/outbox/dispatcher.py end to end: ingest → outbox → real HTTP sink, outages, dead rows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bridge.erp.envelope import build_envelope
from bridge.erp.transport import ErpTransport
from bridge.outbox import admin
from bridge.outbox.cli import main as outbox_cli
from bridge.outbox.dispatcher import Dispatcher
from bridge.outbox.ingest import OutboxWriter
from bridge.outbox.models import DEAD, DELIVERED, PENDING
from bridge.testing.fake_erp import ERROR_500, FAULT, HANG, OK, THROTTLE, FakeErp
from bridge.testing.helpers import wait_until

from tests.outbox.conftest import by_key, calls_interleaved, make_event, order_problems, subscriber


class Bridge:
    """Writer + dispatcher wired the way runtime.py wires them."""

    def __init__(self, engine, subs, **kw):
        self.delivered = []
        self.dispatcher = Dispatcher(engine, subs, transport_factory=ErpTransport,
                                     on_delivered=lambda row, lat: self.delivered.append(row),
                                     poll_interval_s=0.05, **kw)
        self.writer = OutboxWriter(engine, envelope_builder=build_envelope,
                                   on_commit=lambda events, rows, subs: self.dispatcher.notify())

    def __enter__(self):
        self.dispatcher.start()
        self.writer.start()
        return self

    def __exit__(self, *exc):
        self.writer.stop(flush=True)
        self.dispatcher.stop(5)

    def accept_all(self, events, subs=("erp",)):
        for e in events:
            self.writer.accept(e, list(subs))


def pending(engine):
    return sum(r["pending"] for r in admin.stats(engine))


def test_every_event_is_delivered_in_call_order_when_sink_healthy(engine, sink):
    events = calls_interleaved(20, 8)
    with Bridge(engine, [subscriber("erp", sink.url)], workers=3) as b:
        b.accept_all(events)
        assert sink.wait_for_ids([e.event_uuid for e in events], 20)
    assert order_problems(sink.receipts, by_key(events)) == []
    assert len(sink.receipts) == len(events)                   # happy path: exactly once
    assert pending(engine) == 0 and len(b.delivered) == len(events)


def test_everything_arrives_in_call_order_after_500_then_timeout_then_refused(engine, sink):
    sub = subscriber("erp", sink.url, read_timeout_s=0.2)
    events = calls_interleaved(10, 6)
    with Bridge(engine, [sub], workers=2) as b:
        sink.set_mode(ERROR_500)
        b.accept_all(events[:20])
        assert sink.wait_for(lambda s: sum(r.answered == ERROR_500 for r in s.receipts) >= 10)
        sink.set_mode(HANG)
        b.accept_all(events[20:40])
        assert sink.wait_for(lambda s: any(r.answered == HANG for r in s.receipts))
        sink.refuse()                                           # the ERP's port is closed now
        b.accept_all(events[40:])
        assert wait_until(lambda: any("refused" in (r["last_error"] or "")
                                 for r in admin.list_rows(engine, status=PENDING, limit=1000)), 15.0)
        sink.set_mode(OK)
        sink.start()                                            # same port, back up
        assert sink.wait_for_ids([e.event_uuid for e in events], 30)
        assert wait_until(lambda: pending(engine) == 0, 15.0)
    assert order_problems(sink.receipts, by_key(events)) == []
    assert outbox_stats_json(engine)["erp"]["pending"] == 0


def outbox_stats_json(engine):
    return {r["subscriber"]: r for r in admin.stats(engine)}




def test_row_goes_dead_past_max_attempts_and_retry_dead_delivers_it(db_url, engine, sink, capsys):
    sub = subscriber("erp", sink.url, max_attempts=2)
    victim, other = make_event("A", 0), make_event("B", 0)
    with Bridge(engine, [sub]) as b:
        sink.set_mode(FAULT)
        b.accept_all([victim])
        assert wait_until(lambda: outbox_stats_json(engine).get("erp", {}).get(DEAD) == 1, 15.0)
        sink.set_mode(OK)
        b.accept_all([other])
        assert sink.wait_for_ids([other.event_uuid])
        (row,) = admin.list_rows(engine, status=DEAD)
        assert row["attempts"] == 2 and "SOAP Fault" in row["last_error"]
        assert outbox_cli(["outbox", "retry", "--dead", "--database-url", db_url]) == 0
        assert "1 row(s) back to pending" in capsys.readouterr().out
        assert sink.wait_for_ids([victim.event_uuid])
        assert wait_until(lambda: outbox_stats_json(engine)["erp"][DELIVERED] == 2, 15.0)
    assert pending(engine) == 0


def test_slow_subscriber_does_not_delay_another(engine):
    with FakeErp(hang_s=10) as slow, FakeErp() as fast:
        slow.set_mode(HANG)
        subs = [subscriber("slow", slow.url, read_timeout_s=5), subscriber("fast", fast.url)]
        events = calls_interleaved(30, 2)
        with Bridge(engine, subs, workers=2) as b:
            b.accept_all(events, subs=("slow", "fast"))
            assert fast.wait_for_ids([e.event_uuid for e in events], 10)
            assert len(slow.receipts) <= 2               # its two workers are stuck in a POST each
            slow.set_mode(OK)
            assert slow.wait_for_ids([e.event_uuid for e in events], 20)


def test_retry_after_is_honoured_when_sink_throttles(engine, sink):
    sink.retry_after_s = 120
    sink.set_mode(THROTTLE)
    before = datetime.now(timezone.utc)
    # Retry-After is honoured up to retry_cap (a larger one is clamped to it: see hostile tests).
    with Bridge(engine, [subscriber("erp", sink.url, retry_cap_s=600)]) as b:
        b.accept_all([make_event("A", 0)])
        assert wait_until(lambda: (admin.list_rows(engine) or [{}])[0].get("attempts") == 1, 15.0)
    (row,) = admin.list_rows(engine)
    assert row["next_attempt_at"] >= before + timedelta(seconds=119)
    assert "HTTP 429" in row["last_error"] and len(sink.receipts) == 1


def test_stop_lets_in_flight_delivery_finish(engine):
    with FakeErp(delay_s=0.5) as slow:
        b = Bridge(engine, [subscriber("erp", slow.url)])
        b.__enter__()
        b.accept_all([make_event("A", 0)])
        assert slow.wait_for(lambda s: len(s.receipts) == 1)   # the POST is in flight now
        b.dispatcher.stop(timeout_s=5)
        b.writer.stop()
        assert outbox_stats_json(engine)["erp"][DELIVERED] == 1


@pytest.mark.parametrize("secret", ["whsec_c2VjcmV0LWtleQ=="])
def test_redelivery_reuses_id_and_signs_when_secret(engine, sink, secret):
    from bridge.erp import signing

    sink.set_mode(ERROR_500)
    e = make_event("A", 0)
    with Bridge(engine, [subscriber("erp", sink.url, signing_secret=secret)]) as b:
        b.accept_all([e])
        assert sink.wait_for(lambda s: len(s.receipts) >= 2)
        sink.set_mode(OK)
        assert sink.wait_for_ids([e.event_uuid])
    ids = {r.headers["webhook-id"] for r in sink.receipts} | {r.id for r in sink.receipts}
    assert ids == {e.event_uuid}
    for r in sink.receipts:
        assert signing.verify(secret, e.event_uuid, int(r.headers["webhook-timestamp"]), r.body,
                              r.headers["webhook-signature"])
