"""Where access policy and audit slot into the source's request path.

Every search and retrieve passes a `AccessGuard` before any data leaves and reports to an
`AccessRecorder` afterwards, allowed or denied. Until the trust framework is wired in, the source
runs with `OpenAccess` and `NoAudit` (development only; see docs/trust.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from onerecord.domain import DocumentEntry, DocumentQuery

__all__ = [
    "AccessGuard",
    "AccessRecorder",
    "CallerContext",
    "EntryView",
    "NoAudit",
    "OpenAccess",
    "SearchGrant",
]


@dataclass(frozen=True, slots=True)
class CallerContext:
    """What the edge learned about the caller: filled by authentication, opaque to the store."""

    correlation_id: str
    principal: object | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EntryView:
    """How one entry may be shown: in full, as a masked placeholder, or not at all."""

    entry: DocumentEntry
    masked: bool = False


@dataclass(frozen=True, slots=True)
class SearchGrant:
    """The query as narrowed by policy, and how to show each entry it returns."""

    query: DocumentQuery

    def view(self, entry: DocumentEntry) -> EntryView | None:
        return EntryView(entry)


class AccessGuard(Protocol):
    async def authorize_search(self, caller: CallerContext, query: DocumentQuery) -> SearchGrant:
        """Return the narrowed query or raise a denial."""

    async def authorize_retrieve(self, caller: CallerContext, entry: DocumentEntry) -> None:
        """Return if the caller may read the bytes of `entry`, else raise a denial."""


class AccessRecorder(Protocol):
    async def searched(
        self, caller: CallerContext, query: DocumentQuery, returned: Sequence[EntryView]
    ) -> None: ...

    async def retrieved(self, caller: CallerContext, entry: DocumentEntry) -> None: ...

    async def denied(self, caller: CallerContext, action: str, reason: str) -> None: ...


class OpenAccess:
    """Allows everything: for development and the storage benchmarks only."""

    async def authorize_search(self, caller: CallerContext, query: DocumentQuery) -> SearchGrant:
        return SearchGrant(query)

    async def authorize_retrieve(self, caller: CallerContext, entry: DocumentEntry) -> None:
        return None


class NoAudit:
    """Records nothing."""

    async def searched(
        self, caller: CallerContext, query: DocumentQuery, returned: Sequence[EntryView]
    ) -> None:
        return None

    async def retrieved(self, caller: CallerContext, entry: DocumentEntry) -> None:
        return None

    async def denied(self, caller: CallerContext, action: str, reason: str) -> None:
        return None
