"""bridge/backoff.py: the one backoff value behind AMI reconnects, database waits and delivery retries."""

from __future__ import annotations

import random

import pytest

from bridge.ami.client import AmiClient
from bridge.backoff import Backoff
from bridge.config import AmiConfig, SubscriberConfig
from bridge.outbox import ingest
from bridge.outbox.retry import RetryPolicy


def test_jittered_delay_is_full_jitter_under_the_cap():
    rng, backoff = random.Random(1), Backoff(0.5, 30.0)
    for failures in range(1, 13):
        samples = [backoff.delay_s(failures, rng) for _ in range(200)]
        bound = min(30.0, 0.5 * 2 ** (failures - 1))
        assert all(0.0 <= d <= bound for d in samples)
        assert max(samples) > bound * 0.8 and min(samples) < bound * 0.2  # spread over the whole range


def test_plain_delay_doubles_to_the_cap_when_not_jittered():
    backoff = Backoff(0.1, 5.0, jitter=False)
    assert [round(backoff.delay_s(n), 3) for n in range(1, 9)] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert backoff.delay_s(10_000) == 5.0


def test_jittered_delay_refuses_to_guess_when_no_rng_is_given():
    with pytest.raises(ValueError):
        Backoff(1.0, 2.0).delay_s(1)


def test_backoff_is_frozen():
    with pytest.raises(AttributeError):
        Backoff(1.0, 2.0).base_s = 3.0


def test_every_retry_loop_uses_the_one_backoff():
    cfg = AmiConfig("pbx", reconnect_base_s=0.25, reconnect_cap_s=8.0)
    assert AmiClient(cfg).reconnect == Backoff(0.25, 8.0, jitter=True)
    assert ingest.DB_RETRY == Backoff(0.1, 5.0, jitter=False)
    sub = SubscriberConfig(name="erp", url="http://127.0.0.1:9/", retry_base_s=2.0, retry_cap_s=30.0)
    assert RetryPolicy.from_subscriber(sub).backoff == Backoff(2.0, 30.0, jitter=True)
