"""Paging over a stable snapshot of a merged result.

The first page of a hub search stores the whole merged, sorted result, each Bundle entry already
serialised, under a random id. `next` links carry `_snapshot=<id>&_offset=<n>`: a cursor into
that stored list, never a re-query, so a client paging through the result sees every document
exactly once even when regions change meanwhile. A snapshot belongs to the caller who made it
(a hash of the caller's identity is stored with it).

References: FHIR R4 §3.1.1.6 (paging: `next` links are opaque to the client); IPF "eager"
caching of the full result (ANCHORS §1.3); HAPI FHIR #7220 (search expiring mid-paging → tell
the client to search again).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from onerecord.hub.errors import SnapshotExpired, SnapshotNotFound

__all__ = [
    "InMemorySnapshotStore",
    "Snapshot",
    "SnapshotStore",
    "caller_hash",
    "new_snapshot_id",
    "open_snapshot",
]


def caller_hash(identity: str) -> str:
    """Return the SHA-256 hex of a caller identity; the identity itself is never stored."""
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()


def new_snapshot_id() -> str:
    """Return an unguessable snapshot id (128 bits, URL-safe)."""
    return secrets.token_urlsafe(16)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A merged search result ready to be cut into pages."""

    id: str
    caller: str
    entries: tuple[bytes, ...]
    outcome: bytes | None
    masked_count: int
    query: str

    @property
    def size_bytes(self) -> int:
        return sum(len(e) for e in self.entries) + len(self.outcome or b"") + len(self.query)

    @property
    def total(self) -> int:
        return len(self.entries)

    def page(self, offset: int, count: int) -> Sequence[bytes]:
        return self.entries[offset : offset + count]


class SnapshotStore(Protocol):
    """Where snapshots live between pages: in memory now, Redis when the hub scales out."""

    async def put(self, snapshot: Snapshot) -> bool:
        """Store a snapshot; return False if it is too large to keep."""

    async def get(self, snapshot_id: str) -> Snapshot | None:
        """Return the snapshot, or None when it expired or never existed."""


class InMemorySnapshotStore:
    """An LRU of snapshots bounded in bytes, each living `ttl_s` seconds from creation."""

    def __init__(
        self,
        *,
        max_bytes: int = 256 * 1024 * 1024,
        ttl_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self._clock = clock
        self._items: OrderedDict[str, Snapshot] = OrderedDict()
        self._born: dict[str, float] = {}
        self._bytes = 0

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def _drop(self, snapshot_id: str) -> None:
        gone = self._items.pop(snapshot_id)
        del self._born[snapshot_id]
        self._bytes -= gone.size_bytes

    def _expire(self) -> None:
        """Drop the snapshots whose time is up: the oldest first, stopping at the first alive.

        `_born` is in creation order (a get reorders only `_items`), so this costs the number
        of expired snapshots, not the number kept (every search stores one).
        """
        now = self._clock()
        expired: list[str] = []
        for sid, born in self._born.items():
            if now - born < self.ttl_s:
                break
            expired.append(sid)
        for sid in expired:
            self._drop(sid)

    async def put(self, snapshot: Snapshot) -> bool:
        size = snapshot.size_bytes
        if size > self.max_bytes:
            return False
        self._expire()
        while self._items and self._bytes + size > self.max_bytes:
            self._drop(next(iter(self._items)))
        if snapshot.id in self._items:
            self._drop(snapshot.id)  # stored again: born again, at the end of `_born`
        self._items[snapshot.id] = snapshot
        self._born[snapshot.id] = self._clock()
        self._bytes += size
        return True

    async def get(self, snapshot_id: str) -> Snapshot | None:
        snapshot = self._items.get(snapshot_id)
        if snapshot is None:
            return None
        if self._clock() - self._born[snapshot_id] >= self.ttl_s:
            self._drop(snapshot_id)
            return None
        self._items.move_to_end(snapshot_id)
        return snapshot


async def open_snapshot(store: SnapshotStore, snapshot_id: str, caller: str) -> Snapshot:
    """Return the caller's snapshot; 410 when it is gone, 404 when it belongs to someone else."""
    snapshot = await store.get(snapshot_id)
    if snapshot is None:
        raise SnapshotExpired(
            "this search result has expired or is unknown; run the search again",
            expression="_snapshot",
        )
    if not hmac.compare_digest(snapshot.caller, caller):
        raise SnapshotNotFound("no such search result", expression="_snapshot")
    return snapshot
