"""A circuit breaker per upstream: stop sending turns to a model that keeps failing, probe it again later.

closed --(``failure_threshold`` consecutive failures)--> open --(``reset_after_s``)--> half-open
half-open lets ``half_open_max`` probes through: a success closes it, a failure opens it again.
Pure logic with an injectable clock, so it is unit-tested without sleeping.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class BreakerState(enum.IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass
class CircuitBreaker:
    failure_threshold: int = 3
    reset_after_s: float = 10.0
    half_open_max: int = 1
    clock: Callable[[], float] = time.monotonic
    on_change: Callable[[BreakerState], None] | None = None
    _state: BreakerState = field(default=BreakerState.CLOSED, init=False)
    _failures: int = field(default=0, init=False)
    _opened_at: float = field(default=0.0, init=False)
    _probes: int = field(default=0, init=False)

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self.clock() - self._opened_at >= self.reset_after_s:
            self._set(BreakerState.HALF_OPEN)
            self._probes = 0
        return self._state

    def allow(self) -> bool:
        """May a request go to this upstream now? In half-open, counts the probe it lets through."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and self._probes < self.half_open_max:
            self._probes += 1
            return True
        return False

    def record_success(self) -> None:
        self._failures = 0
        if self._state is not BreakerState.CLOSED:
            self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
            self._opened_at = self.clock()
            self._set(BreakerState.OPEN)

    def release_probe(self) -> None:
        """A half-open probe ended without a verdict (e.g. the client went away): let another one try."""
        if self._state is BreakerState.HALF_OPEN and self._probes > 0:
            self._probes -= 1

    def _set(self, state: BreakerState) -> None:
        if state is not self._state:
            self._state = state
            if self.on_change:
                self.on_change(state)
