"""The back-off both locator links use to reach NATS when it comes later."""

from __future__ import annotations

import asyncio

import pytest

from onerecord.events.reconnect import Reconnecting, retry_with_backoff


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


@pytest.mark.anyio
async def test_a_failed_first_attempt_is_retried_in_the_background_until_it_connects() -> None:
    tried: list[bool] = []
    connected = asyncio.Event()

    async def attempt(quiet: bool) -> bool:
        tried.append(quiet)
        if len(tried) == 3:
            connected.set()
            return True
        return False

    link = Reconnecting(attempt, first_wait_s=0.001, max_wait_s=0.002)
    await link.start()
    assert tried == [False]  # start returns after the first try, loud
    await asyncio.wait_for(connected.wait(), 5)
    assert tried == [False, True, True]  # retries are quiet
    await link.stop()


@pytest.mark.anyio
async def test_stop_ends_the_retries() -> None:
    tried: list[bool] = []

    async def attempt(quiet: bool) -> bool:
        tried.append(quiet)
        return False

    link = Reconnecting(attempt, first_wait_s=0.001, max_wait_s=0.001)
    await link.start()
    await asyncio.sleep(0.05)
    await link.stop()
    after_stop = len(tried)
    await asyncio.sleep(0.05)
    assert len(tried) == after_stop > 1
