"""Group commit of audit appends: many callers' records written in one transaction.

Callers `submit` a list of records and wait; the queue (onerecord/group_commit.py, its
invariant there) hands the records of every submission it took to `commit` as one flat list in
queue order, and answers every caller of that batch: all succeed once `commit` has returned, or
all receive the exception it raised. A batch holds at most `max_items` records and never splits
a submission.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from onerecord.group_commit import GroupCommitQueue

__all__ = ["GroupCommit"]

T = TypeVar("T")


class GroupCommit(Generic[T]):
    """Queue submissions and commit them in batches, one batch at a time, one outcome each."""

    def __init__(
        self, commit: Callable[[Sequence[T]], Awaitable[None]], *, max_items: int = 500
    ) -> None:
        self._commit = commit
        self._queue: GroupCommitQueue[Sequence[T], None] = GroupCommitQueue(
            self._commit_all, max_size=max_items, name="audit group commit"
        )

    @property
    def max_items(self) -> int:
        return self._queue.max_size

    async def submit(self, items: Sequence[T]) -> None:
        """Queue the items and return once the batch holding them is committed (or raise)."""
        await self._queue.submit(items, size=len(items))

    async def wait_idle(self) -> None:
        """Wait until everything queued so far is committed or failed."""
        await self._queue.wait_idle()

    async def _commit_all(self, batch: Sequence[Sequence[T]]) -> list[None]:
        await self._commit([item for items in batch for item in items])
        return [None] * len(batch)
