"""Group commit of registrations: concurrent ITI-65 bundles registered in one transaction.

Callers `submit` one item (a bundle's entries) and wait. One writer task takes what is queued
(up to `max_documents` documents, at least one item), hands the items to `commit` as one batch
in queue order, and answers each caller with its own outcome from the list `commit` returns:
a result, or the exception that refused that item alone. If `commit` itself raises, every
caller of the batch receives that exception. While a batch is being committed, new items queue
for the next one; so a caller alone commits at once, and under concurrency the number of
registry transactions (and their round trips and commits) falls.

Invariant: `submit` returns only after the `commit` call that held its item has returned, so a
result is only ever answered once its transaction has committed; each item not withdrawn is in
exactly one `commit` call, and batches run one at a time in the order they were taken. A caller
cancelled while its item is still queued withdraws it; once its batch is being committed the
item is registered with it (a transaction cancelled at COMMIT may still have committed).

The writer task exists only while something is queued. The pattern is the audit's
(onerecord.audit.group_commit), with an outcome per item instead of one for the batch.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["GroupRegister"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False, slots=True)
class _Pending(Generic[T, R]):
    """One caller's item, its size in documents, and the future it waits on."""

    item: T
    size: int
    waiter: asyncio.Future[R]


class GroupRegister(Generic[T, R]):
    """Queue items and commit them in batches, one batch at a time, one outcome per item."""

    def __init__(
        self,
        commit: Callable[[Sequence[T]], Awaitable[Sequence[R | Exception]]],
        *,
        max_documents: int = 500,
    ) -> None:
        if max_documents < 1:
            raise ValueError("max_documents must be at least 1")
        self._commit = commit
        self.max_documents = max_documents
        self._queue: deque[_Pending[T, R]] = deque()
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, item: T, *, size: int = 1) -> R:
        """Queue `item` and return its result once its batch has committed (or raise)."""
        loop = asyncio.get_running_loop()
        pending: _Pending[T, R] = _Pending(item, size, loop.create_future())
        self._queue.append(pending)
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._drain(), name="registration group commit")
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
        while self._queue and size + self._queue[0].size <= self.max_documents:
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
