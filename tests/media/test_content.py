"""The archive's content stores, one contract: a folder, and S3 (a real moto server on 127.0.0.1).

Each test runs over `FolderInstanceStore` and `ObstoreInstanceStore` on a fresh bucket of the
S3 API that tests/support/s3.py starts as a child process; the S3-only tests check a multipart
upload and a ranged read in constant memory, and that a crash between stage and commit leaves
a staged object the sweep removes and no registration.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from onerecord.audit import MemoryAuditSink
from onerecord.media import (
    FolderInstanceStore,
    InstanceContentStore,
    MediaService,
    ObstoreInstanceStore,
    QueryRoot,
    StoreOutcome,
    parse_find,
)
from onerecord.media.content import CHUNK
from onerecord.media.errors import ContentWriteFailed
from tests.media.conftest import Archive, SynthFiles
from tests.media.test_store import CORRELATION, _FailingRegister, _query
from tests.media.test_wic import PeakRss
from tests.support.s3 import S3Server

pytestmark = pytest.mark.anyio

BLOB = os.urandom(600_000)
SHA = hashlib.sha256(BLOB).hexdigest()
PREFIX = "helse-nord/media"


@dataclass
class Store:
    """A content store under test and a way to list what it holds, behind its back."""

    content: InstanceContentStore
    listing: Callable[[], list[str]]
    kind: str


def _folder(tmp_path: Path, _request: pytest.FixtureRequest) -> Store:
    root = tmp_path / "content"

    def listing() -> list[str]:
        if not root.exists():
            return []
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    return Store(FolderInstanceStore(root), listing, "folder")


def _s3(_tmp_path: Path, request: pytest.FixtureRequest) -> Store:
    server: S3Server = request.getfixturevalue("s3_server")
    bucket = server.new_bucket()
    content = ObstoreInstanceStore(server.store(bucket), prefix=PREFIX)

    def listing() -> list[str]:
        return [k.removeprefix(f"{PREFIX}/") for k in server.keys(bucket)]

    return Store(content, listing, "s3")


@pytest.fixture(params=[_folder, _s3], ids=["folder", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    factory: Callable[[Path, pytest.FixtureRequest], Store] = request.param
    return factory(tmp_path, request)


@pytest.fixture
def s3_store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return _s3(tmp_path, request)


async def _pieces(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _collect(stream: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in stream]


async def test_put_get_chunks_and_ranges(store: Store) -> None:
    content = store.content
    key = await content.put(BLOB)
    assert (key.sha256, key.size) == (SHA, len(BLOB))
    assert await content.exists(SHA)
    assert store.listing() == [f"{SHA[:2]}/{SHA[2:4]}/{SHA}.dcm"]
    assert await content.get(SHA) == BLOB
    chunks = await _collect(content.chunks(SHA, size=65536))
    assert b"".join(chunks) == BLOB and max(map(len, chunks)) <= 65536
    assert await content.read_at(SHA, 1000, 10) == BLOB[1000:1010]
    assert await content.read_at(SHA, len(BLOB) - 3, 10) == BLOB[-3:]  # short at the end
    assert await content.read_at(SHA, len(BLOB) + 5, 10) == b""
    assert await content.read_at(SHA, len(BLOB), 10) == b""  # 416 on S3, no bytes here
    assert await content.read_at(SHA, 5, 0) == b""
    assert await _collect(content.range_chunks(SHA, len(BLOB), 10)) == []
    span = await _collect(content.range_chunks(SHA, 70_000, 300_000, size=CHUNK))
    assert b"".join(span) == BLOB[70_000:370_000] and max(map(len, span)) <= CHUNK


async def test_missing_bytes_are_a_key_error(store: Store) -> None:
    content, absent = store.content, "0" * 64
    assert not await content.exists(absent)
    with pytest.raises(KeyError):
        await content.get(absent)
    with pytest.raises(KeyError):
        await _collect(content.chunks(absent))
    with pytest.raises(KeyError):
        await content.read_at(absent, 0, 10)
    with pytest.raises(KeyError):
        await _collect(content.range_chunks(absent, 0, 10))
    with pytest.raises(ValueError):
        await content.exists("../../etc/passwd")
    await content.delete(absent)  # absent is not an error


async def test_the_same_bytes_twice_are_one_object(store: Store) -> None:
    first = await store.content.put(BLOB)
    second = await store.content.put(BLOB)
    assert first == second
    staged = await store.content.stage(_pieces(BLOB[:1000], BLOB[1000:]))
    await store.content.commit(staged)
    await store.content.discard(staged)
    assert store.listing() == [f"{SHA[:2]}/{SHA[2:4]}/{SHA}.dcm"]
    await store.content.delete(SHA)
    assert store.listing() == []


async def test_concurrent_stores_of_the_same_bytes_are_one_object(store: Store) -> None:
    async def stage_and_commit() -> None:
        staged = await store.content.stage(_pieces(BLOB[:250_000], BLOB[250_000:]))
        await store.content.commit(staged)
        await store.content.discard(staged)

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(stage_and_commit)
            tg.start_soon(store.content.put, BLOB)
    assert store.listing() == [f"{SHA[:2]}/{SHA[2:4]}/{SHA}.dcm"]
    assert await store.content.get(SHA) == BLOB


async def test_a_staged_stream_is_committed_or_discarded_and_swept(store: Store) -> None:
    content = store.content
    staged = await content.stage(_pieces(b"a" * 300_000, b"b" * 2_000_000, b"c"))
    assert staged.key.size == 2_300_001
    assert not await content.exists(staged.key.sha256)  # not at its address until committed
    await content.commit(staged)
    assert await content.read_at(staged.key.sha256, 299_999, 3) == b"abb"
    got = b"".join(await _collect(content.range_chunks(staged.key.sha256, 2_299_999, 50)))
    assert got == b"bc"
    other = await content.stage(_pieces(b"never registered"))
    await content.discard(other)
    left = await content.stage(_pieces(b"a crash between stage and commit"))
    staged_left = [k for k in store.listing() if k.startswith(".staging/")]
    assert len(staged_left) == 1 and staged_left[0].endswith(".part")
    assert not await content.exists(left.key.sha256)

    async def referenced(sha: str) -> bool:
        return sha == staged.key.sha256

    # Younger than the grace: could be a store in flight, so it stays.
    assert await content.sweep_orphans(referenced, timedelta(hours=1)) == 0
    time.sleep(1.1)  # S3 times are whole seconds
    assert await content.sweep_orphans(referenced, timedelta(0)) == 1
    sha = staged.key.sha256
    assert store.listing() == [f"{sha[:2]}/{sha[2:4]}/{sha}.dcm"]


async def test_the_sweep_removes_unreferenced_instances_only(store: Store) -> None:
    kept = await store.content.put(b"referenced")
    orphan = await store.content.put(b"orphan: a crash between write and register")

    async def referenced(sha: str) -> bool:
        return sha == kept.sha256

    assert await store.content.sweep_orphans(referenced, timedelta(hours=1)) == 0
    time.sleep(1.1)
    assert await store.content.sweep_orphans(referenced, timedelta(0)) == 1
    assert await store.content.exists(kept.sha256)
    assert not await store.content.exists(orphan.sha256)


async def test_an_orphan_registered_while_the_sweep_decides_is_kept(store: Store) -> None:
    """The sweep finds an old unreferenced instance; it is registered before the sweep deletes
    it (a store of the same instance): the sweep looks again and keeps it."""
    orphan = await store.content.put(b"stored again while the sweep runs")
    asked: list[str] = []

    async def registered_meanwhile(sha: str) -> bool:
        asked.append(sha)
        return len(asked) > 1  # the first answer is already stale when the sweep acts on it

    time.sleep(1.1)  # S3 times are whole seconds
    assert await store.content.sweep_orphans(registered_meanwhile, timedelta(0)) == 0
    assert len(asked) == 2 and await store.content.get(orphan.sha256)
    assert store.listing() == [f"{orphan.sha256[:2]}/{orphan.sha256[2:4]}/{orphan.sha256}.dcm"]


# --- with the archive's database --------------------------------------------------------------


def _service(archive: Archive, content: InstanceContentStore, *, failing: bool) -> MediaService:
    return MediaService(
        store=_FailingRegister(archive.store) if failing else archive.store,  # type: ignore[arg-type]
        content=content,
        audit=MemoryAuditSink(),
        source_id="helse-nord-media",
        home_community_id="urn:oid:2.16.578.1.12.4.5.100.4",
    )


async def test_an_instance_stored_on_s3_is_read_back_and_stored_once(
    archive: Archive, synth_files: SynthFiles, s3_store: Store
) -> None:
    service = _service(archive, s3_store.content, failing=False)
    data = synth_files.paths[0].read_bytes()
    outcomes = [
        (await service.store_instance(data, calling_ae_title="CT1", correlation_id=CORRELATION))
        for _ in range(2)
    ]
    assert [o.outcome for o in outcomes] == [StoreOutcome.STORED, StoreOutcome.DUPLICATE]
    found = await service.locate(
        parse_find(_query("STUDY"), root=QueryRoot.STUDY),
        calling_ae_title="WS1",
        correlation_id=CORRELATION,
        purpose="test",
    )
    assert len(found) == 1 and await service.read(found[0]) == data
    assert len(s3_store.listing()) == 1


async def test_a_failed_registration_on_s3_leaves_nothing(
    archive: Archive, synth_files: SynthFiles, s3_store: Store
) -> None:
    service = _service(archive, s3_store.content, failing=True)
    with pytest.raises(ConnectionError):
        await service.store_instance(
            synth_files.paths[0].read_bytes(), calling_ae_title="CT1", correlation_id=CORRELATION
        )
    assert (
        await archive.store.locate(parse_find(_query("STUDY"), root=QueryRoot.STUDY), limit=10)
        == []
    )
    assert s3_store.listing() == []  # the service removed the bytes it could not register


async def test_a_crash_between_stage_and_commit_registers_nothing_and_is_swept(
    archive: Archive, s3_store: Store
) -> None:
    """The process dies after the stream is staged: no row, a staged object, swept later."""
    body = os.urandom(3 * 1024 * 1024)
    staged = await s3_store.content.stage(_pieces(body[:1_000_000], body[1_000_000:]))
    # ... the crash: neither commit nor register nor discard runs.
    assert not await archive.store.is_referenced(staged.key.sha256)
    assert (
        await archive.store.locate(parse_find(_query("STUDY"), root=QueryRoot.STUDY), limit=10)
        == []
    )
    assert [k.split("/")[0] for k in s3_store.listing()] == [".staging"]
    grace = timedelta(hours=1)  # a restart within the grace keeps it: could be in flight
    assert await s3_store.content.sweep_orphans(archive.store.is_referenced, grace) == 0
    time.sleep(1.1)
    assert await s3_store.content.sweep_orphans(archive.store.is_referenced, timedelta(0)) == 1
    assert s3_store.listing() == []


# --- S3 only ---------------------------------------------------------------------------------


async def test_a_large_stream_goes_up_in_parts_and_ranges_come_down_in_constant_memory(
    s3_store: Store,
) -> None:
    """A 96 MiB clip: a multipart upload, then a 90 MiB Range read, held one chunk at a time."""
    content = s3_store.content
    block = os.urandom(1024 * 1024)
    total = 96

    async def clip() -> AsyncIterator[bytes]:
        for n in range(total):
            yield block[n:] + block[:n]

    offset, length = 3 * 1024 * 1024 + 17, 90 * 1024 * 1024
    with PeakRss() as upload:
        staged = await content.stage(clip())
        await content.commit(staged)
    whole = b"".join(block[n:] + block[:n] for n in range(total))
    assert (staged.key.sha256, staged.key.size) == (hashlib.sha256(whole).hexdigest(), len(whole))
    expected = hashlib.sha256(whole[offset : offset + length]).hexdigest()
    del whole
    digest, size, largest = hashlib.sha256(), 0, 0
    with PeakRss() as download:
        async for chunk in content.range_chunks(staged.key.sha256, offset, length):
            digest.update(chunk)
            size += len(chunk)
            largest = max(largest, len(chunk))
    assert size == length and digest.hexdigest() == expected
    assert largest <= CHUNK
    assert not [k for k in s3_store.listing() if k.startswith(".staging/")]
    # Measured 2026-12-03 (moto 5.2.5): the upload grew 13 MiB, the range read 3 MiB.
    assert upload.growth < 48 * 1024 * 1024, f"upload grew {upload.growth >> 20} MiB"
    assert download.growth < 24 * 1024 * 1024, f"range read grew {download.growth >> 20} MiB"


async def test_a_store_that_cannot_reach_s3_fails_cleanly(tmp_path: Path) -> None:
    """No server (a closed port): ContentWriteFailed, as for a full disk, never a half write."""
    from obstore.store import S3Store

    from tests.support.servers import free_port

    dead = S3Store(
        "onerecord-nowhere",
        endpoint=f"http://127.0.0.1:{free_port()}",
        access_key_id="x",
        secret_access_key="y",
        region="eu-north-1",
        client_options={"allow_http": True, "timeout": "2s", "connect_timeout": "1s"},
        retry_config={"max_retries": 0, "retry_timeout": timedelta(seconds=2)},
    )
    content = ObstoreInstanceStore(dead)
    with pytest.raises(ContentWriteFailed):
        await content.put(b"bytes")
    with pytest.raises(ContentWriteFailed):
        await content.stage(_pieces(b"a stream"))
