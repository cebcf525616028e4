"""Group commit of registrations: concurrent ITI-65 bundles registered in one transaction.

Callers `submit` one item (a bundle's entries, sized in documents) and wait; the queue
(onerecord/group_commit.py, its invariant there) hands the items it took to `commit` as one
batch in queue order and answers each caller with its own outcome from the list `commit`
returns: a result, or the exception that refused that bundle alone. If `commit` itself raises,
every caller of the batch receives that exception. So a result is only ever answered once its
registry transaction has committed, and under concurrency the number of registry transactions
(and their round trips and commits) falls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from onerecord.group_commit import GroupCommitQueue

__all__ = ["GroupRegister"]

T = TypeVar("T")
R = TypeVar("R")


class GroupRegister(GroupCommitQueue[T, R]):
    """Queue bundles and register them in batches of at most `max_documents` documents."""

    def __init__(
        self,
        commit: Callable[[Sequence[T]], Awaitable[Sequence[R | Exception]]],
        *,
        max_documents: int = 500,
    ) -> None:
        super().__init__(commit, max_size=max_documents, name="registration group commit")
