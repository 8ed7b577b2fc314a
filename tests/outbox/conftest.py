"""Outbox fixtures: a migrated engine per backend, a live PushEvent sink, event and subscriber makers."""

from __future__ import annotations

import itertools
import logging

import pytest

from bridge.config import SubscriberConfig
from bridge.events.model import NORMALIZED, RAW, BridgeEvent
from bridge.outbox import db
from bridge.testing.fake_erp import FakeErp

_seq = itertools.count(1)


@pytest.fixture
def engine(db_url):
    db.upgrade(db_url)
    eng = db.make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sink():
    with FakeErp() as s:
        yield s


@pytest.fixture(autouse=True)
def _quiet_alembic():
    logging.getLogger("alembic").setLevel(logging.WARNING)


def subscriber(name: str, url: str, **kw) -> SubscriberConfig:
    kw.setdefault("connect_timeout_s", 1.0)
    kw.setdefault("read_timeout_s", 1.0)
    kw.setdefault("retry_base_s", 0.01)
    kw.setdefault("retry_cap_s", 0.05)
    return SubscriberConfig(name=name, url=url, **kw)


def make_event(call: str, step: int, *, server: str = "pbx1", name: str | None = None,
               normalized: bool = False) -> BridgeEvent:
    """Event number `step` of call `call` (order_key = the call's Linkedid)."""
    n = next(_seq)
    headers = (("Event", name or "Newstate"), ("Privilege", "call,all"), ("Channel", f"PJSIP/202-{n:08x}"),
               ("Uniqueid", f"{call}.{step}"), ("Linkedid", call), ("CallerIDName", "Оператор-202"),
               ("Step", str(step)))
    if normalized:
        return BridgeEvent(server=server, name=name or "CallRinging", kind=NORMALIZED, headers=headers,
                           text="", order_key=call,
                           call={"CallId": call, "Extension": "202", "CallerIDNum": "202"})
    return BridgeEvent(server=server, name=name or "Newstate", kind=RAW, headers=headers,
                       text="\r\n".join(f"{k}: {v}" for k, v in headers), order_key=call)


def calls_interleaved(n_calls: int, steps: int, prefix: str = "call") -> list[BridgeEvent]:
    """`steps` events for each of `n_calls` calls, interleaved the way a busy PBX emits them."""
    return [make_event(f"{prefix}-{c}", s) for s in range(steps) for c in range(n_calls)]


def order_problems(receipts, events_by_key: dict[str, list[str]]) -> list[str]:
    """Per-call order, precisely: for each call, its ids sorted by the position of their FIRST
    arrival at the sink (whatever the sink answered) must equal the call's ids in accept order,
    and every id must have been answered with success at least once."""
    first: dict[str, int] = {}
    delivered = set()
    for i, r in enumerate(receipts):
        first.setdefault(r.id, i)
        if r.answered == "ok":
            delivered.add(r.id)
    problems = []
    for key, ids in events_by_key.items():
        missing = [i for i in ids if i not in delivered]
        if missing:
            problems.append(f"{key}: {len(missing)} of {len(ids)} never delivered")
        elif sorted(ids, key=first.__getitem__) != ids:
            problems.append(f"{key}: out of order")
    return problems


def by_key(events) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in events:
        out.setdefault(e.order_key, []).append(e.event_uuid)
    return out
