"""The repository: document bytes, content-addressed by SHA-256, streamed and verified.

    ContentError
    ├── ContentMissing     no bytes under that SHA-256 (found out before the first byte)
    └── ContentCorrupted   the bytes read back do not hash to their name, or the size differs

Bytes go in before the registry entry that references them, so a crash leaves at worst an
unreferenced blob (and, in a folder, a `.part` file), which `sweep_orphans` removes later
(source/orphans.py runs it at start-up and on a schedule); never an entry without its bytes.
Only content older than a grace period is swept, and storing bytes that are already there
renews their time, so an upload in flight keeps its bytes.
Every read hashes what it streams and raises ContentCorrupted at the end if the hash differs.

References: IHE ITI TF-3 4.2.3.2.12 (hash), 4.2.3.2.18 (size); IHE MHD ITI-68 2:3.68.4.2.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import anyio.to_thread

from onerecord import objectstore

__all__ = [
    "ContentCorrupted",
    "ContentError",
    "ContentMissing",
    "ContentRef",
    "ContentStore",
    "FolderContentStore",
    "MemoryContentStore",
    "ObstoreContentStore",
]

DEFAULT_CHUNK = 1 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ContentError(Exception):
    """The repository could not store or return document bytes."""


class ContentMissing(ContentError):
    """No content is stored under this SHA-256."""


class ContentCorrupted(ContentError):
    """Stored content does not match its SHA-256 or expected size."""


@dataclass(frozen=True, slots=True)
class ContentRef:
    """Where stored bytes are found: their SHA-256 (lower-case hex) and size."""

    sha256: str
    size: int


class ContentStore(Protocol):
    """Content-addressed document bytes."""

    async def put(self, data: bytes | AsyncIterable[bytes]) -> ContentRef:
        """Store bytes (at once or streamed) and return their SHA-256 and size."""

    async def add(self, blob: bytes) -> bool:
        """Store bytes held in memory, durably; True if they were not stored before.

        One step where `exists` then `put` would be two (on a folder: one worker-thread trip).
        """

    async def open(
        self, sha256: str, *, expected_size: int, chunk_size: int = DEFAULT_CHUNK
    ) -> AsyncIterator[bytes]:
        """Check the content exists, then return a verifying stream of its chunks."""

    async def exists(self, sha256: str) -> bool:
        """True if content with this SHA-256 is stored."""

    async def delete(self, sha256: str) -> None:
        """Remove the content; absent content is not an error."""

    async def sweep_orphans(
        self, referenced: Callable[[str], Awaitable[bool]], older_than: timedelta
    ) -> int:
        """Delete content older than `older_than` that `referenced` disowns; return the count."""


def _check_name(sha256: str) -> str:
    if not _SHA256.match(sha256):
        raise ValueError("content is named by 64 lower-case hex digits (SHA-256)")
    return sha256


async def _as_chunks(data: bytes | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    if isinstance(data, bytes | bytearray | memoryview):
        yield bytes(data)
        return
    async for chunk in data:
        yield chunk


async def _verified(
    chunks: AsyncIterator[bytes], sha256: str, expected_size: int
) -> AsyncIterator[bytes]:
    """Pass chunks through, hashing them; the last chunk is held back until the hash matches.

    A corrupted document therefore never reaches a client whole: the stream ends short of its
    declared length with ContentCorrupted, and an HTTP client sees a broken transfer.
    """
    digest = hashlib.sha256()
    size = 0
    held: bytes | None = None
    async for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
        if held is not None:
            yield held
        held = chunk
    if size != expected_size or digest.hexdigest() != sha256:
        raise ContentCorrupted(f"content {sha256} does not match its hash or size")
    if held is not None:
        yield held


# --- folder ----------------------------------------------------------------------------------


class FolderContentStore:
    """Content in a folder: root/ab/cd/<sha256>, written via root/tmp and an atomic rename."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"

    def path_of(self, sha256: str) -> Path:
        """Return where content with this SHA-256 lives."""
        name = _check_name(sha256)
        return self.root / name[:2] / name[2:4] / name

    async def put(self, data: bytes | AsyncIterable[bytes]) -> ContentRef:
        """Stream to a temp file, fsync, and rename into place under its SHA-256."""
        if isinstance(data, bytes | bytearray | memoryview):
            # Bytes already in memory: the whole write is one trip to a worker thread.
            ref, _created = await anyio.to_thread.run_sync(self._put_bytes, bytes(data))
            return ref
        await anyio.to_thread.run_sync(lambda: self.tmp.mkdir(parents=True, exist_ok=True))
        temp = self.tmp / f"{uuid.uuid4().hex}.part"
        digest = hashlib.sha256()
        size = 0
        handle: BinaryIO = await anyio.to_thread.run_sync(lambda: temp.open("wb"))
        try:
            try:
                async for chunk in _as_chunks(data):
                    digest.update(chunk)
                    size += len(chunk)
                    await anyio.to_thread.run_sync(handle.write, chunk)
                await anyio.to_thread.run_sync(_flush_and_sync, handle)
            finally:
                await anyio.to_thread.run_sync(handle.close)
            sha256 = digest.hexdigest()
            await anyio.to_thread.run_sync(self._place, temp, self.path_of(sha256))
        except BaseException:
            await anyio.to_thread.run_sync(lambda: temp.unlink(missing_ok=True))
            raise
        return ContentRef(sha256=sha256, size=size)

    async def add(self, blob: bytes) -> bool:
        """Store in-memory bytes (fsynced, renamed, directory fsynced); True if new."""
        _ref, created = await anyio.to_thread.run_sync(self._put_bytes, bytes(blob))
        return created

    def _put_bytes(self, blob: bytes) -> tuple[ContentRef, bool]:
        sha256 = hashlib.sha256(blob).hexdigest()
        final = self.path_of(sha256)
        existed = final.is_file()
        if existed and final.stat().st_size == len(blob):
            # Content-addressed: already here. Renew its time, so that the orphan sweep's grace
            # period protects it until this upload is registered.
            os.utime(final)
            return ContentRef(sha256=sha256, size=len(blob)), False
        self.tmp.mkdir(parents=True, exist_ok=True)
        temp = self.tmp / f"{uuid.uuid4().hex}.part"
        try:
            with temp.open("wb") as handle:
                handle.write(blob)
                _flush_and_sync(handle)
            self._place(temp, final)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return ContentRef(sha256=sha256, size=len(blob)), not existed

    @staticmethod
    def _place(temp: Path, final: Path) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        # os.replace is atomic: readers see the whole file under its name, or nothing.
        os.replace(temp, final)
        directory = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    async def open(
        self, sha256: str, *, expected_size: int, chunk_size: int = DEFAULT_CHUNK
    ) -> AsyncIterator[bytes]:
        """Open the file (ContentMissing now if absent) and return a verifying chunk stream."""
        path = self.path_of(sha256)
        try:
            handle: BinaryIO = await anyio.to_thread.run_sync(lambda: path.open("rb"))
        except FileNotFoundError:
            raise ContentMissing(f"no content {sha256}") from None
        try:
            size = await anyio.to_thread.run_sync(lambda: os.fstat(handle.fileno()).st_size)
        except BaseException:
            handle.close()
            raise
        if size != expected_size:
            handle.close()
            raise ContentCorrupted(f"content {sha256} has {size} bytes, expected {expected_size}")
        return _verified(_read_file(handle, chunk_size), sha256, expected_size)

    async def exists(self, sha256: str) -> bool:
        path = self.path_of(sha256)
        return await anyio.to_thread.run_sync(path.is_file)

    async def delete(self, sha256: str) -> None:
        path = self.path_of(sha256)
        await anyio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))

    async def sweep_orphans(
        self, referenced: Callable[[str], Awaitable[bool]], older_than: timedelta
    ) -> int:
        """Delete unreferenced blobs and stale temp files older than `older_than`.

        Returns the number of blobs removed (temp files are not counted).
        """
        cutoff = datetime.now(UTC).timestamp() - older_than.total_seconds()
        blobs, temps = await anyio.to_thread.run_sync(self._scan, cutoff)
        for temp in temps:
            await anyio.to_thread.run_sync(_unlink, temp)
        removed = 0
        for sha256 in blobs:
            if not await referenced(sha256):
                path = self.path_of(sha256)
                if await anyio.to_thread.run_sync(_unlink_if_older, path, cutoff):
                    removed += 1
        return removed

    def _scan(self, cutoff: float) -> tuple[list[str], list[Path]]:
        blobs: list[str] = []
        temps: list[Path] = []
        if not self.root.exists():
            return blobs, temps
        for path in self.root.rglob("*"):
            if not path.is_file():
                continue
            try:
                mtime = path.stat().st_mtime
            except FileNotFoundError:
                continue
            if mtime > cutoff:
                continue
            if path.parent == self.tmp:
                temps.append(path)
            elif _SHA256.match(path.name) and path == self.path_of(path.name):
                blobs.append(path.name)
        return blobs, temps


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


def _unlink_if_older(path: Path, cutoff: float) -> bool:
    """Unlink unless renewed since the scan (an upload of the same bytes began meanwhile)."""
    try:
        if path.stat().st_mtime > cutoff:
            return False
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _flush_and_sync(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())


async def _read_file(handle: BinaryIO, chunk_size: int) -> AsyncIterator[bytes]:
    try:
        while True:
            chunk = await anyio.to_thread.run_sync(handle.read, chunk_size)
            if not chunk:
                return
            yield chunk
    finally:
        handle.close()


# --- memory ----------------------------------------------------------------------------------


class MemoryContentStore:
    """ContentStore in a dict, for unit tests; `blobs` may be tampered with to test checks."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.stored_at: dict[str, datetime] = {}

    async def put(self, data: bytes | AsyncIterable[bytes]) -> ContentRef:
        parts = [chunk async for chunk in _as_chunks(data)]
        blob = b"".join(parts)
        sha256 = hashlib.sha256(blob).hexdigest()
        self.blobs[sha256] = blob
        self.stored_at[sha256] = datetime.now(UTC)  # renewed, as a folder renews the mtime
        return ContentRef(sha256=sha256, size=len(blob))

    async def add(self, blob: bytes) -> bool:
        created = hashlib.sha256(blob).hexdigest() not in self.blobs
        await self.put(blob)
        return created

    async def open(
        self, sha256: str, *, expected_size: int, chunk_size: int = DEFAULT_CHUNK
    ) -> AsyncIterator[bytes]:
        blob = self.blobs.get(_check_name(sha256))
        if blob is None:
            raise ContentMissing(f"no content {sha256}")
        if len(blob) != expected_size:
            raise ContentCorrupted(f"content {sha256} has {len(blob)} bytes, not {expected_size}")

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(blob), chunk_size):
                yield blob[start : start + chunk_size]

        return _verified(chunks(), sha256, expected_size)

    async def exists(self, sha256: str) -> bool:
        return _check_name(sha256) in self.blobs

    async def delete(self, sha256: str) -> None:
        self.blobs.pop(sha256, None)
        self.stored_at.pop(sha256, None)

    async def sweep_orphans(
        self, referenced: Callable[[str], Awaitable[bool]], older_than: timedelta
    ) -> int:
        cutoff = datetime.now(UTC) - older_than
        removed = 0
        for sha256, when in list(self.stored_at.items()):
            if when <= cutoff and not await referenced(sha256):
                await self.delete(sha256)
                removed += 1
        return removed


# --- object storage --------------------------------------------------------------------------


class ObstoreContentStore:
    """Content in S3-compatible object storage (or any obstore store): <prefix>ab/cd/<sha256>.

    Streamed uploads go to tmp/<uuid> first and are copied under their SHA-256 once it is
    known; object stores make each PUT and COPY atomic, so no partial object has a final name.
    The generic part (URL, key layout, upload, copy, listing) is onerecord.objectstore, shared
    with the media archive's store.
    """

    def __init__(self, store: Any, *, prefix: str = "") -> None:
        self.store = store
        self.prefix = objectstore.normal_prefix(prefix)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> ObstoreContentStore:
        """Build from a URL such as s3://bucket/prefix (credentials from the environment)."""
        return cls(objectstore.open_store(url, **options))

    def key_of(self, sha256: str) -> str:
        return objectstore.sharded_key(self.prefix, _check_name(sha256))

    async def put(self, data: bytes | AsyncIterable[bytes]) -> ContentRef:
        import obstore

        if isinstance(data, bytes | bytearray | memoryview):
            blob = bytes(data)
            sha256 = hashlib.sha256(blob).hexdigest()
            await obstore.put_async(self.store, self.key_of(sha256), blob)
            return ContentRef(sha256=sha256, size=len(blob))
        temp = f"{self.prefix}tmp/{uuid.uuid4().hex}"
        try:
            sha256, size = await objectstore.upload_hashing(self.store, temp, data)
        except BaseException:
            await objectstore.forget(self.store, temp)
            raise
        await objectstore.promote(self.store, temp, self.key_of(sha256))
        return ContentRef(sha256=sha256, size=size)

    async def add(self, blob: bytes) -> bool:
        created = not await self.exists(hashlib.sha256(blob).hexdigest())
        await self.put(blob)
        return created

    async def open(
        self, sha256: str, *, expected_size: int, chunk_size: int = DEFAULT_CHUNK
    ) -> AsyncIterator[bytes]:
        import obstore
        from obstore.exceptions import NotFoundError

        try:
            result = await obstore.get_async(self.store, self.key_of(sha256))
        except (NotFoundError, FileNotFoundError):
            raise ContentMissing(f"no content {sha256}") from None
        size = result.meta["size"]
        if size != expected_size:
            raise ContentCorrupted(f"content {sha256} has {size} bytes, expected {expected_size}")

        async def chunks() -> AsyncIterator[bytes]:
            async for chunk in result.stream(min_chunk_size=chunk_size):
                yield bytes(chunk)

        return _verified(chunks(), sha256, expected_size)

    async def exists(self, sha256: str) -> bool:
        return await objectstore.head(self.store, self.key_of(sha256)) is not None

    async def delete(self, sha256: str) -> None:
        await objectstore.delete_quietly(self.store, self.key_of(sha256))

    async def sweep_orphans(
        self, referenced: Callable[[str], Awaitable[bool]], older_than: timedelta
    ) -> int:
        cutoff = datetime.now(UTC) - older_than
        removed = 0
        async for path, _size in objectstore.stale_objects(self.store, self.prefix, cutoff):
            name = path.rsplit("/", 1)[-1]
            if path.startswith(f"{self.prefix}tmp/"):
                await objectstore.delete_quietly(self.store, path)
            elif _SHA256.match(name) and path == self.key_of(name):
                if not await referenced(name):
                    await self.delete(name)
                    removed += 1
        return removed
