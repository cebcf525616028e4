"""The circuit breaker state machine, driven by a manual clock."""

from __future__ import annotations

import pytest

from onerecord.hub.breaker import BreakerBoard, BreakerState, CircuitBreaker
from tests.hub.conftest import ManualClock


def make(clock: ManualClock, threshold: int = 3, cooldown: float = 10.0) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=threshold, cooldown_s=cooldown, clock=clock)


def test_opens_after_n_consecutive_failures() -> None:
    breaker = make(ManualClock())
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_success_resets_the_count() -> None:
    breaker = make(ManualClock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.consecutive_failures == 2


def test_half_open_lets_exactly_one_probe_through_after_cooldown() -> None:
    clock = ManualClock()
    breaker = make(clock, threshold=1, cooldown=10.0)
    breaker.record_failure()
    clock.advance(9.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow(), "a second caller must not probe while one probe is in flight"


def test_probe_success_closes() -> None:
    clock = ManualClock()
    breaker = make(clock, threshold=1)
    breaker.record_failure()
    clock.advance(10)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow() and breaker.allow()


def test_probe_failure_reopens_for_a_new_cooldown() -> None:
    clock = ManualClock()
    breaker = make(clock, threshold=3)
    for _ in range(3):
        breaker.record_failure()
    clock.advance(10)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.advance(5)
    assert not breaker.allow()
    clock.advance(5)
    assert breaker.allow()


def test_released_probe_can_be_retaken() -> None:
    clock = ManualClock()
    breaker = make(clock, threshold=1)
    breaker.record_failure()
    clock.advance(10)
    assert breaker.allow()
    breaker.release()
    assert breaker.allow()


@pytest.mark.parametrize(
    ("state", "value"),
    [(BreakerState.CLOSED, 0), (BreakerState.HALF_OPEN, 1), (BreakerState.OPEN, 2)],
)
def test_metric_values(state: BreakerState, value: int) -> None:
    assert state.metric_value == value


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)


def test_board_keeps_one_breaker_per_community() -> None:
    board = BreakerBoard(failure_threshold=1, clock=ManualClock())
    board["urn:oid:1.2"].record_failure()
    assert board["urn:oid:1.2"].state is BreakerState.OPEN
    assert board["urn:oid:1.3"].state is BreakerState.CLOSED
    assert sorted(h for h, _ in board.items()) == ["urn:oid:1.2", "urn:oid:1.3"]
