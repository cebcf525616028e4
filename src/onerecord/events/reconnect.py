"""Keep trying to reach the event bus, waiting longer after each failure (exponential back-off).

Shared by the region's publisher and the hub's locator (`source/locator_link.py`,
`hub/locator_link.py`): a part that started while NATS was down connects when it comes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

__all__ = ["retry_with_backoff"]


async def retry_with_backoff(
    attempt: Callable[[], Awaitable[bool]],
    *,
    first_wait_s: float,
    max_wait_s: float,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Call `attempt` after `first_wait_s`, then after twice as long each time (at most
    `max_wait_s`), until it returns True."""
    wait = first_wait_s
    while True:
        await sleep(wait)
        if await attempt():
            return
        wait = min(wait * 2, max_wait_s)
