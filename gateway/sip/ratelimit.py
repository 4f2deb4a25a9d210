"""Per-source token-bucket rate limiting for the SIP listener, so a flood from one address cannot starve others.

Pure and bounded: no timers, the clock is injected, and at most ``max_sources`` buckets are kept. The least
recently seen key is evicted first; a key idle for ``burst / rate_per_s`` seconds has a full bucket, which is
exactly what a new key gets, so eviction only forgives anyone when more than ``max_sources`` distinct sources
were active within that window.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """``allow(key)`` admits ``burst`` requests at once and ``rate_per_s`` sustained per key; rate <= 0 disables."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        max_sources: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_s > 0 and burst < 1:
            raise ValueError("burst must be at least 1, or no request would ever pass")
        if max_sources < 1:
            raise ValueError("max_sources must be at least 1")
        self.rate_per_s = float(rate_per_s)
        self.burst = burst
        self.max_sources = max_sources
        self.denied_total = 0
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, last refill time)

    @property
    def unlimited(self) -> bool:
        return self.rate_per_s <= 0

    def __len__(self) -> int:
        """Number of keys currently tracked (bounded by ``max_sources``)."""
        return len(self._buckets)

    def allow(self, key: str) -> bool:
        """Take one token from ``key``'s bucket; False (and ``denied_total`` += 1) when it is empty."""
        if self.unlimited:
            return True
        now = self._clock()
        entry = self._buckets.get(key)
        if entry is None:
            tokens, stamp = float(self.burst), now
        else:
            tokens, last = entry
            # A clock stepping backwards must neither mint nor drain tokens: time only counts past the latest stamp.
            stamp = max(last, now)
            tokens = min(float(self.burst), tokens + (stamp - last) * self.rate_per_s)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        else:
            self.denied_total += 1
        self._buckets[key] = (tokens, stamp)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_sources:
            self._buckets.popitem(last=False)
        return allowed
