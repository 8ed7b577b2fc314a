"""bridge/outbox/retry.py: backoff numbers, caps, max_age and max_attempts, without sleeping."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from random import Random

from bridge.config import SubscriberConfig
from bridge.outbox.retry import RetryPolicy

T0 = datetime(2026, 11, 27, tzinfo=timezone.utc)


def test_ceilings_double_from_one_second_to_ten_minutes_when_defaults():
    p = RetryPolicy()
    assert [p.ceiling_s(n) for n in range(1, 13)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]
    assert p.ceiling_s(10_000) == 600


def test_delay_is_full_jitter_within_ceiling_when_sampled():
    p, rng = RetryPolicy(), Random(7)
    delays = [p.delay_s(5, rng) for _ in range(2000)]
    assert 0 <= min(delays) < 0.5 and 15.5 < max(delays) <= 16
    assert 7 < sum(delays) / len(delays) < 9          # uniform on [0, 16]: mean 8


def test_retry_after_wins_when_larger_than_jitter():
    p = RetryPolicy()
    assert p.delay_s(1, Random(1), retry_after_s=120) == 120
    at = p.next_attempt_at(1, T0, T0, Random(1), retry_after_s=120)
    assert at == T0 + timedelta(seconds=120)


def test_gives_up_when_next_attempt_would_pass_max_age():
    p = RetryPolicy(max_age_s=3600)
    created = T0
    assert p.next_attempt_at(3, created, created + timedelta(seconds=60), Random(1)) is not None
    for seed in range(50):   # whatever the jitter, an attempt is never scheduled past max_age
        at = p.next_attempt_at(30, created, created + timedelta(seconds=3500), Random(seed))
        assert at is None or at <= created + timedelta(seconds=3600)
    assert p.next_attempt_at(30, created, created + timedelta(seconds=3601), Random(3)) is None


def test_gives_up_when_max_attempts_reached():
    p = RetryPolicy(max_attempts=3)
    assert p.next_attempt_at(2, T0, T0, Random(1)) is not None
    assert p.next_attempt_at(3, T0, T0, Random(1)) is None


def test_weekend_outage_keeps_retrying_when_defaults():
    p, rng = RetryPolicy(), Random(42)
    now, attempt = T0, 0
    while True:
        attempt += 1
        at = p.next_attempt_at(attempt, T0, now, rng)
        if at is None:
            break
        assert (at - now).total_seconds() <= 600
        now = at
    assert (now - T0) > timedelta(hours=71)        # retried until the 72 h max_age, then dead
    assert 700 < attempt < 1100                     # the docstring's ≈ 870


def test_policy_follows_subscriber_config():
    cfg = SubscriberConfig(name="erp", url="http://x", retry_base_s=2, retry_cap_s=30, max_age_s=60,
                           max_attempts=4)
    assert RetryPolicy.from_subscriber(cfg) == RetryPolicy(2, 30, 60, 4)
