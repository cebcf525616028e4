"""A SnapshotStore in Redis, so that any hub replica can serve the next page of a search.

Each snapshot is one key (`SET key value PX ttl`) holding a compact record: a JSON header line
(caller hash, outcome, masked count, query, entry lengths) followed by the pre-serialised Bundle
entries back to back — no re-encoding of a thousand documents per page. Redis evicts expired
snapshots itself; a snapshot larger than `max_bytes` is not stored (the hub then answers in one
page, as with the in-memory store).

References: FHIR R4 §3.1.1.6 (paging); docs/operations.md (several hub replicas).
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import orjson

from onerecord.hub.snapshot import Snapshot

__all__ = ["RedisLike", "RedisSnapshotStore", "decode_snapshot", "encode_snapshot"]


class RedisLike(Protocol):
    """The two commands the store needs (redis.asyncio.Redis has them)."""

    async def set(self, name: str, value: bytes, *, px: int) -> object: ...

    async def get(self, name: str) -> bytes | None: ...


def encode_snapshot(snapshot: Snapshot) -> bytes:
    """Return header line + entries; the inverse of `decode_snapshot`."""
    header = {
        "id": snapshot.id,
        "caller": snapshot.caller,
        "outcome": snapshot.outcome.decode("utf-8") if snapshot.outcome is not None else None,
        "masked": snapshot.masked_count,
        "query": snapshot.query,
        "lengths": [len(e) for e in snapshot.entries],
    }
    return orjson.dumps(header) + b"\n" + b"".join(snapshot.entries)


def decode_snapshot(data: bytes) -> Snapshot:
    """Read a stored snapshot back; raise ValueError when the record is damaged."""
    head, sep, body = data.partition(b"\n")
    if not sep:
        raise ValueError("snapshot record has no header line")
    header = orjson.loads(head)
    entries: list[bytes] = []
    at = 0
    for length in header["lengths"]:
        entries.append(body[at : at + length])
        at += length
    if at != len(body):
        raise ValueError("snapshot record length mismatch")
    outcome = header["outcome"]
    return Snapshot(
        id=str(header["id"]),
        caller=str(header["caller"]),
        entries=tuple(entries),
        outcome=outcome.encode("utf-8") if outcome is not None else None,
        masked_count=int(header["masked"]),
        query=str(header["query"]),
    )


class RedisSnapshotStore:
    """Snapshots shared by all hub replicas through Redis, each living `ttl_s` seconds."""

    def __init__(
        self,
        client: RedisLike,
        *,
        ttl_s: float = 600.0,
        max_bytes: int = 32 * 1024 * 1024,
        prefix: str = "onerecord:snapshot:",
    ) -> None:
        self._client = client
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self._prefix = prefix

    @classmethod
    def from_url(
        cls, url: str, *, ttl_s: float = 600.0, max_bytes: int = 32 * 1024 * 1024
    ) -> RedisSnapshotStore:
        """Connect to the Redis at `url` (redis://host:port/db)."""
        from redis.asyncio import Redis

        client: Any = Redis.from_url(url)
        return cls(client, ttl_s=ttl_s, max_bytes=max_bytes)

    async def aclose(self) -> None:
        """Close the connection pool, when the client has one."""
        close = getattr(self._client, "aclose", None)
        if close is not None:
            await close()

    async def put(self, snapshot: Snapshot) -> bool:
        if snapshot.size_bytes > self.max_bytes:
            return False
        await self._client.set(
            self._prefix + snapshot.id,
            encode_snapshot(snapshot),
            px=max(1, math.ceil(self.ttl_s * 1000)),
        )
        return True

    async def get(self, snapshot_id: str) -> Snapshot | None:
        data = await self._client.get(self._prefix + snapshot_id)
        if data is None:
            return None
        try:
            return decode_snapshot(data)
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            return None
