"""Group commit: many callers' appends written in one transaction, each caller answered after it.

Callers `submit` a list of items and wait. One writer task per `GroupCommit` takes what is
queued (whole submissions, up to `max_items` items, at least one submission), hands them to
`commit` as one batch in queue order, then answers every caller of that batch: all succeed
once `commit` has returned, or all receive the exception it raised. While a batch is being
committed, new submissions queue for the next one; so a caller alone commits at once, and
under concurrency the number of transactions falls.

Invariant: a caller's `submit` returns only after the `commit` call that contained its items
has returned, and raises if that call raised; each submission not withdrawn is in exactly one
`commit` call, whole, and batches are committed one at a time in the order they were taken. A caller
cancelled while its items are still queued withdraws them (a request cut off by its deadline is
not recorded as answered); once their batch is being committed, they are written with it, as a
transaction cancelled at COMMIT may still have committed.

The writer task exists only while something is queued, so there is nothing to start and
nothing left running when idle; `wait_idle` waits for the batch in flight (at shutdown).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

T = TypeVar("T")


@dataclass(eq=False, slots=True)
class _Submission(Generic[T]):
    """One caller's items and the future it waits on (compared by identity)."""

    items: Sequence[T]
    waiter: asyncio.Future[None]


class GroupCommit(Generic[T]):
    """Queue submissions and commit them in batches, one batch at a time."""

    def __init__(
        self, commit: Callable[[Sequence[T]], Awaitable[None]], *, max_items: int = 500
    ) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self._commit = commit
        self.max_items = max_items
        self._queue: deque[_Submission[T]] = deque()
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, items: Sequence[T]) -> None:
        """Queue the items and return once the batch holding them is committed (or raise)."""
        loop = asyncio.get_running_loop()
        submission = _Submission(items, loop.create_future())
        self._queue.append(submission)
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._drain(), name="audit group commit")
        try:
            await submission.waiter
        except asyncio.CancelledError:
            if submission in self._queue:  # not yet taken: withdrawn
                self._queue.remove(submission)
            raise

    async def wait_idle(self) -> None:
        """Wait until everything queued so far is committed or failed."""
        while self._writer is not None and not self._writer.done():
            await asyncio.wait([self._writer])

    def _take(self) -> list[_Submission[T]]:
        batch = [self._queue.popleft()]
        size = len(batch[0].items)
        while self._queue and size + len(self._queue[0].items) <= self.max_items:
            size += len(self._queue[0].items)
            batch.append(self._queue.popleft())
        return batch

    async def _drain(self) -> None:
        while self._queue:
            batch = self._take()
            try:
                await self._commit([item for s in batch for item in s.items])
            except Exception as exc:
                for s in batch:
                    if not s.waiter.done():
                        s.waiter.set_exception(exc)
                continue
            except BaseException:
                # The writer itself is cancelled (the loop is closing): nobody's batch is known
                # to be durable, so nobody is answered as if it were.
                for s in [*batch, *self._queue]:
                    s.waiter.cancel()
                self._queue.clear()
                raise
            for s in batch:
                if not s.waiter.done():
                    s.waiter.set_result(None)
