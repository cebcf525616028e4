"""Group commit: concurrent callers' submissions written in one transaction, each answered after it.

Callers `submit` an item (with its size) and wait. One writer task takes what is queued (whole
items, up to `max_size` in total, at least one item), hands them to `commit` as one batch in
queue order, and answers each caller with its own outcome from the list `commit` returns: a
result, or the exception that refused that item alone. If `commit` itself raises, every caller
of the batch receives that exception. While a batch is being committed, new items queue for the
next one; so a caller alone commits at once, and under concurrency the number of transactions
falls.

Invariant: `submit` returns only after the `commit` call that held its item has returned, so a
result is only ever answered once its transaction has committed; each item not withdrawn is in
exactly one `commit` call, and batches run one at a time in the order they were taken. A caller
cancelled while its item is still queued withdraws it (a request cut off by its deadline is not
recorded as answered); once its batch is being committed, the item is written with it, as a
transaction cancelled at COMMIT may still have committed.

The writer task exists only while something is queued, so there is nothing to start and nothing
left running when idle; `wait_idle` waits for the batch in flight (at shutdown).

Used by the audit's appends (`audit/group_commit.py`, one outcome for the whole batch) and the
registry's registrations (`source/group_register.py`, an outcome per bundle).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["GroupCommitQueue"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False, slots=True)
class _Pending(Generic[T, R]):
    """One caller's item, its size, and the future it waits on (compared by identity)."""

    item: T
    size: int
    waiter: asyncio.Future[R]


class GroupCommitQueue(Generic[T, R]):
    """Queue items and commit them in batches, one batch at a time, one outcome per item."""

    def __init__(
        self,
        commit: Callable[[Sequence[T]], Awaitable[Sequence[R | Exception]]],
        *,
        max_size: int = 500,
        name: str = "group commit",
    ) -> None:
        if max_size < 1:
            raise ValueError("a batch must be allowed a size of at least 1")
        self._commit = commit
        self.max_size = max_size
        self._name = name
        self._queue: deque[_Pending[T, R]] = deque()
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: T, *, size: int = 1) -> R:
        """Queue `item` and return its result once its batch has committed (or raise)."""
        loop = asyncio.get_running_loop()
        pending: _Pending[T, R] = _Pending(item, size, loop.create_future())
        self._queue.append(pending)
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._drain(), name=self._name)
        try:
            return await pending.waiter
        except asyncio.CancelledError:
            if pending in self._queue:  # not yet taken: withdrawn
                self._queue.remove(pending)
            raise

    async def wait_idle(self) -> None:
        """Wait until everything queued so far is committed or failed."""
        while self._writer is not None and not self._writer.done():
            await asyncio.wait([self._writer])

    def _take(self) -> list[_Pending[T, R]]:
        batch = [self._queue.popleft()]
        size = batch[0].size
        while self._queue and size + self._queue[0].size <= self.max_size:
            size += self._queue[0].size
            batch.append(self._queue.popleft())
        return batch

    async def _drain(self) -> None:
        while self._queue:
            batch = self._take()
            try:
                outcomes = await self._commit([p.item for p in batch])
                if len(outcomes) != len(batch):
                    raise RuntimeError("the group commit answered for a different batch")
            except Exception as exc:
                for p in batch:
                    if not p.waiter.done():
                        p.waiter.set_exception(exc)
                continue
            except BaseException:
                # The writer itself is cancelled (the loop is closing): nobody's item is known
                # to be durable, so nobody is answered as if it were.
                for p in [*batch, *self._queue]:
                    p.waiter.cancel()
                self._queue.clear()
                raise
            for p, outcome in zip(batch, outcomes, strict=True):
                if p.waiter.done():
                    continue
                if isinstance(outcome, Exception):
                    p.waiter.set_exception(outcome)
                else:
                    p.waiter.set_result(outcome)
