"""Where instance bytes live: a content-addressed store behind a small protocol.

Bytes are named by their SHA-256 and written before the instance is registered: to a temporary
file in the target folder, fsync'ed, renamed into place, and the folder fsync'ed, so a crash
leaves either nothing or a whole file, never a torn one under its final name. A file that no
instance references (a crash between write and register, a register that failed) is an orphan
that `sweep_orphans` removes after a grace period (the archive runs it at start-up and then
every `orphan_sweep_interval_s`, media/orphans.py); an instance row without its bytes cannot
happen, even while a store runs during a sweep:

- a store of bytes already there renews the file's time (or writes it again if it is gone), so
  the grace counts from the last store, not the first;
- the sweep sets an unreferenced old file aside (an atomic rename to `.<name>.<uuid>.sweep`)
  before it deletes it, then looks again: if a store renewed it meanwhile (young) or it is now
  referenced, it is put back. A store that comes after the rename finds no file to renew and
  writes its own. A set-aside file a crashed sweep left is put back if it is referenced and its
  name is free, else removed once past the grace.

A large instance (a video clip, up to 4 GiB) is written from a stream instead of from bytes:
`stage` writes the chunks to `<root>/.staging/` while hashing them, fsync'ed, and `commit` renames
the staged file into its content address (or drops it when the same bytes are stored), so no
instance is ever held in memory; `range_chunks` reads a span of a stored file in chunks (HTTP
Range). Staged files older than the grace are swept like orphans.

The same bytes stored twice are one file. Storing is safe from several threads and processes:
each writer has its own temporary name and `os.replace` is atomic.

`ObstoreInstanceStore` keeps the same layout in S3-compatible object storage
(`<prefix>ab/cd/<sha256>.dcm`, staged streams under `<prefix>.staging/`); the generic part is
onerecord.objectstore, shared with the document source.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import anyio.to_thread

from onerecord import objectstore
from onerecord.media.errors import ContentWriteFailed

__all__ = [
    "CHUNK",
    "ContentKey",
    "FolderInstanceStore",
    "InstanceContentStore",
    "MemoryInstanceStore",
    "ObstoreInstanceStore",
    "StagedContent",
]

CHUNK = 256 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class ContentKey:
    """Where an instance's bytes are: their SHA-256 (lower-case hex) and size."""

    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class StagedContent:
    """Bytes written but not yet at their content address: `commit` or `discard` them."""

    key: ContentKey
    path: Path | None = None  # the staged file (folder store)
    data: bytes | None = None  # the staged bytes (memory store)
    object_key: str | None = None  # the staged object (object store)


class InstanceContentStore(Protocol):
    """Content-addressed DICOM instance bytes (Part 10 files)."""

    async def put(self, data: bytes, *, sha256: str | None = None) -> ContentKey:
        """Store the bytes durably (or find them already stored) and return their key.

        `sha256`: their digest if the caller has computed it already (not checked)."""

    async def get(self, sha256: str) -> bytes:
        """Return the stored bytes; KeyError if there are none."""

    def chunks(self, sha256: str, *, size: int = CHUNK) -> AsyncIterator[bytes]:
        """The stored bytes in chunks, read as they are sent (WADO-RS); KeyError if absent."""

    async def delete(self, sha256: str) -> None:
        """Remove the bytes; absent bytes are not an error."""

    async def stage(self, chunks: AsyncIterable[bytes]) -> StagedContent:
        """Write a stream durably while hashing it, not yet under its content address."""

    async def commit(self, staged: StagedContent) -> None:
        """Put staged bytes at their content address (dropped if already stored)."""

    async def discard(self, staged: StagedContent) -> None:
        """Forget staged bytes that will not be registered."""

    async def read_at(self, sha256: str, offset: int, length: int) -> bytes:
        """Up to `length` stored bytes from `offset`; KeyError if absent."""

    def range_chunks(
        self, sha256: str, offset: int, length: int, *, size: int = CHUNK
    ) -> AsyncIterator[bytes]:
        """`length` stored bytes from `offset`, in chunks as they are sent; KeyError if absent."""

    async def exists(self, sha256: str) -> bool:
        """True if bytes with this SHA-256 are stored."""

    async def sweep_orphans(
        self, referenced: Callable[[str], Awaitable[bool]], older_than: timedelta
    ) -> int:
        """Remove bytes no instance references (and torn writes) older than `older_than`."""


def _check(sha256: str) -> str:
    if not _SHA256.match(sha256):
        raise ValueError("content is named by 64 lower-case hex digits (SHA-256)")
    return sha256


class MemoryInstanceStore:
    """Keeps bytes in a dict: the fake for unit tests."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    async def put(self, data: bytes, *, sha256: str | None = None) -> ContentKey:
        sha = sha256 or hashlib.sha256(data).hexdigest()
        self.blobs[sha] = bytes(data)
        return ContentKey(sha, len(data))

    async def get(self, sha256: str) -> bytes:
        return self.blobs[_check(sha256)]

    async def chunks(self, sha256: str, *, size: int = CHUNK) -> AsyncIterator[bytes]:
        data = self.blobs[_check(sha256)]
        for start in range(0, len(data), size):
            yield data[start : start + size]

    async def delete(self, sha256: str) -> None:
        self.blobs.pop(_check(sha256), None)

    async def stage(self, chunks: AsyncIterable[bytes]) -> StagedContent:
        data = b"".join([chunk async for chunk in chunks])
        return StagedContent(ContentKey(hashlib.sha256(data).hexdigest(), len(data)), data=data)

    async def commit(self, staged: StagedContent) -> None:
        assert staged.data is not None
        self.blobs[staged.key.sha256] = staged.data

    async def discard(self, staged: StagedContent) -> None:
        return None

    async def read_at(self, sha256: str, offset: int, length: int) -> bytes:
        return self.blobs[_check(sha256)][offset : offset + length]

    async def range_chunks(
        self, sha256: str, offset: int, length: int, *, size: int = CHUNK
    ) -> AsyncIterator[bytes]:
        data = self.blobs[_check(sha256)]
        for start in range(offset, offset + length, size):
            yield data[start : min(start + size, offset + length)]

    async def exists(self, sha256: str) -> bool:
        return _check(sha256) in self.blobs

    async def sweep_orphans(
        self, referenced: Callable[[str], Awaitable[bool]], older_than: timedelta
    ) -> int:
        orphans = [sha for sha in list(self.blobs) if not await referenced(sha)]
        for sha in orphans:
            del self.blobs[sha]
        return len(orphans)


class FolderInstanceStore:
    """Files under a folder: `<root>/ab/cd/<sha256>.dcm`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, sha256: str) -> Path:
        sha = _check(sha256)
        return self.root / sha[:2] / sha[2:4] / f"{sha}.dcm"

    async def put(self, data: bytes, *, sha256: str | None = None) -> ContentKey:
        sha = sha256 or hashlib.sha256(data).hexdigest()
        try:
            await anyio.to_thread.run_sync(self._write, sha, data)
        except OSError as exc:
            raise ContentWriteFailed(f"could not store instance bytes: {exc.strerror}") from exc
        return ContentKey(sha, len(data))

    def _write(self, sha: str, data: bytes) -> None:
        target = self.path_of(sha)
        if _renewed(target, len(data)):
            return
        folder = target.parent
        folder.mkdir(parents=True, exist_ok=True)
        temp = folder / f".{sha}.{uuid.uuid4().hex}.part"
        try:
            with temp.open("xb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename itself is durable only once the folder is
        finally:
            os.close(fd)

    async def get(self, sha256: str) -> bytes:
        path = self.path_of(sha256)
        try:
            return await anyio.to_thread.run_sync(path.read_bytes)
        except FileNotFoundError:
            raise KeyError(sha256) from None

    async def chunks(self, sha256: str, *, size: int = CHUNK) -> AsyncIterator[bytes]:
        path = self.path_of(sha256)
        try:
            handle = await anyio.to_thread.run_sync(path.open, "rb")
        except FileNotFoundError:
            raise KeyError(sha256) from None
        try:
            while chunk := await anyio.to_thread.run_sync(handle.read, size):
                yield chunk
        finally:
            handle.close()

    async def delete(self, sha256: str) -> None:
        await anyio.to_thread.run_sync(lambda: self.path_of(sha256).unlink(missing_ok=True))

    @property
    def staging(self) -> Path:
        """Where streams are staged (and STOW-RS spools its clips): inside the root, so a
        rename into place never crosses a file system."""
        return self.root / ".staging"

    async def stage(self, chunks: AsyncIterable[bytes]) -> StagedContent:
        await anyio.to_thread.run_sync(lambda: self.staging.mkdir(parents=True, exist_ok=True))
        temp = self.staging / f"{uuid.uuid4().hex}.part"
        digest = hashlib.sha256()
        size = 0
        try:
            handle = await anyio.to_thread.run_sync(temp.open, "xb")
            try:
                pending: list[bytes] = []
                held = 0
                async for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    pending.append(chunk)
                    held += len(chunk)
                    if held >= 4 * CHUNK:  # one thread hop per MiB, not per chunk
                        await anyio.to_thread.run_sync(handle.write, b"".join(pending))
                        pending, held = [], 0
                await anyio.to_thread.run_sync(handle.write, b"".join(pending))
                await anyio.to_thread.run_sync(handle.flush)
                await anyio.to_thread.run_sync(os.fsync, handle.fileno())
            finally:
                handle.close()
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise ContentWriteFailed(f"could not stage instance bytes: {exc.strerror}") from exc
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return StagedContent(ContentKey(digest.hexdigest(), size), path=temp)

    async def commit(self, staged: StagedContent) -> None:
        assert staged.path is not None

        def move() -> None:
            target = self.path_of(staged.key.sha256)
            if _renewed(target, staged.key.size):
                staged.path.unlink(missing_ok=True)  # type: ignore[union-attr]
                return
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged.path, target)  # type: ignore[arg-type]
            fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

        try:
            await anyio.to_thread.run_sync(move)
        except OSError as exc:
            raise ContentWriteFailed(f"could not store instance bytes: {exc.strerror}") from exc

    async def discard(self, staged: StagedContent) -> None:
        if staged.path is not None:
            await anyio.to_thread.run_sync(lambda: staged.path.unlink(missing_ok=True))  # type: ignore[union-attr]

    async def read_at(self, sha256: str, offset: int, length: int) -> bytes:
        path = self.path_of(sha256)

        def read() -> bytes:
            with path.open("rb") as handle:
                handle.seek(offset)
                return handle.read(length)

        try:
            return await anyio.to_thread.run_sync(read)
        except FileNotFoundError:
            raise KeyError(sha256) from None

    async def range_chunks(
        self, sha256: str, offset: int, length: int, *, size: int = CHUNK
    ) -> AsyncIterator[bytes]:
        path = self.path_of(sha256)
        try:
            handle = await anyio.to_thread.run_sync(path.open, "rb")
        except FileNotFoundError:
            raise KeyError(sha256) from None
        try:
            await anyio.to_thread.run_sync(handle.seek, offset)
            left = length
            while left > 0:
                chunk = await anyio.to_thread.run_sync(handle.read, min(size, left))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk
        finally:
            handle.close()

    async def exists(self, sha256: str) -> bool:
        return await anyio.to_thread.run_sync(self.path_of(sha256).exists)

    async def sweep_orphans(
        self, referenced: Callable[[str], Awaitable[bool]], older_than: timedelta
    ) -> int:
        """Remove `.part` files (a write cut short) and unreferenced files older than the grace.

        The grace keeps a store in flight safe: its file is younger than the grace until it is
        registered (the default is an hour; a store takes milliseconds), and a store of bytes
        already there renews their time. An unreferenced file is set aside before it is deleted
        and put back if a store renewed or registered it meanwhile (the module docstring).
        """
        cutoff = time.time() - older_than.total_seconds()

        def candidates() -> list[Path]:
            if not self.root.exists():
                return []
            found = [*self.root.glob("??/??/*"), *self.staging.glob("*")]
            return [
                p
                for p in found
                if p.name.endswith(_SET_ASIDE) or (p.is_file() and _mtime(p) < cutoff)
            ]

        removed = 0
        for path in await anyio.to_thread.run_sync(candidates):
            if path.name.endswith(_SET_ASIDE):
                removed += await self._left_aside(path, referenced, cutoff)
                continue
            if path.name.endswith((".part", ".spool")):
                path.unlink(missing_ok=True)
                removed += 1
                continue
            sha = path.name.removesuffix(".dcm")
            if _SHA256.match(sha) and not await referenced(sha):
                removed += await self._remove_unless_stored(path, sha, referenced, cutoff)
        return removed

    async def _remove_unless_stored(
        self, path: Path, sha: str, referenced: Callable[[str], Awaitable[bool]], cutoff: float
    ) -> int:
        """Set the file aside, look again, then delete it or put it back; return 1 if deleted."""
        aside = path.with_name(f".{path.name}.{uuid.uuid4().hex}{_SET_ASIDE}")
        try:
            await anyio.to_thread.run_sync(os.rename, path, aside)
        except FileNotFoundError:
            return 0
        if _mtime(aside) >= cutoff or await referenced(sha):
            # A store renewed it before the rename, or registered it: it stays.
            with contextlib.suppress(FileNotFoundError):  # another sweep put it back first
                await anyio.to_thread.run_sync(os.replace, aside, path)
            return 0
        aside.unlink(missing_ok=True)
        return 1

    async def _left_aside(
        self, aside: Path, referenced: Callable[[str], Awaitable[bool]], cutoff: float
    ) -> int:
        """A file a sweep set aside (this one's, another process's, or a crashed one's)."""
        sha = aside.name.removeprefix(".")[:64]
        if not _SHA256.match(sha):
            return 0
        target = self.path_of(sha)
        try:
            if not target.exists() and await referenced(sha):
                await anyio.to_thread.run_sync(os.replace, aside, target)
                return 0
            if _mtime(aside) < cutoff:
                aside.unlink(missing_ok=True)
                return 1
        except FileNotFoundError:
            pass  # another sweep finished with it
        return 0


_SET_ASIDE = ".sweep"


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")  # gone: never "old"


def _renewed(target: Path, size: int) -> bool:
    """Renew the time of the stored bytes (the sweep's grace starts again); False if absent.

    A sweep may set the file aside between the two calls: then the utime finds nothing and the
    caller writes the bytes again.
    """
    try:
        if target.stat().st_size != size:
            return False
        os.utime(target)
    except FileNotFoundError:
        return False
    return True


class ObstoreInstanceStore:
    """Objects in S3-compatible storage (or any obstore store): `<prefix>ab/cd/<sha256>.dcm`.

    A PUT (single, or multipart completed by one request) and a server-side COPY each make a
    whole object appear under its key or nothing, so no torn instance ever has its final name.
    `put` writes straight to the content address; `stage` uploads a stream (multipart, bounded
    memory) to `<prefix>.staging/<uuid>.part` while hashing it, and `commit` copies it to its
    address and deletes the staged object. A crash between stage and commit, or between the
    copy and the delete, leaves a staged object that `sweep_orphans` removes after the grace.
    Reads are ranged GETs streamed in chunks: a video's Range request holds one chunk at a time.
    """

    def __init__(self, store: Any, *, prefix: str = "") -> None:
        self.store = store
        self.prefix = objectstore.normal_prefix(prefix)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> ObstoreInstanceStore:
        """Build from `s3://bucket/prefix` (credentials and endpoint from the environment)."""
        return cls(objectstore.open_store(objectstore.check_url(url), **options))

    def key_of(self, sha256: str) -> str:
        return objectstore.sharded_key(self.prefix, _check(sha256), ".dcm")

    @property
    def staging(self) -> str:
        """The key prefix of staged streams."""
        return f"{self.prefix}.staging/"

    async def put(self, data: bytes, *, sha256: str | None = None) -> ContentKey:
        """One PUT to the content address: the same bytes again overwrite themselves (one
        object) and renew its time, so an orphan stored again outlives the sweep's grace."""
        import obstore
        from obstore.exceptions import BaseError

        sha = sha256 or hashlib.sha256(data).hexdigest()
        try:
            await obstore.put_async(self.store, self.key_of(sha), bytes(data))
        except (OSError, BaseError) as exc:
            raise ContentWriteFailed(f"could not store instance bytes: {_reason(exc)}") from exc
        return ContentKey(sha, len(data))

    async def _get(self, sha256: str, options: Any = None) -> Any:
        import obstore
        from obstore.exceptions import NotFoundError

        key = self.key_of(sha256)
        try:
            return await obstore.get_async(self.store, key, options=options)
        except (NotFoundError, FileNotFoundError):
            raise KeyError(sha256) from None

    async def get(self, sha256: str) -> bytes:
        result = await self._get(sha256)
        return bytes(await result.bytes_async())

    async def chunks(self, sha256: str, *, size: int = CHUNK) -> AsyncIterator[bytes]:
        result = await self._get(sha256)
        async for chunk in _sized(result.stream(min_chunk_size=size), size):
            yield chunk

    async def delete(self, sha256: str) -> None:
        await objectstore.delete_quietly(self.store, self.key_of(sha256))

    async def stage(self, chunks: AsyncIterable[bytes]) -> StagedContent:
        from obstore.exceptions import BaseError

        temp = f"{self.staging}{uuid.uuid4().hex}.part"
        try:
            sha, size = await objectstore.upload_hashing(self.store, temp, chunks)
        except BaseException as exc:
            await objectstore.forget(self.store, temp)
            if isinstance(exc, OSError | BaseError):
                raise ContentWriteFailed(f"could not stage instance bytes: {_reason(exc)}") from exc
            raise
        return StagedContent(ContentKey(sha, size), object_key=temp)

    async def commit(self, staged: StagedContent) -> None:
        from obstore.exceptions import BaseError

        assert staged.object_key is not None
        try:
            # Copied even if the same bytes are there: one object, its time renewed.
            await objectstore.promote(self.store, staged.object_key, self.key_of(staged.key.sha256))
        except (OSError, BaseError) as exc:
            raise ContentWriteFailed(f"could not store instance bytes: {_reason(exc)}") from exc

    async def discard(self, staged: StagedContent) -> None:
        if staged.object_key is not None:
            await objectstore.delete_quietly(self.store, staged.object_key)

    async def _ranged(self, sha256: str, offset: int, length: int) -> Any | None:
        """One ranged GET (S3 ends it at the object's end); None when nothing is in range."""
        if length <= 0:
            if not await self.exists(sha256):
                raise KeyError(sha256)
            return None
        try:
            return await self._get(sha256, {"range": (offset, offset + length)})
        except KeyError:
            raise
        except Exception:
            # A start at or past the end is 416 on S3: not an error for a reader of a span.
            meta = await objectstore.head(self.store, self.key_of(sha256))
            if meta is None:
                raise KeyError(sha256) from None
            if offset >= int(meta["size"]):
                return None
            raise

    async def read_at(self, sha256: str, offset: int, length: int) -> bytes:
        result = await self._ranged(sha256, offset, length)
        return b"" if result is None else bytes(await result.bytes_async())

    async def range_chunks(
        self, sha256: str, offset: int, length: int, *, size: int = CHUNK
    ) -> AsyncIterator[bytes]:
        """One ranged GET, streamed: the span is never held whole (a video's HTTP Range)."""
        result = await self._ranged(sha256, offset, length)
        if result is None:
            return
        async for chunk in _sized(result.stream(min_chunk_size=size), size):
            yield chunk

    async def exists(self, sha256: str) -> bool:
        return await objectstore.head(self.store, self.key_of(sha256)) is not None

    async def sweep_orphans(
        self, referenced: Callable[[str], Awaitable[bool]], older_than: timedelta
    ) -> int:
        """Remove staged objects and unreferenced instances last modified before the grace.

        A store of the same bytes renews the object's time (`put`, `commit`), so each old,
        unreferenced object is looked at again (HEAD) just before its DELETE; object storage
        has no atomic rename, so a store in the moment between the two is not excluded (its
        instance then reads as missing; docs/media.md "Storage").
        """
        cutoff = datetime.now(UTC) - older_than
        removed = 0
        async for key, _size in objectstore.stale_objects(self.store, self.prefix, cutoff):
            if key.startswith(self.staging):
                await objectstore.delete_quietly(self.store, key)
                removed += 1
                continue
            sha = key.rsplit("/", 1)[-1].removesuffix(".dcm")
            if _SHA256.match(sha) and key == self.key_of(sha) and not await referenced(sha):
                meta = await objectstore.head(self.store, key)
                if meta is None or meta["last_modified"] > cutoff or await referenced(sha):
                    continue  # stored again meanwhile
                await self.delete(sha)
                removed += 1
        return removed


async def _sized(stream: AsyncIterable[Any], size: int) -> AsyncIterator[bytes]:
    """Chunks of at most `size` bytes from a stream whose chunks may be larger."""
    async for chunk in stream:
        view = memoryview(chunk)
        for start in range(0, len(view), size):
            yield bytes(view[start : start + size])


def _reason(exc: BaseException) -> str:
    """A short reason without the request's URL or body (logs hold no personal data)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__
