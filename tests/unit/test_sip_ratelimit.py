"""Per-source SIP rate limiting: token bucket behaviour, key independence, bounded memory and the off switch."""

from __future__ import annotations

import pytest

from gateway.sip.ratelimit import RateLimiter


class FakeClock:
    """Manually advanced clock so refill is exact and the tests never sleep."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_burst_then_deny() -> None:
    clock = FakeClock()
    rl = RateLimiter(rate_per_s=1, burst=5, clock=clock)
    assert [rl.allow("10.0.0.1") for _ in range(5)] == [True] * 5
    assert rl.allow("10.0.0.1") is False
    assert rl.allow("10.0.0.1") is False
    assert rl.denied_total == 2


def test_refill_over_time_and_cap_at_burst() -> None:
    clock = FakeClock()
    rl = RateLimiter(rate_per_s=2, burst=3, clock=clock)
    for _ in range(3):
        assert rl.allow("a")
    assert not rl.allow("a")
    clock.now += 0.25  # half a token
    assert not rl.allow("a")
    clock.now += 0.25  # now one whole token
    assert rl.allow("a")
    assert not rl.allow("a")
    clock.now += 3600  # a long idle refills only up to burst
    assert [rl.allow("a") for _ in range(4)] == [True, True, True, False]


def test_keys_are_independent() -> None:
    clock = FakeClock()
    rl = RateLimiter(rate_per_s=1, burst=2, clock=clock)
    assert rl.allow("flood") and rl.allow("flood")
    assert not any(rl.allow("flood") for _ in range(100))
    assert rl.allow("quiet") and rl.allow("quiet")
    assert rl.denied_total == 100


def test_memory_bounded_lru_eviction() -> None:
    clock = FakeClock()
    rl = RateLimiter(rate_per_s=1, burst=1, max_sources=3, clock=clock)
    for key in ("a", "b", "c"):
        assert rl.allow(key)
    assert not rl.allow("a")  # "a" becomes most recently seen; "b" is now the oldest
    assert rl.allow("d")
    assert len(rl) == 3
    assert rl.allow("b")  # evicted, so it starts over with a full bucket
    assert not rl.allow("a")  # survived eviction, still empty
    for i in range(1000):
        rl.allow(f"10.1.{i // 256}.{i % 256}")
    assert len(rl) == 3


def test_clock_going_backwards_mints_nothing() -> None:
    clock = FakeClock(1000.0)
    rl = RateLimiter(rate_per_s=1, burst=1, clock=clock)
    assert rl.allow("a")
    clock.now = 900.0
    assert not rl.allow("a")
    clock.now = 1000.5
    assert not rl.allow("a")
    clock.now = 1001.0
    assert rl.allow("a")


@pytest.mark.parametrize("rate", [0, -1, 0.0])
def test_unlimited_mode(rate: float) -> None:
    rl = RateLimiter(rate_per_s=rate, burst=0, max_sources=1, clock=FakeClock())
    assert rl.unlimited
    assert all(rl.allow(f"k{i % 3}") for i in range(10_000))
    assert rl.denied_total == 0
    assert len(rl) == 0


def test_rejects_useless_configuration() -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate_per_s=1, burst=0)
    with pytest.raises(ValueError):
        RateLimiter(rate_per_s=1, burst=1, max_sources=0)
