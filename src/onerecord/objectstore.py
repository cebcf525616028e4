"""Content-addressed bytes in S3-compatible object storage: what the source and the archive share.

Both the document source (source/content.py `ObstoreContentStore`) and the media archive
(media/content.py `ObstoreInstanceStore`) keep their bytes under their SHA-256 in an obstore
store; this module is the generic part they share, so neither imports the other
(ARCHITECTURE: siblings talk over HTTP):

- `open_store(url)`: `s3://bucket/prefix` (or `gs://`, `az://`, `file://`) → a
  store, its credentials, region and endpoint read from the environment (`AWS_ACCESS_KEY_ID`,
  `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, ...), never
  from the URL or a settings file;
- `sharded_key`: the key layout `<prefix>ab/cd/<sha256><suffix>`;
- `upload_hashing`: a stream uploaded (multipart, a few parts in flight: constant memory) to a
  temporary key while it is hashed;
- `promote`: a server-side copy of the temporary object to its content address, then the
  temporary object deleted;
- `head`, `delete_quietly` and `stale_objects` (a listing filtered by age) for `exists`,
  `delete` and the orphan sweeps.

What is atomic: each PUT (single or multipart, completed by one request) and each COPY makes
a whole object appear under its key or nothing. What is not: the copy and the delete of the
temporary object are two requests, so a crash between them leaves a temporary object, which
the sweeps remove after their grace.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from datetime import datetime
from typing import Any

__all__ = [
    "SCHEMES",
    "check_url",
    "delete_quietly",
    "forget",
    "head",
    "normal_prefix",
    "open_store",
    "promote",
    "sharded_key",
    "stale_objects",
    "upload_hashing",
]

SCHEMES = ("s3://", "s3a://", "gs://", "az://", "abfs://", "abfss://", "file://")
PART = 8 * 1024 * 1024  # one multipart part (S3's minimum is 5 MiB)
PARTS_IN_FLIGHT = 2


def check_url(url: str) -> str:
    """Return the URL if obstore can open it (by its scheme); ValueError otherwise."""
    if not url.startswith(SCHEMES):
        raise ValueError(f"an object store URL starts with one of {', '.join(SCHEMES)}")
    if "@" in url.split("/", 3)[2]:
        raise ValueError("credentials come from the environment, never from the URL")
    return url


def open_store(url: str, **options: Any) -> Any:
    """An obstore store for the URL; its prefix (`s3://bucket/prefix`) is part of the store.

    Settings check the URL first (`check_url`); this takes what obstore takes.
    """
    from obstore.store import from_url

    return from_url(url, **options)


def normal_prefix(prefix: str) -> str:
    """`a/b/` for `a/b`, `/a/b/` or `a/b/`; empty for none."""
    stripped = prefix.strip("/")
    return f"{stripped}/" if stripped else ""


def sharded_key(prefix: str, sha256: str, suffix: str = "") -> str:
    """`<prefix>ab/cd/<sha256><suffix>`: two levels of 256 folders, as on disk."""
    return f"{prefix}{sha256[:2]}/{sha256[2:4]}/{sha256}{suffix}"


def _missing(exc: BaseException) -> bool:
    from obstore.exceptions import NotFoundError

    return isinstance(exc, NotFoundError | FileNotFoundError)


async def head(store: Any, key: str) -> dict[str, Any] | None:
    """The object's metadata (`size`, `last_modified`, ...), or None if there is none."""
    import obstore

    try:
        meta: dict[str, Any] = dict(await obstore.head_async(store, key))
    except Exception as exc:
        if _missing(exc):
            return None
        raise
    return meta


async def delete_quietly(store: Any, key: str) -> None:
    """Delete the object; an absent one is not an error."""
    import obstore

    try:
        await obstore.delete_async(store, key)
    except Exception as exc:
        if not _missing(exc):
            raise


async def upload_hashing(store: Any, key: str, chunks: AsyncIterable[bytes]) -> tuple[str, int]:
    """Upload the stream to `key` while hashing it; return its SHA-256 and size.

    A long stream goes up as a multipart upload of `PART`-sized parts, at most
    `PARTS_IN_FLIGHT` at a time, so memory stays bounded whatever the size; the object appears
    only when the upload completes (an aborted one leaves no object under `key`).
    """
    import obstore

    digest = hashlib.sha256()
    size = 0

    async def hashing() -> AsyncIterator[bytes]:
        nonlocal size
        async for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            yield chunk

    await obstore.put_async(store, key, hashing(), chunk_size=PART, max_concurrency=PARTS_IN_FLIGHT)
    return digest.hexdigest(), size


async def promote(store: Any, temp: str, final: str) -> None:
    """Copy `temp` to `final` on the server (atomic per object), then delete `temp`.

    The delete runs even if the copy fails, and its own failure is not the caller's: a crash
    or an error between the two leaves `temp`, which the sweep removes after its grace.
    """
    import obstore

    try:
        await obstore.copy_async(store, temp, final)
    finally:
        await forget(store, temp)


async def forget(store: Any, key: str) -> None:
    """Delete a temporary object if the store answers; else leave it to the sweep."""
    with contextlib.suppress(Exception):
        await delete_quietly(store, key)


async def stale_objects(
    store: Any, prefix: str, cutoff: datetime
) -> AsyncIterator[tuple[str, int]]:
    """The keys (and sizes) under `prefix` last modified before `cutoff`."""
    import obstore

    async for batch in obstore.list(store, prefix=prefix or None):
        for meta in batch:
            if meta["last_modified"] <= cutoff:
                yield meta["path"], int(meta["size"])
