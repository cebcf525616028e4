"""Content stores: atomic writes, streaming with verification, missing and corrupted bytes."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from obstore.store import LocalStore, MemoryStore

from onerecord.source.content import (
    ContentCorrupted,
    ContentMissing,
    ContentStore,
    FolderContentStore,
    MemoryContentStore,
    ObstoreContentStore,
)
from tests.support.s3 import S3Server

pytestmark = pytest.mark.anyio

BLOB = os.urandom(300_000)
SHA = hashlib.sha256(BLOB).hexdigest()


def _folder(tmp_path: Path) -> ContentStore:
    return FolderContentStore(tmp_path / "content")


def _memory(_tmp_path: Path) -> ContentStore:
    return MemoryContentStore()


def _obstore_memory(_tmp_path: Path) -> ContentStore:
    return ObstoreContentStore(MemoryStore())


def _obstore_local(tmp_path: Path) -> ContentStore:
    root = tmp_path / "bucket"
    root.mkdir()
    return ObstoreContentStore(LocalStore(str(root)), prefix="region1")


def _obstore_s3(_tmp_path: Path) -> ContentStore:
    raise NotImplementedError("made by the fixture: it needs the S3 server")


STORES: list[Callable[[Path], ContentStore]] = [
    _folder,
    _memory,
    _obstore_memory,
    _obstore_local,
    _obstore_s3,
]


@pytest.fixture(params=STORES, ids=lambda f: f.__name__.lstrip("_"))
def content(request: pytest.FixtureRequest, tmp_path: Path) -> ContentStore:
    factory: Callable[[Path], ContentStore] = request.param
    if factory is _obstore_s3:  # a real S3 API on 127.0.0.1 (moto, tests/support/s3.py)
        server: S3Server = request.getfixturevalue("s3_server")
        return ObstoreContentStore(server.store(server.new_bucket()), prefix="region1")
    return factory(tmp_path)


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _read(content: ContentStore, sha256: str, size: int, chunk: int = 1 << 20) -> bytes:
    stream = await content.open(sha256, expected_size=size, chunk_size=chunk)
    return b"".join([c async for c in stream])


async def test_put_bytes_and_stream_back(content: ContentStore) -> None:
    ref = await content.put(BLOB)
    assert (ref.sha256, ref.size) == (SHA, len(BLOB))
    assert await content.exists(SHA)
    stream = await content.open(SHA, expected_size=len(BLOB), chunk_size=65536)
    chunks = [c async for c in stream]
    assert b"".join(chunks) == BLOB
    if not isinstance(content, ObstoreContentStore):  # obstore's chunking is its own
        assert len(chunks) == -(-len(BLOB) // 65536)


async def test_put_stream(content: ContentStore) -> None:
    ref = await content.put(_pieces(BLOB, 7000))
    assert (ref.sha256, ref.size) == (SHA, len(BLOB))
    assert await _read(content, SHA, len(BLOB)) == BLOB
    again = await content.put(BLOB)  # content-addressed: storing twice is harmless
    assert again == ref


async def test_missing_content_fails_before_the_first_byte(content: ContentStore) -> None:
    with pytest.raises(ContentMissing):
        await content.open("0" * 64, expected_size=1)
    assert not await content.exists("0" * 64)
    with pytest.raises(ValueError):
        await content.exists("../../etc/passwd")


async def test_delete(content: ContentStore) -> None:
    await content.put(BLOB)
    await content.delete(SHA)
    await content.delete(SHA)  # absent is fine
    assert not await content.exists(SHA)


async def test_wrong_size_is_caught_before_streaming(content: ContentStore) -> None:
    await content.put(BLOB)
    with pytest.raises(ContentCorrupted):
        await content.open(SHA, expected_size=len(BLOB) + 1)


async def _tamper(content: ContentStore, tmp_path: Path, sha256: str, data: bytes) -> None:
    """Overwrite stored bytes behind the store's back, same length, other content."""
    if isinstance(content, FolderContentStore):
        content.path_of(sha256).write_bytes(data)
    elif isinstance(content, MemoryContentStore):
        content.blobs[sha256] = data
    else:
        assert isinstance(content, ObstoreContentStore)
        import obstore

        await obstore.put_async(content.store, content.key_of(sha256), data)


async def test_corruption_is_detected_at_the_end_of_the_stream(
    content: ContentStore, tmp_path: Path
) -> None:
    await content.put(BLOB)
    flipped = bytearray(BLOB)
    flipped[-1] ^= 0xFF
    await _tamper(content, tmp_path, SHA, bytes(flipped))
    stream = await content.open(SHA, expected_size=len(BLOB), chunk_size=65536)
    received = b""
    with pytest.raises(ContentCorrupted):
        async for chunk in stream:
            received += chunk
    # The last chunk is held back until the hash is checked, so a corrupted document never
    # reaches a client whole.
    assert len(received) < len(BLOB)
    assert BLOB.startswith(received)


async def test_sweep_removes_only_old_unreferenced_content(content: ContentStore) -> None:
    kept = await content.put(b"referenced")
    orphan = await content.put(b"orphan")

    async def referenced(sha256: str) -> bool:
        return sha256 == kept.sha256

    assert await content.sweep_orphans(referenced, older_than=timedelta(hours=1)) == 0
    assert await content.sweep_orphans(referenced, older_than=timedelta(0)) == 1
    assert await content.exists(kept.sha256)
    assert not await content.exists(orphan.sha256)


# --- folder specifics ------------------------------------------------------------------------


async def test_folder_layout_is_content_addressed(tmp_path: Path) -> None:
    store = FolderContentStore(tmp_path)
    await store.put(BLOB)
    assert (tmp_path / SHA[:2] / SHA[2:4] / SHA).read_bytes() == BLOB
    assert list((tmp_path / "tmp").iterdir()) == []


async def test_folder_crash_mid_write_leaves_nothing_under_a_final_name(
    tmp_path: Path,
) -> None:
    store = FolderContentStore(tmp_path)

    class Crash(Exception):
        pass

    async def dies_halfway() -> AsyncIterator[bytes]:
        yield BLOB[:1000]
        raise Crash

    with pytest.raises(Crash):
        await store.put(dies_halfway())
    assert not await store.exists(hashlib.sha256(BLOB[:1000]).hexdigest())
    assert list((tmp_path / "tmp").iterdir()) == []  # the temp file was cleaned up

    # A hard crash (no cleanup) leaves a temp file: it is never visible as content, and the
    # sweep removes it.
    (tmp_path / "tmp" / "deadbeef.part").write_bytes(BLOB[:1000])
    visible = [p for p in tmp_path.rglob("*") if p.is_file() and "tmp" not in p.parts]
    assert visible == []

    async def nothing_referenced(_sha256: str) -> bool:
        return False

    assert await store.sweep_orphans(nothing_referenced, older_than=timedelta(0)) == 0
    assert list((tmp_path / "tmp").iterdir()) == []


async def test_folder_put_replaces_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bytes reach their final name only through os.replace from root/tmp, after fsync."""
    store = FolderContentStore(tmp_path)
    calls: list[tuple[str, Any]] = []
    real_replace, real_fsync = os.replace, os.fsync

    def spy_replace(src: Any, dst: Any) -> None:
        calls.append(("replace", (Path(src).parent, Path(dst).name)))
        real_replace(src, dst)

    def spy_fsync(fd: int) -> None:
        calls.append(("fsync", None))
        real_fsync(fd)

    monkeypatch.setattr(os, "replace", spy_replace)
    monkeypatch.setattr(os, "fsync", spy_fsync)
    await store.put(_pieces(BLOB, 50_000))
    kinds = [c[0] for c in calls]
    assert kinds.index("fsync") < kinds.index("replace")
    assert ("replace", (tmp_path / "tmp", SHA)) in calls


async def test_stream_closes_file_when_abandoned(tmp_path: Path) -> None:
    store = FolderContentStore(tmp_path)
    await store.put(BLOB)
    stream = await store.open(SHA, expected_size=len(BLOB), chunk_size=1000)
    assert isinstance(stream, AsyncIterator)
    first = await stream.__anext__()
    assert first == BLOB[:1000]
    await stream.aclose()  # type: ignore[attr-defined]


async def _age(content: ContentStore, tmp_path: Path, sha256: str, seconds: float) -> None:
    """Make stored content look `seconds` old (what the sweep compares with its grace)."""
    then = datetime.now(UTC).timestamp() - seconds
    if isinstance(content, FolderContentStore):
        os.utime(content.path_of(sha256), (then, then))
    elif isinstance(content, MemoryContentStore):
        content.stored_at[sha256] = datetime.fromtimestamp(then, UTC)
    else:
        assert isinstance(content, ObstoreContentStore)
        local = tmp_path / "bucket" / content.key_of(sha256)
        if not local.exists():
            pytest.skip("an in-memory or S3 object store has no clock to turn back")
        os.utime(local, (then, then))


async def test_storing_bytes_already_there_renews_their_sweep_grace(
    content: ContentStore, tmp_path: Path
) -> None:
    """An upload of bytes left as an old orphan keeps them until it is registered."""
    ref = await content.put(b"an old orphan, uploaded again")
    await _age(content, tmp_path, ref.sha256, 7200)
    await content.put(b"an old orphan, uploaded again")  # the new upload, not yet registered

    async def nothing_referenced(_sha256: str) -> bool:
        return False

    assert await content.sweep_orphans(nothing_referenced, older_than=timedelta(hours=1)) == 0
    assert await content.exists(ref.sha256)
    await _age(content, tmp_path, ref.sha256, 7200)
    assert await content.sweep_orphans(nothing_referenced, older_than=timedelta(hours=1)) == 1


async def test_sweep_removes_stale_partial_uploads_but_not_fresh_ones(tmp_path: Path) -> None:
    """A crash mid-upload leaves a temp object (folder .part, object store tmp/): swept when old."""
    import obstore

    folder = FolderContentStore(tmp_path / "content")
    folder.tmp.mkdir(parents=True)
    part = folder.tmp / "crashed.part"
    part.write_bytes(b"half a document")
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    objects = ObstoreContentStore(LocalStore(str(bucket)), prefix="region1")
    await obstore.put_async(objects.store, "region1/tmp/crashed", b"half a document")
    temp_object = bucket / "region1" / "tmp" / "crashed"

    async def nothing_referenced(_sha256: str) -> bool:
        return False

    for store in (folder, objects):
        assert await store.sweep_orphans(nothing_referenced, older_than=timedelta(hours=1)) == 0
    assert part.exists() and temp_object.exists()  # could be an upload in flight
    old = datetime.now(UTC).timestamp() - 7200
    os.utime(part, (old, old))
    os.utime(temp_object, (old, old))
    for store in (folder, objects):
        await store.sweep_orphans(nothing_referenced, older_than=timedelta(hours=1))
    assert not part.exists() and not temp_object.exists()
