"""The back-off both locator links use to reach NATS when it comes later."""

from __future__ import annotations

import pytest

from onerecord.events.reconnect import retry_with_backoff


@pytest.mark.anyio
async def test_waits_twice_as_long_after_each_failure_up_to_the_limit() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    answers = iter([False, False, False, False, True])

    async def attempt() -> bool:
        return next(answers)

    await retry_with_backoff(attempt, first_wait_s=0.5, max_wait_s=3.0, sleep=sleep)
    assert waits == [0.5, 1.0, 2.0, 3.0, 3.0]
