"""Keep trying to reach the event bus, waiting longer after each failure (exponential back-off).

Shared by the region's publisher and the hub's locator (`source/locator_link.py`,
`hub/locator_link.py`): a part that started while NATS was down connects when it comes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

__all__ = ["Reconnecting", "retry_with_backoff"]


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


class Reconnecting:
    """Connect now, or keep trying in the background: the lifecycle both locator links share.

    `attempt(quiet)` connects and returns True once connected (`quiet`: a retry, which logs
    nothing new). `start` tries once; if that fails, a background task retries with back-off
    until one attempt succeeds or `stop` cancels it.
    """

    def __init__(
        self,
        attempt: Callable[[bool], Awaitable[bool]],
        *,
        first_wait_s: float,
        max_wait_s: float,
    ) -> None:
        self._attempt = attempt
        self.first_wait_s = first_wait_s
        self.max_wait_s = max_wait_s
        self._retry: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Try once now; if it fails, keep trying in the background."""
        if not await self._attempt(False):
            self._retry = asyncio.create_task(
                retry_with_backoff(
                    lambda: self._attempt(True),
                    first_wait_s=self.first_wait_s,
                    max_wait_s=self.max_wait_s,
                ),
                name="locator-connect",
            )

    async def stop(self) -> None:
        """Stop trying (a connection already made is the caller's to close)."""
        if self._retry is not None:
            self._retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry
