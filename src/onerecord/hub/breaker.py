"""A circuit breaker per region, as a pure state machine with an injected clock.

    CLOSED --(N consecutive failures)--> OPEN --(cool-down elapsed)--> HALF_OPEN
    HALF_OPEN --(probe succeeds)--> CLOSED;  HALF_OPEN --(probe fails)--> OPEN

While OPEN the hub skips the region at once and reports it unavailable (XCA
XDSUnavailableCommunity, IHE ITI TF-2 3.38.4.1.3) instead of waiting for it to time out again.
Only one probe is let through while HALF_OPEN.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from enum import StrEnum

__all__ = ["BreakerBoard", "BreakerState", "CircuitBreaker"]


class BreakerState(StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half-open"
    OPEN = "open"

    @property
    def metric_value(self) -> int:
        """0 closed, 1 half-open, 2 open: the value exported as a gauge."""
        return _METRIC[self]


_METRIC = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class CircuitBreaker:
    """Count consecutive failures of one region and decide whether to call it."""

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or cooldown_s < 0:
            raise ValueError("failure_threshold must be ≥ 1 and cooldown_s ≥ 0")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        """The state as of now (an OPEN breaker whose cool-down has passed reads HALF_OPEN)."""
        if self._state is BreakerState.OPEN and self._cooled_down():
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def _cooled_down(self) -> bool:
        return self._clock() - self._opened_at >= self.cooldown_s

    def allow(self) -> bool:
        """Return True if a call may go to the region now; a True in HALF_OPEN is the probe."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if not self._cooled_down():
                return False
            self._state = BreakerState.HALF_OPEN
            self._probe_in_flight = False
        if self._probe_in_flight:
            return False
        self._probe_in_flight = True
        return True

    def record_success(self) -> None:
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._probe_in_flight = False

    def record_failure(self) -> None:
        self._failures += 1
        self._probe_in_flight = False
        if self._state is BreakerState.HALF_OPEN or self._failures >= self.failure_threshold:
            self._state = BreakerState.OPEN
            self._opened_at = self._clock()

    def release(self) -> None:
        """Give back a probe slot without a verdict (the call was cancelled)."""
        self._probe_in_flight = False


class BreakerBoard:
    """One breaker per homeCommunityId, created on first use with shared settings."""

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = failure_threshold
        self._cooldown = cooldown_s
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}

    def __getitem__(self, hcid: str) -> CircuitBreaker:
        breaker = self._breakers.get(hcid)
        if breaker is None:
            breaker = self._breakers[hcid] = CircuitBreaker(
                failure_threshold=self._threshold, cooldown_s=self._cooldown, clock=self._clock
            )
        return breaker

    def items(self) -> Iterator[tuple[str, CircuitBreaker]]:
        return iter(list(self._breakers.items()))
