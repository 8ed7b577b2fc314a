"""When to try a failed delivery again, and when to give up: a pure, immutable policy over bridge.backoff."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from random import Random

from bridge.backoff import Backoff


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped; dead after `max_age_s` (or `max_attempts`).

    After the n-th failed attempt (n = 1, 2, …) the ceiling is c(n) = min(base_s * 2**(n-1), cap_s)
    and the wait is uniform in [0, c(n)] ("full jitter", so a crowd of retries after an ERP outage
    spreads out instead of arriving in waves). With the defaults base_s=1, cap_s=600 the ceilings
    are 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, then 600, 600 … s. The first ten waits average half
    their ceilings, about 512 s (8.5 min) in total; every later wait averages 300 s, so an ERP down
    for a whole 72 h `max_age_s` weekend sees about 10 + (259,200 - 512) / 300 ≈ 870 attempts per
    row, and at most a 10 min gap after it comes back. A Retry-After from the ERP
    (429/503) replaces the jittered wait when larger, but never exceeds cap_s. The row dies when
    the next attempt would fall after created_at + max_age_s, or when `max_attempts` failures have been counted.
    """

    base_s: float = 1.0
    cap_s: float = 600.0
    max_age_s: float = 72 * 3600.0
    max_attempts: int | None = None

    @classmethod
    def from_subscriber(cls, cfg) -> "RetryPolicy":
        return cls(base_s=cfg.retry_base_s, cap_s=cfg.retry_cap_s, max_age_s=cfg.max_age_s,
                   max_attempts=cfg.max_attempts)

    @property
    def backoff(self) -> Backoff:
        return Backoff(self.base_s, self.cap_s, jitter=True)

    def ceiling_s(self, attempt: int) -> float:
        """The largest wait after failed attempt number `attempt` (1-based)."""
        return self.backoff.ceiling_s(attempt)

    def delay_s(self, attempt: int, rng: Random, retry_after_s: float | None = None) -> float:
        """The jittered wait, or a larger Retry-After clamped to cap_s: a huge Retry-After (a
        maintenance page saying "next year") must neither overflow nor kill the row early."""
        wait = self.backoff.delay_s(attempt, rng)
        if retry_after_s is not None and retry_after_s == retry_after_s:   # not NaN
            wait = max(wait, min(retry_after_s, self.cap_s))
        return wait

    def next_attempt_at(self, attempt: int, created_at: datetime, now: datetime, rng: Random,
                        retry_after_s: float | None = None) -> datetime | None:
        """When to retry after failed attempt `attempt`, or None: give up (the row goes dead)."""
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return None
        at = now + timedelta(seconds=self.delay_s(attempt, rng, retry_after_s))
        if at > created_at + timedelta(seconds=self.max_age_s):
            return None
        return at
