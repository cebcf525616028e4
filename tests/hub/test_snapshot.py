"""Snapshot store: TTL, byte bound, LRU, caller binding."""

from __future__ import annotations

import pytest

from onerecord.hub.errors import SnapshotExpired, SnapshotNotFound
from onerecord.hub.snapshot import (
    InMemorySnapshotStore,
    Snapshot,
    caller_hash,
    new_snapshot_id,
    open_snapshot,
)
from tests.hub.conftest import ManualClock


def snap(n_entries: int = 3, *, size: int = 10, caller: str = "alice") -> Snapshot:
    return Snapshot(
        id=new_snapshot_id(),
        caller=caller_hash(caller),
        entries=tuple(bytes([65 + i % 26]) * size for i in range(n_entries)),
        outcome=None,
        masked_count=0,
        query="",
    )


@pytest.mark.anyio
async def test_expires_after_ttl() -> None:
    clock = ManualClock()
    store = InMemorySnapshotStore(ttl_s=60, clock=clock)
    s = snap()
    assert await store.put(s)
    clock.advance(59.9)
    assert await store.get(s.id) is s
    clock.advance(0.1)
    assert await store.get(s.id) is None
    assert store.size_bytes == 0


@pytest.mark.anyio
async def test_evicts_least_recently_used_to_stay_within_bytes() -> None:
    store = InMemorySnapshotStore(max_bytes=70, clock=ManualClock())
    a, b, c = snap(size=10), snap(size=10), snap(size=10)  # 30 bytes each
    await store.put(a)
    await store.put(b)
    assert await store.get(a.id) is a  # a is now the most recently used
    await store.put(c)
    assert await store.get(b.id) is None
    assert await store.get(a.id) is a and await store.get(c.id) is c
    assert store.size_bytes == 60


@pytest.mark.anyio
async def test_refuses_a_snapshot_larger_than_the_bound() -> None:
    store = InMemorySnapshotStore(max_bytes=10)
    assert not await store.put(snap(size=20))
    assert len(store) == 0


@pytest.mark.anyio
async def test_open_snapshot_binds_to_caller() -> None:
    store = InMemorySnapshotStore()
    s = snap(caller="alice")
    await store.put(s)
    assert await open_snapshot(store, s.id, caller_hash("alice")) is s
    with pytest.raises(SnapshotNotFound):
        await open_snapshot(store, s.id, caller_hash("mallory"))
    with pytest.raises(SnapshotExpired):
        await open_snapshot(store, "no-such-id", caller_hash("alice"))


def test_pages_cover_every_entry_once() -> None:
    s = snap(n_entries=10)
    pages = [s.page(offset, 3) for offset in range(0, s.total, 3)]
    assert [e for page in pages for e in page] == list(s.entries)


def test_snapshot_ids_are_unique_and_url_safe() -> None:
    ids = {new_snapshot_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(i.replace("-", "").replace("_", "").isalnum() for i in ids)


@pytest.mark.anyio
async def test_a_snapshot_read_recently_still_expires_by_its_age() -> None:
    """Reading moves a snapshot to the LRU's end; expiry still goes by creation time."""
    clock = ManualClock()
    store = InMemorySnapshotStore(ttl_s=60, clock=clock)
    old, young = snap(), snap()
    assert await store.put(old)
    clock.advance(30)
    assert await store.put(young)
    assert await store.get(old.id) is old  # now the most recently used
    clock.advance(31)
    assert await store.put(snap())  # expires what is due on the way
    assert len(store) == 2 and await store.get(young.id) is young
    assert await store.get(old.id) is None
    clock.advance(30)
    assert await store.get(young.id) is None


@pytest.mark.anyio
async def test_storing_a_snapshot_again_counts_its_bytes_once() -> None:
    store = InMemorySnapshotStore(clock=ManualClock())
    s = snap(size=10)
    assert await store.put(s) and await store.put(s)
    assert len(store) == 1 and store.size_bytes == s.size_bytes
