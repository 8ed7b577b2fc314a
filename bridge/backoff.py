"""Backoff: how long to wait after the n-th failure in a row; one frozen value for every retry loop.

Used by the AMI reconnects (bridge.ami.client), the outbox writer's database waits
(bridge.outbox.ingest) and delivery retries (bridge.outbox.retry.RetryPolicy). It only computes;
the caller sleeps (or schedules), so tests check the numbers without waiting.
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random

_MAX_EXPONENT = 64   # 2**64 s is far past any cap; avoids building huge integers


@dataclass(frozen=True)
class Backoff:
    """Ceiling after failure n (1-based): c(n) = min(base_s * 2**(n-1), cap_s); base 0.5, cap 30:
    0.5, 1, 2, 4, 8, 16, 30, 30 … s. With `jitter` (full jitter) the wait is uniform in [0, c(n)],
    so a crowd of clients retrying after one outage spreads out instead of arriving in waves;
    without it the wait is c(n) itself (a single writer waiting for its own database)."""

    base_s: float
    cap_s: float
    jitter: bool = True

    def ceiling_s(self, failures: int) -> float:
        exponent = min(max(failures, 1) - 1, _MAX_EXPONENT)
        return min(self.base_s * (2.0 ** exponent), self.cap_s)

    def delay_s(self, failures: int, rng: Random | None = None) -> float:
        """The wait after `failures` failures in a row; `rng` is required when jittered."""
        ceiling = self.ceiling_s(failures)
        if not self.jitter:
            return ceiling
        if rng is None:
            raise ValueError("a jittered Backoff needs a random.Random")
        return rng.uniform(0.0, ceiling)
